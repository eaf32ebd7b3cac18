"""What every command shares: the consoles, the one abort path and its exit codes, ``--json`` output,
``--export`` and ``--emit`` plumbing, and loading a scenario with its plan.

Exit codes: 0 ok; 1 the input is valid but no plan fits (memory, SLO), with the failing constraint and by how
much; 2 bad input (unknown name, bad unit, impossible degrees), naming the key path, the value and what is
accepted. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from planner.render.export import ExportError, check_export, write_export

if TYPE_CHECKING:
    from rich.console import Console

    from cost_models.parallel import ParallelDims
    from planner.inputs.scenario import Scenario

EXIT_OK = 0
EXIT_INFEASIBLE = 1
EXIT_BAD_INPUT = 2

_CONSOLES: dict[str, Console] = {}


def __getattr__(name: str) -> Console:
    """``out`` (results, stdout) and ``err`` (diagnostics, stderr): rich consoles made on first use, so
    ``--help`` and commands that print JSON never import rich (it and pydantic were most of --help's CPU)."""
    if name not in ("out", "err"):
        raise AttributeError(name)
    if name not in _CONSOLES:
        from rich.console import Console
        _CONSOLES[name] = Console(soft_wrap=False, width=160) if name == "out" else Console(stderr=True,
                                                                                             soft_wrap=True)
    return _CONSOLES[name]

EXPORT_HELP = "Also write the document to FILE: .json, .yaml, .md or self-contained .html (with charts)."
EMIT_HELP = "Also print the launch lines that realise the plan in this serving engine (README 'Launch configs')."
EMIT_ENGINES = click.Choice(["vllm", "sglang", "trtllm", "mindie"])


def abort(code: int, message: str) -> NoReturn:
    """The one way a command fails: the message on stderr, exit ``code`` (1 infeasible, 2 bad input)."""
    __getattr__("err").print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(code)


def emit_json(doc: Any) -> None:
    """Print a document (a :mod:`planner.documents` model, or a list of them) as ``--json`` output."""
    from planner.documents.base import as_dict
    click.echo(json.dumps(as_dict(doc), indent=2, sort_keys=False, default=str))


def check_export_path(export: str | None) -> None:
    """Reject an --export path whose extension picks no format (exit 2), before any work is done."""
    try:
        if export:
            check_export(export)
    except ExportError as e:
        abort(EXIT_BAD_INPUT, f"--export: {e}")


def export_document(export: str | None, doc: Any) -> None:
    """Write ``doc`` atomically (:func:`planner.render.export.write_export`); nothing half-written on failure."""
    try:
        if export:
            write_export(export, doc)
    except ExportError as e:
        abort(EXIT_BAD_INPUT, f"--export: {e}")


def launch_plan(engine: str | None, build: Any) -> Any:
    """``planner.emit`` launch plan of the spec ``build(emit_module)`` returns (None without --emit); exit 2 when
    the engine cannot express the plan."""
    if not engine:
        return None
    from planner import emit
    try:
        return emit.emit(build(emit), engine)
    except emit.EmitError as e:
        abort(EXIT_BAD_INPUT, e.message())


def launch_document(launch: Any) -> Any:
    """The ``launch`` block (:class:`planner.documents.launch.LaunchBlock`) of a launch plan, or None."""
    if launch is None:
        return None
    from planner.emit import launch_document as doc
    return doc(launch)


def echo_launch(launch: Any) -> None:
    from planner.emit import render_shell
    click.echo("\n" + render_shell(launch), nl=False)


def load(path: str) -> Scenario:
    from planner.inputs.scenario import ScenarioError, load_scenario
    try:
        return load_scenario(path)
    except ScenarioError as e:
        abort(EXIT_BAD_INPUT, str(e))


def scenario_and_plan(path: str, plan_text: str | None) -> tuple[Scenario, ParallelDims]:
    """Load ``path`` and the plan (``plan_text`` or the scenario's ``plan:``), checked against the cluster."""
    from cost_models.parallel import check_dims
    from planner.inputs.scenario import ScenarioError, parse_plan
    sc = load(path)
    try:
        dims = parse_plan(plan_text) if plan_text else sc.plan
    except ScenarioError as e:
        abort(EXIT_BAD_INPUT, str(e))
    if dims is None:
        abort(EXIT_BAD_INPUT, f"--plan: missing for {path}; accepted: a plan string such as "
              "'attn_dp=16,moe_ep=16', or a 'plan:' key in the scenario")
    problems = check_dims(dims, sc.model, sc.cluster.num_devices)
    if problems:
        abort(EXIT_BAD_INPUT, "; ".join(p.message() for p in problems))
    return sc, dims


def evaluate_or_abort(path: str, plan_text: str | None, overlap_model: str, *, measure_imbalance: bool = True):  # noqa: ANN201
    """Load, check the plan and cost it (exit 2 / 1 on bad input / no fit): an
    :class:`~planner.analysis.evaluate.Evaluation`. ``measure_imbalance``: replace the assumed expert imbalance
    by the CP-SAT placement's on the scenario's router counts (``place`` skips it: it places them itself and uses
    nothing from here but the fit check)."""
    from planner.analysis.evaluate import evaluate_scenario
    from planner.inputs.units import fmt_bytes
    sc, dims = scenario_and_plan(path, plan_text)
    ev = evaluate_scenario(sc, dims, overlap_model=overlap_model, measure_imbalance=measure_imbalance)
    result = ev.result
    over = [(ph, p.memory) for ph, p in (("prefill", result.prefill), ("decode", result.decode))
            if p.memory.free_bytes < 0]
    if over:
        ph, m = over[0]
        abort(EXIT_INFEASIBLE, f"memory: the {ph} phase needs {fmt_bytes(m.used_bytes)} per device but "
              f"{sc.cluster.device.id} has {fmt_bytes(m.capacity_bytes)} (short by {fmt_bytes(-m.free_bytes)}; "
              f"weights alone {fmt_bytes(m.weight_bytes)}). Raise moe_ep / attn_tp, use more devices, a lower "
              f"weight precision, or a smaller batch / shorter context.")
    return ev
