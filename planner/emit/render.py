"""Render a :class:`LaunchPlan` as shell lines (``shlex.join``-style) or as a JSON-ready document."""

from __future__ import annotations

import re
import shlex

from planner.documents.launch import LaunchBlock, LaunchCommandDoc
from planner.emit.types import LaunchCommand, LaunchPlan

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STANDARD = {"PWD"}
_ROLE_VAR = re.compile(r"(AGGREGATED|PREFILL|DECODE)_(\d+)_(HEAD_ADDR|RANK_TABLE)")


def _quote(token: str) -> str:
    """``shlex.quote``, except that ``${VAR}`` references stay expandable (double quotes)."""
    if "${" not in token:
        return shlex.quote(token)
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'


def _describe(var: str) -> str:
    if var == "MODEL_PATH":
        return "local directory (or hub id) of the model weights"
    if var == "LOCAL_ADDR":
        return "IP address of the node the line runs on"
    m = _ROLE_VAR.fullmatch(var)
    if m:
        role, k, kind = m.group(1).lower(), m.group(2), m.group(3)
        if kind == "HEAD_ADDR":
            return f"IP address of node rank 0 of {role} replica {k}"
        return f"path of the rank table (rank_table_file.json) listing the nodes of {role} replica {k}"
    return "set by you"


def variables(plan: LaunchPlan) -> list[str]:
    """Environment variables the commands read and the user must set, in first-use order."""
    seen: dict[str, None] = {}
    for c in plan.commands:
        texts = [*c.argv, *c.env.values(), *c.files.values()]
        for t in texts:
            for v in _VAR.findall(t):
                if v not in _STANDARD:
                    seen.setdefault(v, None)
    return list(seen)


def _command_line(c: LaunchCommand) -> str:
    env = " ".join(f"{k}={_quote(v)}" for k, v in c.env.items())
    cmd = " ".join(_quote(a) for a in c.argv)
    return f"{env} {cmd}" if env else cmd


def render_shell(plan: LaunchPlan) -> str:
    """Comment header (engine, version, sources, variables to set, what is not expressed), then per command its
    config files as here-documents (unquoted, so ``${VAR}`` expands) and the command line."""
    lines = [f"# moeplan launch lines for {plan.engine} {plan.version}"]
    lines += [f"#   flag names from {s}" for s in plan.sources]
    for v in variables(plan):
        lines.append(f"# set {v}: {_describe(v)}")
    lines += [f"# note: {n}" for n in plan.notes]
    for c in plan.commands:
        lines.append("")
        lines.append(f"# {c.role} replica {c.replica}, node rank {c.node_rank} (cluster node {c.node})")
        lines += [f"# {n}" for n in c.notes]
        for name, text in c.files.items():
            lines.append(f"cat > {shlex.quote(name)} <<EOF")
            lines += text.rstrip("\n").split("\n")
            lines.append("EOF")
        lines.append(_command_line(c))
    return "\n".join(lines) + "\n"


def launch_document(plan: LaunchPlan) -> LaunchBlock:
    """The ``launch`` key of the ``--json`` documents."""
    return LaunchBlock(engine=plan.engine, version=plan.version, sources=list(plan.sources),
                       variables={v: _describe(v) for v in variables(plan)}, notes=list(plan.notes),
                       commands=[LaunchCommandDoc(role=c.role, replica=c.replica, node_rank=c.node_rank, node=c.node,
                                                  argv=list(c.argv), env=dict(c.env), files=dict(c.files),
                                                  notes=list(c.notes), shell=_command_line(c))
                                 for c in plan.commands])
