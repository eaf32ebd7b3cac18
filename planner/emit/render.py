"""Render a :class:`LaunchPlan` as shell lines (``shlex.join``-style) or as a JSON-ready document."""

from __future__ import annotations

import re
import shlex

from planner.documents.launch import LaunchBlock, LaunchCommandDoc
from planner.emit.types import LaunchCommand, LaunchPlan

_ROLE_VAR = re.compile(r"(AGGREGATED|PREFILL|DECODE)_(\d+)_(HEAD_ADDR|RANK_TABLE)")
_VAR = re.compile(r"\$\{(MODEL_PATH|LOCAL_ADDR|PWD|MASTER_ADDR|DATA_PATH|TOKENIZER_PATH|" + _ROLE_VAR.pattern + r")\}")
"""The only references that expand in the output: the variables the emitters write (``common.ref``) and the
header lists. Any other ``$``, ``${...}`` (say ``${HOME}`` in a hostile model id) is literal text."""
_STANDARD = {"PWD"}


def _pieces(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into (is a ``${VAR}`` reference, piece), in order; literal pieces may be empty."""
    out: list[tuple[bool, str]] = []
    at = 0
    for m in _VAR.finditer(text):
        out += [(False, text[at:m.start()]), (True, m.group(0))]
        at = m.end()
    return out + [(False, text[at:])]


def _quote(token: str) -> str:
    """One shell word: every literal piece through ``shlex.quote``; ``${VAR}`` references (the variables the
    header lists) stay expandable inside double quotes, so ``$(...)``, backticks, ``;`` or newlines anywhere
    else in the token are inert text."""
    if not _VAR.search(token):
        return shlex.quote(token)
    return "".join(f'"{p}"' if is_ref else shlex.quote(p) for is_ref, p in _pieces(token) if p)


def _heredoc_body(text: str) -> str:
    """Body of an unquoted here-document in which only ``${VAR}`` references expand: in the literal pieces the
    three characters such a body treats specially (backslash, ``$``, backtick) are backslash-escaped."""
    def lit(p: str) -> str:
        return p.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")
    return "".join(p if is_ref else lit(p) for is_ref, p in _pieces(text))


def _delimiter(lines: list[str]) -> str:
    """``EOF``, or ``EOF_1``, ``EOF_2``... when a body line equals it (a body line must never end the document)."""
    word, k = "EOF", 0
    while word in lines:
        k += 1
        word = f"EOF_{k}"
    return word


def _here_document(name: str, text: str) -> list[str]:
    """``cat > NAME <<'EOF'`` (quoted: nothing expands) for a file without ``${VAR}`` references; otherwise an
    unquoted delimiter with every literal character escaped, so only those references expand."""
    expands = bool(_VAR.search(text))
    body = (_heredoc_body(text) if expands else text).rstrip("\n").split("\n")
    word = _delimiter(body)
    opener = word if expands else f"'{word}'"
    return [f"cat > {shlex.quote(name)} <<{opener}", *body, word]


def _comment(text: str) -> str:
    """One comment line: control characters (a newline would end the comment) become spaces."""
    return "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)


def _describe(var: str) -> str:
    if var == "MODEL_PATH":
        return "local directory (or hub id) of the model weights"
    if var == "LOCAL_ADDR":
        return "IP address of the node the line runs on"
    if var == "MASTER_ADDR":
        return "IP address of training node rank 0 (the torchrun rendezvous)"
    if var == "DATA_PATH":
        return "prefix of the tokenized training data (Megatron .bin/.idx)"
    if var == "TOKENIZER_PATH":
        return "local directory (or hub id) of the tokenizer"
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
            for v in (m.group(1) for m in _VAR.finditer(t)):
                if v not in _STANDARD:
                    seen.setdefault(v, None)
    return list(seen)


def _command_line(c: LaunchCommand) -> str:
    env = " ".join(f"{k}={_quote(v)}" for k, v in c.env.items())
    cmd = " ".join(_quote(a) for a in c.argv)
    return f"{env} {cmd}" if env else cmd


def render_shell(plan: LaunchPlan) -> str:
    """Comment header (engine, version, sources, variables to set, what is not expressed), then per command its
    config files as here-documents (only ``${VAR}`` references expand) and the command line. Every value is
    quoted (``shlex.quote``): a hostile model id, path or name in the plan stays data when the lines run."""
    lines = [_comment(f"# moeplan launch lines for {plan.engine} {plan.version}")]
    lines += [_comment(f"#   flag names from {s}") for s in plan.sources]
    for v in variables(plan):
        lines.append(_comment(f"# set {v}: {_describe(v)}"))
    lines += [_comment(f"# note: {n}") for n in plan.notes]
    for c in plan.commands:
        lines.append("")
        lines.append(_comment(f"# {c.role} replica {c.replica}, node rank {c.node_rank} (cluster node {c.node})"))
        lines += [_comment(f"# {n}") for n in c.notes]
        for name, text in c.files.items():
            lines += _here_document(name, text)
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
