"""The ``moeplan`` command line (click lives only here).

Exit codes: 0 ok; 1 the input is valid but no plan fits (memory, SLO), with the failing constraint and by how
much; 2 bad input (unknown name, bad unit, impossible degrees), naming the key path, the value and what is
accepted. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from cost_models import compute
from cost_models.parallel import check_dims
from cost_models.serving import evaluate as evaluate_plan
from cost_models.specs import Precision
from planner import __version__, report
from planner.catalog import devices, models
from planner.catalog.errors import UnknownName
from planner.cpsat.deployment import OBJECTIVES
from planner.export import ExportError, check_export, write_export
from planner.scenario import Scenario, ScenarioError, load_scenario, parse_plan
from planner.units import fmt_bytes

EXIT_INFEASIBLE = 1
EXIT_BAD_INPUT = 2

_out = Console(soft_wrap=False, width=160)
_err = Console(stderr=True, soft_wrap=True)


def _abort(code: int, message: str) -> NoReturn:
    _err.print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(code)


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))


_EXPORT_HELP = "Also write the document to FILE: .json, .yaml, .md or self-contained .html (with charts)."


def _check_export(export: str | None) -> None:
    """Reject an --export path whose extension picks no format (exit 2), before any work is done."""
    try:
        if export:
            check_export(export)
    except ExportError as e:
        _abort(EXIT_BAD_INPUT, f"--export: {e}")


def _export(export: str | None, doc: dict[str, Any]) -> None:
    """Write ``doc`` atomically (:func:`planner.export.write_export`); nothing half-written on failure."""
    try:
        if export:
            write_export(export, doc)
    except ExportError as e:
        _abort(EXIT_BAD_INPUT, f"--export: {e}")


_EMIT_HELP = "Also print the launch lines that realise the plan in this serving engine (README 'Launch configs')."
_EMIT_ENGINES = click.Choice(["vllm", "sglang", "trtllm", "mindie"])


def _launch(engine: str | None, build: Any) -> Any:
    """``planner.emit`` launch plan of the spec ``build(emit_module)`` returns (None without --emit); exit 2 when
    the engine cannot express the plan."""
    if not engine:
        return None
    from planner import emit
    try:
        return emit.emit(build(emit), engine)
    except emit.EmitError as e:
        _abort(EXIT_BAD_INPUT, e.message())


def _echo_launch(launch: Any) -> None:
    from planner.emit import render_shell
    click.echo("\n" + render_shell(launch), nl=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="moeplan")
def main() -> None:
    """Plan Mixture-of-Experts LLM deployments on GPU and NPU clusters."""


def _load(path: str) -> Scenario:
    try:
        return load_scenario(path)
    except ScenarioError as e:
        _abort(EXIT_BAD_INPUT, str(e))


@main.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--plan", "plan_text", help="Degrees, e.g. 'attn_tp=1,attn_dp=32,moe_ep=32,redundant_experts=32'; "
              "unnamed degrees are 1. Default: the scenario's plan.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema moeplan.evaluate/2; "
              "a list of them for several scenarios).")
@click.option("-v", "--verbose", is_flag=True, help="Show every op of the prefill and decode steps.")
@click.option("--overlap-model", type=click.Choice(["schedule", "closed-form"]), default="schedule",
              show_default=True, help="Two-batch overlap from the CP-SAT layer schedule, or the closed form "
              "max(compute, communication) + SM share that plan's search uses.")
@click.option("--export", type=click.Path(dir_okay=False), help=_EXPORT_HELP + " One scenario only.")
@click.option("--emit", "emit_engine", type=_EMIT_ENGINES, help=_EMIT_HELP + " One scenario only.")
def evaluate(scenarios: tuple[str, ...], plan_text: str | None, as_json: bool, verbose: bool,
             overlap_model: str, export: str | None, emit_engine: str | None) -> None:
    """Predict memory, step time, throughput and latency of one plan for each SCENARIO.

    With several scenarios (e.g. the same model on 16 and on 64 cards) a side-by-side table with ratios follows."""
    _check_export(export)
    if export and len(scenarios) > 1:
        _abort(EXIT_BAD_INPUT, f"--export: got {export!r} with {len(scenarios)} scenarios; accepted: one scenario")
    if emit_engine and len(scenarios) > 1:
        _abort(EXIT_BAD_INPUT, f"--emit: got {emit_engine!r} with {len(scenarios)} scenarios; accepted: one scenario")
    hook = None
    if overlap_model == "schedule":
        from planner.cpsat.schedule import overlapped_layer_time
        hook = overlapped_layer_time
    results = [_evaluate_one(path, plan_text, hook) for path in scenarios]
    launch = _launch(emit_engine, lambda emit: emit.spec_from_evaluation(*results[0]))
    if as_json or export:
        docs = [report.full_evaluate_document(sc, dims, r) for sc, dims, r in results]
        if launch:
            from planner.emit import launch_document
            docs[0]["launch"] = launch_document(launch)
        _export(export, docs[0])
    if as_json:
        _emit_json(docs[0] if len(docs) == 1 else docs)
        return
    for sc, dims, r in results:
        report.render_evaluate(_out, sc, dims, r, verbose=verbose)
    if len(results) > 1:
        _out.print(report.side_by_side(results))
    if launch:
        _echo_launch(launch)


def _evaluate_one(path: str, plan_text: str | None, hook, *, measure_imbalance: bool = True):  # noqa: ANN001, ANN202
    """Load, check the plan, cost it (exit 2 / 1 on bad input / no fit). ``measure_imbalance``: replace the
    assumed expert imbalance by the CP-SAT placement's on the scenario's router counts (``place`` skips it: it
    places them itself and uses nothing from here but the fit check: weights and prefill memory do not depend on
    imbalance, and the decode batch is chosen to fit)."""
    sc = _load(path)
    try:
        dims = parse_plan(plan_text) if plan_text else sc.plan
    except ScenarioError as e:
        _abort(EXIT_BAD_INPUT, str(e))
    if dims is None:
        _abort(EXIT_BAD_INPUT, f"--plan: missing for {path}; accepted: a plan string such as "
               "'attn_dp=16,moe_ep=16', or a 'plan:' key in the scenario")
    problems = check_dims(dims, sc.model, sc.cluster.num_devices)
    if problems:
        _abort(EXIT_BAD_INPUT, "; ".join(p.message() for p in problems))
    wl = sc.workload
    if sc.expert_loads is not None and measure_imbalance:
        from planner.imbalance import layout_imbalance_cpsat
        wl = dataclasses.replace(wl, expert_imbalance=layout_imbalance_cpsat(
            sc.model, dims, sc.expert_loads, sc.cluster.devices_per_node))
        sc = dataclasses.replace(sc, workload=wl)
    result = evaluate_plan(sc.model, sc.cluster, dims, wl, overlap_model=hook)
    over = [(ph, p.memory) for ph, p in (("prefill", result.prefill), ("decode", result.decode))
            if p.memory.free_bytes < 0]
    if over:
        ph, m = over[0]
        _abort(EXIT_INFEASIBLE, f"memory: the {ph} phase needs {fmt_bytes(m.used_bytes)} per device but "
               f"{sc.cluster.device.id} has {fmt_bytes(m.capacity_bytes)} (short by {fmt_bytes(-m.free_bytes)}; "
               f"weights alone {fmt_bytes(m.weight_bytes)}). Raise moe_ep / attn_tp, use more devices, a lower "
               f"weight precision, or a smaller batch / shorter context.")
    return sc, dims, result


DEFAULT_SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "deepseek_v3_h200_16.yaml"


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False), required=False)
@click.option("--objective", type=click.Choice(OBJECTIVES), default="throughput", show_default=True)
@click.option("--top", "top_k", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--time-limit", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="CP-SAT time limit per solve, seconds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema moeplan.plan/2).")
@click.option("--export", "export", type=click.Path(dir_okay=False), help=_EXPORT_HELP)
@click.option("-v", "--verbose", is_flag=True)
@click.option("--emit", "emit_engine", type=_EMIT_ENGINES, help=_EMIT_HELP + " For the chosen deployment.")
@click.option("--overlap-model", type=click.Choice(["closed-form", "schedule"]), default="closed-form",
              show_default=True, help="schedule: re-cost the prefill of every shortlisted two-batch layout with the "
              "CP-SAT layer schedule before the deployment solve (slower: 31-41 s on the 8- and 16-GPU scenarios).")
def plan(scenario: str | None, objective: str, top_k: int, time_limit: float, seed: int, as_json: bool,
         export: str | None, verbose: bool, emit_engine: str | None, overlap_model: str) -> None:
    """Search parallel layouts and pool splits for SCENARIO (default: the bundled scenario)."""
    from planner import plan_report
    from planner.plan import NoFeasiblePlan, run_plan
    _check_export(export)
    sc = _load(scenario or str(DEFAULT_SCENARIO))
    if objective == "devices" and sc.workload.request_rate_per_s is None:
        _abort(EXIT_BAD_INPUT, "workload.request_rate: missing; accepted: requests per second (a number > 0), "
               "required by --objective devices")
    try:
        kw = dict(objective=objective, top_k=top_k, time_limit_s=time_limit, seed=seed, overlap_model=overlap_model)
        if as_json:
            res = run_plan(sc, **kw)
        else:
            from rich.progress import Progress
            with Progress(console=_err, transient=True) as prog:
                task = prog.add_task("costing layouts", total=None)
                res = run_plan(sc, **kw, progress=lambda i, n: prog.update(task, completed=i, total=n))
    except NoFeasiblePlan as e:
        _abort(EXIT_INFEASIBLE, f"no feasible plan: {e.constraint} constraint: {e.detail}. Would make it feasible: "
               + "; ".join(e.fixes))
    doc = plan_report.plan_document(res)
    launch = _launch(emit_engine, lambda emit: emit.spec_from_deployment(sc, res.deployments[0]))
    if launch:
        from planner.emit import launch_document
        doc["launch"] = launch_document(launch)
    _export(export, doc)
    if as_json:
        _emit_json(doc)
    else:
        plan_report.render_plan(_out, res, verbose=verbose)
        if launch:
            _echo_launch(launch)


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--plan", "plan_text", help="Degrees (default: the scenario's plan).")
@click.option("--micro-batches", type=click.IntRange(1, 4), default=2, show_default=True)
@click.option("--phase", type=click.Choice(["decode", "prefill"]), default="decode", show_default=True)
@click.option("--width", type=click.IntRange(40, 300), default=100, show_default=True, help="Gantt chart width.")
@click.option("--json", "as_json", is_flag=True, help="Print the schedules as JSON (schema moeplan.schedule/1).")
@click.option("--export", type=click.Path(dir_okay=False), help=_EXPORT_HELP)
def schedule(scenario: str, plan_text: str | None, micro_batches: int, phase: str, width: int,
             as_json: bool, export: str | None) -> None:
    """CP-SAT overlap schedule of one MoE layer and one dense layer: timeline, makespan, bottleneck."""
    from planner import schedule_report
    _check_export(export)
    sc, dims, _ = _evaluate_one(scenario, plan_text, None)
    schedules = schedule_report.layer_schedules(sc, dims, phase=phase, micro_batches=micro_batches)
    doc = {"schema": "moeplan.schedule/1", "scenario": sc.name, "plan": dims.as_dict(), "phase": phase,
           "micro_batches": micro_batches,
           "layers": {k: schedule_report.schedule_document(v) for k, v in schedules.items()}}
    _export(export, doc)
    if as_json:
        _emit_json(doc)
        return
    _out.print(f"[b]{sc.name}[/b]: {phase}, {micro_batches} micro-batches, plan {dims.label()}")
    for kind, sch in schedules.items():
        _out.print(f"\n[b]{kind} layer[/b]")
        _out.print(schedule_report.gantt_text(sch, width=width), highlight=False, markup=False)


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--plan", "plan_text", help="Degrees (default: the scenario's plan); EP size and slots come from it.")
@click.option("--expert-load", "load_path", type=click.Path(dir_okay=False),
              help="Router counts (CSV or JSON, rows = MoE layers); default: the scenario's workload.expert_load.")
@click.option("--redundant", type=click.IntRange(min=0), help="Redundant slots (default: the plan's).")
@click.option("--time-limit", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="CP-SAT time limit per layer, seconds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the placement document (schema moeplan.place/2).")
@click.option("--export", type=click.Path(dir_okay=False), help=_EXPORT_HELP)
def place(scenario: str, plan_text: str | None, load_path: str | None, redundant: int | None, time_limit: float,
          seed: int, as_json: bool, export: str | None) -> None:
    """Place experts and redundant replicas on the plan's EP devices: CP-SAT vs the greedy balancers."""
    from planner import placement_report
    from planner.cpsat.placement import place_all
    from planner.scenario import read_expert_loads

    _check_export(export)
    sc, dims, _ = _evaluate_one(scenario, plan_text, None, measure_imbalance=False)
    if sc.model.moe is None:
        _abort(EXIT_BAD_INPUT, f"model: got {sc.model.id!r}; accepted: an MoE model (placement needs experts)")
    try:
        loads = read_expert_loads(load_path, sc.model) if load_path else sc.expert_loads
    except ScenarioError as e:
        _abort(EXIT_BAD_INPUT, str(e))
    if loads is None:
        _abort(EXIT_BAD_INPUT, "--expert-load: missing; accepted: a CSV or JSON router-count file, or "
               "workload.expert_load in the scenario (moeplan loads synth makes one)")
    if redundant is not None:
        dims = dataclasses.replace(dims, redundant_experts=redundant)
    slots = dims.physical_expert_slots(sc.model)
    if slots % dims.moe_ep:
        _abort(EXIT_BAD_INPUT, f"--redundant: got {dims.redundant_experts}; accepted: a count that makes "
               f"{sc.model.moe.num_routed_experts} + redundant divisible by moe_ep={dims.moe_ep}")
    dpn = max(1, min(sc.cluster.devices_per_node, dims.moe_ep))
    res = place_all(loads, num_devices=dims.moe_ep, devices_per_node=dpn, slots=slots, time_limit_s=time_limit,
                    seed=seed, num_groups=sc.model.moe.num_groups, topk_groups=sc.model.moe.topk_groups)
    doc = placement_report.placement_document(res) | {"placement": placement_report.heatmap_document(res, loads)}
    _export(export, doc)
    if as_json:
        _emit_json(doc)
        return
    from planner.place_view import layer_table
    _out.print(layer_table(res))
    for line in placement_report.summary_lines(res):
        _out.print(line, highlight=False, markup=False)


@main.group()
def loads() -> None:
    """Expert-load (router count) files."""


@loads.command("synth")
@click.option("--experts", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), default=58, show_default=True)
@click.option("--top-k", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--skew", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="Width of the log-normal expert popularity: 0 uniform, 1 typical, 2 a few very hot experts.")
@click.option("--tokens", type=click.IntRange(min=1), default=20_267, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write here (.csv or .json); else stdout CSV.")
def loads_synth(experts: int, layers: int, top_k: int, skew: float, tokens: int, seed: int,
                out_path: str | None) -> None:
    """Synthetic router counts with a documented skew, for users without router logs."""
    from planner.loads import loads_to_json, synth_loads
    from planner.place_view import loads_to_csv

    if top_k > experts:
        _abort(EXIT_BAD_INPUT, f"--top-k: got {top_k}; accepted: at most --experts ({experts})")
    data = synth_loads(experts=experts, layers=layers, top_k=top_k, skew=skew, seed=seed, tokens=tokens)
    if out_path and out_path.endswith(".json"):
        text = json.dumps(loads_to_json(data)) + "\n"
    else:
        text = loads_to_csv(data)
    if out_path:
        tmp = Path(out_path + ".tmp")
        tmp.write_text(text)
        tmp.replace(out_path)
    else:
        click.echo(text, nl=False)


@main.group()
def cost() -> None:
    """Predicted time of one kernel on one device."""


def _device_or_abort(device_id: str):  # noqa: ANN202
    try:
        return devices.get_device(device_id)
    except UnknownName as e:
        _abort(EXIT_BAD_INPUT, f"--device: got {device_id!r}; accepted: a catalog id; closest: "
               f"{', '.join(e.suggestions) or '-'} (all: moeplan catalog devices)")


def _kernel_doc(kind: str, device_id: str, args: dict[str, Any], c: compute.KernelCost) -> dict[str, Any]:
    return {"schema": "moeplan.cost/1", "kernel": kind, "device": device_id, "args": args, "seconds": c.seconds,
            "flops": c.flops, "bytes": c.bytes, "bound": c.bound,
            "achieved_flop_per_s": c.flops / c.seconds, "achieved_bytes_per_s": c.bytes / c.seconds,
            "detail": dict(c.detail)}


def _print_kernel(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _emit_json(doc)
        return
    _out.print(f"{doc['kernel']} on {doc['device']}: {doc['seconds'] * 1e6:.2f} us, bound by {doc['bound']}; "
               f"{doc['achieved_flop_per_s'] / 1e12:.1f} TFLOP/s, {doc['achieved_bytes_per_s'] / 1e9:.0f} GB/s")


_DTYPES = click.Choice(["bf16", "fp8", "int8", "fp4"])


@cost.command("gemm")
@click.option("--device", "device_id", required=True)
@click.option("--m", type=click.IntRange(min=1), required=True)
@click.option("--k", type=click.IntRange(min=1), required=True)
@click.option("--n", type=click.IntRange(min=1), required=True)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Independent GEMMs of this shape (experts).")
@click.option("--dtype", type=_DTYPES, default="bf16", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cost_gemm(device_id: str, m: int, k: int, n: int, batch: int, dtype: str, as_json: bool) -> None:
    """[batch, M, K] x [batch, K, N] GEMM."""
    dev = _device_or_abort(device_id)
    c = compute.gemm_cost(dev, m=m, k=k, n=n, batch=batch, precision=Precision.from_label(dtype))
    _print_kernel(_kernel_doc("gemm", device_id, {"m": m, "k": k, "n": n, "batch": batch, "dtype": dtype}, c), as_json)


@cost.command("attention")
@click.option("--device", "device_id", required=True)
@click.option("--phase", type=click.Choice(["prefill", "decode"]), required=True)
@click.option("--batch", type=click.IntRange(min=1), required=True)
@click.option("--q-heads", type=click.IntRange(min=1), required=True)
@click.option("--kv-heads", type=click.IntRange(min=1), required=True)
@click.option("--head-dim", type=click.IntRange(min=1), required=True)
@click.option("--context", type=click.IntRange(min=1), required=True, help="Prompt length (prefill) or KV length.")
@click.option("--dtype", type=_DTYPES, default="bf16", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cost_attention(device_id: str, phase: str, batch: int, q_heads: int, kv_heads: int, head_dim: int, context: int,
                   dtype: str, as_json: bool) -> None:
    """Causal prefill or one-token decode attention."""
    dev = _device_or_abort(device_id)
    if q_heads % kv_heads:
        _abort(EXIT_BAD_INPUT, f"--kv-heads: got {kv_heads}; accepted: a divisor of --q-heads {q_heads}")
    p = Precision.from_label(dtype)
    if phase == "prefill":
        c = compute.attention_prefill_cost(dev, batch=batch, q_heads=q_heads, kv_heads=kv_heads, qk_head_dim=head_dim,
                                           v_head_dim=head_dim, seq_tokens=context, causal=True, precision=p)
    else:
        c = compute.attention_decode_cost(dev, batch=batch, q_heads=q_heads, kv_heads=kv_heads, qk_head_dim=head_dim,
                                          v_head_dim=head_dim, context_tokens=context, kv_precision=p)
    args = {"phase": phase, "batch": batch, "q_heads": q_heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "context": context, "dtype": dtype}
    _print_kernel(_kernel_doc("attention", device_id, args, c), as_json)


@main.group()
def catalog() -> None:
    """What is bundled, with sources."""


@catalog.command("devices")
@click.option("--json", "as_json", is_flag=True)
def catalog_devices(as_json: bool) -> None:
    """Devices and every number's source and confidence."""
    from planner import catalog_view
    catalog_view.show_devices(_out, as_json)


@catalog.command("models")
@click.option("--json", "as_json", is_flag=True)
def catalog_models(as_json: bool) -> None:
    """Models with their shapes and parameter counts."""
    from planner import catalog_view
    catalog_view.show_models(_out, as_json)


__all__ = ["main", "models"]


# Commands in their own modules (they use the helpers above, so they are imported last).
from planner.cli_compare import compare_cmd  # noqa: E402

main.add_command(compare_cmd)
