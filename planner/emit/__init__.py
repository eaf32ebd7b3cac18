"""Launch lines that realise a plan in a serving engine (``--emit vllm|sglang|trtllm|mindie``).

Pure functions: a typed :class:`LaunchSpec` (pools, per-replica degrees, batch, chunk, memory) in, a
:class:`LaunchPlan` (engine, targeted version, one :class:`LaunchCommand` per role, replica and node rank) out.
What an engine cannot express raises :class:`EmitError` naming the plan field, the value and what the engine
accepts. Every flag, config key and environment variable an emitter writes is listed, with the document it was
read from, in that emitter's module-level ``SOURCE`` table (README "Launch configs (--emit)").
"""

from __future__ import annotations

from collections.abc import Callable

from planner.emit import mindie, sglang, trtllm, vllm
from planner.emit.render import launch_document, render_shell
from planner.emit.spec import HF_REPOS, spec_from_deployment, spec_from_evaluation
from planner.emit.types import EmitError, EngineSource, LaunchCommand, LaunchPlan, LaunchSpec, RoleSpec

ENGINES: dict[str, tuple[EngineSource, Callable[[LaunchSpec], LaunchPlan]]] = {
    "vllm": (vllm.SOURCE, vllm.emit),
    "sglang": (sglang.SOURCE, sglang.emit),
    "trtllm": (trtllm.SOURCE, trtllm.emit),
    "mindie": (mindie.SOURCE, mindie.emit),
}


def emit(spec: LaunchSpec, engine: str) -> LaunchPlan:
    """Launch plan of ``spec`` for ``engine`` (a key of :data:`ENGINES`); raises :class:`EmitError`."""
    return ENGINES[engine][1](spec)


__all__ = ["ENGINES", "HF_REPOS", "EmitError", "EngineSource", "LaunchCommand", "LaunchPlan", "LaunchSpec",
           "RoleSpec", "emit", "launch_document", "render_shell", "spec_from_deployment", "spec_from_evaluation"]
