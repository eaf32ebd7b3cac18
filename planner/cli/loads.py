"""``moeplan loads synth``: synthetic router counts for users without router logs."""

from __future__ import annotations

import json

import click

from planner.cli import app
from planner.inputs.limits import MAX_LOAD_EXPERTS as MAX_EXPERTS
from planner.inputs.limits import MAX_LOAD_LAYERS as MAX_LAYERS
from planner.inputs.limits import MAX_SEED


@click.group()
def loads() -> None:
    """Expert-load (router count) files."""


@loads.command("synth")
@click.option("--experts", type=click.IntRange(min=1, max=MAX_EXPERTS), default=256, show_default=True,
              help="Routed experts per layer.")
@click.option("--layers", type=click.IntRange(min=1, max=MAX_LAYERS), default=58, show_default=True,
              help="MoE layers (rows of the file).")
@click.option("--top-k", type=click.IntRange(min=1, max=MAX_EXPERTS), default=8, show_default=True,
              help="Experts each token routes to.")
@click.option("--skew", type=app.FiniteFloat(min=0.0, max=10.0), default=1.0, show_default=True,
              help="Width of the log-normal expert popularity: 0 uniform, 1 typical, 2 a few very hot experts.")
@click.option("--tokens", type=click.IntRange(min=1, max=10**12), default=20_267, show_default=True,
              help="Tokens routed per layer (each counted --top-k times).")
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True,
              help="Random seed: the same seed gives the same file.")
@click.option("--out", "out_path", type=app.SafePath(dir_okay=False), help="Write here (.csv or .json); else stdout CSV.")
@app.force_option
def loads_synth(experts: int, layers: int, top_k: int, skew: float, tokens: int, seed: int,
                out_path: str | None) -> None:
    """Synthetic router counts with a documented skew, for users without router logs."""
    from planner.inputs.loads import loads_to_csv, loads_to_json, synth_loads

    if top_k > experts:
        app.abort(app.EXIT_BAD_INPUT, f"--top-k: got {top_k}; accepted: at most --experts ({experts})")
    app.check_output_path("--out", out_path)
    data = synth_loads(experts=experts, layers=layers, top_k=top_k, skew=skew, seed=seed, tokens=tokens)
    if out_path and out_path.endswith(".json"):
        text = json.dumps(loads_to_json(data)) + "\n"
    else:
        text = loads_to_csv(data)
    if not out_path:
        click.echo(text, nl=False)
        return
    app.write_output("--out", out_path, text)
