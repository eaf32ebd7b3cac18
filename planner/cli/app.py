"""What every command shares: the consoles, the one abort path and its exit codes, ``--json`` output,
``--export`` and ``--emit`` plumbing, and loading a scenario with its plan.

Exit codes: 0 ok; 1 the input is valid but no plan fits (memory, SLO), with the failing constraint and by how
much; 2 bad input (unknown name, bad unit, impossible degrees), naming the key path, the value and what is
accepted. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import click

from planner.inputs import files
from planner.render.export import ExportError, check_export, render_export

if TYPE_CHECKING:
    from rich.console import Console

    from planner.inputs.deployment_text import DeploymentPlan
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
EMIT_HELP = ("Also print the launch lines that realise the plan in this serving engine, or for a training scenario "
             "in Megatron-LM / MindSpeed-LLM (README 'Launch configs').")
SERVING_ENGINES = ("vllm", "sglang", "trtllm", "mindie")
TRAINING_ENGINES = ("megatron", "mindspeed")
EMIT_ENGINES = click.Choice([*SERVING_ENGINES, *TRAINING_ENGINES])


def abort(code: int, message: str) -> NoReturn:
    """The one way a command fails: the message on stderr, exit ``code`` (1 infeasible, 2 bad input)."""
    __getattr__("err").print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(code)


_OUT_OF_RANGE = (OverflowError, ZeroDivisionError, FloatingPointError, RecursionError, MemoryError, ValueError)


class GuardedGroup(click.Group):
    """The root group with the last line of the abort path: no exception escapes as a traceback. Arithmetic
    that an input drove out of range exits 2, a failed write to stdout (``> /dev/full``) exits 2, anything
    else exits 1 as an internal error with its real reason; each on one stderr line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
            return result
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except OSError as e:
            _silence_stdout()
            abort(EXIT_BAD_INPUT, f"output: cannot write ({e.strerror or e}); accepted: a writable stdout / path")
        except _OUT_OF_RANGE as e:
            abort(EXIT_BAD_INPUT, f"input out of the range the models handle ({type(e).__name__}: "
                  f"{_short(str(e))}); accepted: smaller, finite values (README 'Robustness')")
        except Exception as e:  # noqa: BLE001 - the one place a bug becomes a message instead of a traceback
            abort(EXIT_INFEASIBLE, f"internal error ({type(e).__name__}: {_short(str(e))}); please report it with "
                  "the command line")


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what could not be written stays quiet."""
    import os
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return  # an in-memory stdout (tests): nothing to silence
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def guarded(group: click.Group) -> GuardedGroup:
    """``group`` (the root ``moeplan`` group) behind the abort path's last guard."""
    return GuardedGroup(name=group.name, commands=group.commands, callback=group.callback, params=group.params,
                        help=group.help, context_settings=group.context_settings)


def emit_json(doc: Any) -> None:
    """Print a document (a :mod:`planner.documents` model, or a list of them) as ``--json`` output."""
    from planner.documents.base import as_dict
    click.echo(json.dumps(as_dict(doc), indent=2, sort_keys=False, default=str))


class FiniteFloat(click.FloatRange):
    """A float option that must be finite (nan and inf refused) and lie in ``[min, max]``."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


TIME_LIMIT_HELP = ("Wall-clock seconds for all of this command's CP-SAT solves together (each solve gets what the "
                   "earlier ones left; layout costing is not counted). Default: no shared wall limit; every solve stops "
                   "at its deterministic work limit (its own wall cap, far above, is a safety net), so the output "
                   "is the same on every run. A limit that binds is reported (text and JSON) and may make the "
                   "output vary.")


def time_limit_option(minimum: float) -> Any:
    """``--time-limit`` (None: no shared wall limit), finite, at least ``minimum`` seconds, at most an hour."""
    return click.option("--time-limit", type=FiniteFloat(min=minimum, max=3_600.0), default=None,
                        help=TIME_LIMIT_HELP)


@contextlib.contextmanager
def progress(label: str, as_json: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for work that can take over a second: ``with progress(...) as tick:``, then
    ``tick(done, total)``. Shown only when stderr is a terminal and the command prints no JSON (so pipes, logs
    and ``--json`` stay clean); otherwise ``tick`` does nothing."""
    if as_json or not sys.stderr.isatty():
        yield lambda _done, _total: None
        return
    from rich.progress import Progress
    with Progress(console=__getattr__("err"), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


class SafePath(click.Path):
    """``click.Path`` that refuses a NUL character with a usage error naming the option (click's own check
    calls ``os.stat``, whose ValueError would surface as an unnamed "out of range" message)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\0" in value:
            self.fail(f"got {value[:60]!r}; accepted: a path without NUL characters.", param, ctx)
        return super().convert(value, param, ctx)


FORCE_HELP = "Replace an existing output file (without it, an existing file is refused with exit 2)."
_FORCE_KEY = "moeplan.force"


def _remember_force(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[_FORCE_KEY] = value
    return value


force_option = click.option("--force", is_flag=True, expose_value=False, callback=_remember_force,
                            help=FORCE_HELP)
"""``--force`` for every command that writes a file: read back by :func:`forced`, so a command module only
adds the decorator."""


def forced() -> bool:
    """Whether this command was given ``--force``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_FORCE_KEY, False))


def check_output_path(option: str, path: str | None, *, force: bool | None = None) -> None:
    """Refuse (exit 2), before any work, an output path the one writer would refuse (link, device, existing
    file without --force, missing folder)."""
    if path:
        try:
            files.check_target(path, force=forced() if force is None else force)
        except files.FileWriteError as e:
            abort(EXIT_BAD_INPUT, f"{option}: {e}")


def check_export_path(export: str | None) -> None:
    """Reject an --export path whose extension picks no format or that the writer refuses (exit 2), before any
    work is done."""
    try:
        if export:
            check_export(export)
    except ExportError as e:
        abort(EXIT_BAD_INPUT, f"--export: {e}")
    check_output_path("--export", export)


def write_output(option: str, path: str, text: str, *, force: bool | None = None) -> None:
    """Write ``text`` through the one writer (:mod:`planner.inputs.files`); exit 2 naming ``option`` on failure."""
    try:
        files.write_text_atomic(path, text, force=forced() if force is None else force)
    except files.FileWriteError as e:
        abort(EXIT_BAD_INPUT, f"{option}: {e}")
    click.echo(f"wrote {path} ({len(text.encode()):,} bytes, {option})", err=True)  # stderr: stdout stays the result


def export_document(export: str | None, doc: Any, *, force: bool | None = None) -> None:
    """Write ``doc`` atomically in the format of the extension; nothing half-written on failure. ``force``
    (default: the command's ``--force``) allows replacing an existing file."""
    if not export:
        return
    try:
        text = render_export(export, doc)
    except ExportError as e:
        abort(EXIT_BAD_INPUT, f"--export: {e}")
    write_output("--export", export, text, force=force)


def launch_plan(engine: str | None, build: Any) -> Any:
    """``planner.emit`` launch plan of the spec ``build(emit_module)`` returns (None without --emit); exit 2 when
    the engine cannot express the plan."""
    if not engine:
        return None
    if engine not in SERVING_ENGINES:
        abort(EXIT_BAD_INPUT, f"--emit: got {engine!r} for a serving scenario; accepted: {', '.join(SERVING_ENGINES)} "
              f"({', '.join(TRAINING_ENGINES)} launch training scenarios)")
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


def scenario_and_deployment(path: str, plan_text: str | None) -> tuple[Scenario, DeploymentPlan]:
    """Load ``path`` and the deployment (``plan_text``: a plan or deployment string; else the scenario's
    ``plan:`` / ``deployment:``), checked against the model and the cluster (exit 2 naming what is wrong)."""
    from planner.inputs.deployment_text import check_deployment, parse_deployment
    from planner.inputs.scenario import ScenarioError
    sc = load(path)
    try:
        dep = parse_deployment(plan_text) if plan_text is not None else sc.deployment
    except ScenarioError as e:
        abort(EXIT_BAD_INPUT, str(e))
    if dep is None:
        abort(EXIT_BAD_INPUT, f"--plan: missing for {path}; accepted: a plan string such as "
              "'attn_dp=16,moe_ep=16', a deployment such as 'prefill: 1 x attn_dp=8,moe_ep=8; decode: 1 x "
              "attn_dp=8,moe_ep=8', or a 'plan:' / 'deployment:' key in the scenario")
    problems = check_deployment(dep, sc.model, sc.cluster.num_devices)
    if problems:
        abort(EXIT_BAD_INPUT, "; ".join(p.message() for p in problems))
    return sc, dep


def deployment_or_abort(path: str, plan_text: str | None, overlap_model: str, *,
                        measure_imbalance: bool = True, engine: Any = None,
                        refuse: bool = True):  # noqa: ANN201
    """Load, check the deployment and cost every pool (exit 2 / 1 on bad input / a pool that does not fit): a
    :class:`~planner.analysis.deployment.DeploymentEvaluation`. ``measure_imbalance``: replace the assumed
    expert imbalance by the CP-SAT placement's on the scenario's router counts (``place`` skips it: it places
    them itself and uses nothing from here but the fit check). ``engine`` (an ``EngineCapability``): cost as
    ``plan --engine`` does (planner/search/engines.py); ``refuse``: exit 2 when that engine's capability table
    refuses the deployment."""
    from planner.analysis.deployment import evaluate_deployment
    from planner.inputs.units import fmt_bytes
    sc, plan = scenario_and_deployment(path, plan_text)
    if engine is None:
        dep = evaluate_deployment(sc, plan, overlap_model=overlap_model, measure_imbalance=measure_imbalance)
    else:
        from planner.inputs.deployment_text import deployment_text
        from planner.search.engines import evaluate_for_engine, plan_refusal
        why = plan_refusal(engine, sc, plan) if refuse else None
        if why is not None:
            abort(EXIT_BAD_INPUT, f"--plan: got {deployment_text(plan)!r}; accepted: a deployment "
                  f"{engine.engine} {engine.version} launches ({why})")
        dep = evaluate_for_engine(engine, sc, plan, overlap_model=overlap_model,
                                  measure_imbalance=measure_imbalance)
    for pool in dep.pools:
        over = pool.over_capacity()
        if over:
            ph, m = over
            who = "" if len(dep.pools) == 1 else f"{pool.role.value} pool's "
            fixes = ["raise moe_ep / attn_tp", "use more devices", "a lower weight precision"]
            if m.static_bytes < m.capacity_bytes:  # the weights fit: a smaller batch or context can make room
                fixes.append("a smaller batch / shorter context")
            abort(EXIT_INFEASIBLE, f"memory: the {who}{ph} phase needs {fmt_bytes(m.used_bytes)} per device but "
                  f"{sc.cluster.device.id} has {fmt_bytes(m.capacity_bytes)} (short by {fmt_bytes(-m.free_bytes)}; "
                  f"weights alone {fmt_bytes(m.weight_bytes)}). Would make it fit: " + ", ".join(fixes) + ".")
    return dep


def evaluate_or_abort(path: str, plan_text: str | None, overlap_model: str, *, measure_imbalance: bool = True,
                      role: str = "decode"):  # noqa: ANN201
    """One pool of :func:`deployment_or_abort` as an :class:`~planner.analysis.evaluate.Evaluation` (its plan with
    ``dp`` = its replicas): ``role`` ``decode`` picks the pool that decodes, ``prefill`` the one that prefills
    (the same pool when aggregated)."""
    dep = deployment_or_abort(path, plan_text, overlap_model, measure_imbalance=measure_imbalance)
    return (dep.prefill if role == "prefill" else dep.decode).evaluation
