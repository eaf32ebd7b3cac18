"""Copy the argument definitions of a framework's parser into test data (run by hand; the output is committed).

Usage: ``python tests/data/train_args/extract.py SOURCE_LABEL FILE.py [FILE.py ...] > OUT.json`` where each FILE is
the framework file at the pinned commit, its path with ``/`` written as ``__``
(``git show COMMIT:PATH > PATH_WITH__``).  Every ``*.add_argument(...)`` call whose
option strings are literals is recorded with its dest, action, literal default, nargs, type name and literal choices, in file order;
a later definition of the same option replaces an earlier one (MindSpeed and MindSpeed-LLM re-register Megatron's
options with ``conflict_handler='resolve'``), and a feature's ``add_parser_argument_choices_value(parser, OPT, VALUE)``
adds VALUE to OPT's choices.  The AST is read, nothing is imported, so torch is not needed.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

_TYPES = {"int", "float", "str"}


def _literal(node: ast.AST) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _type_name(node: ast.AST) -> str:
    """``int`` / ``float`` / ``str`` when literal; ``callable`` for anything else (a parser function)."""
    if isinstance(node, ast.Name) and node.id in _TYPES:
        return node.id
    return "callable"


def _argument(call: ast.Call) -> dict | None:
    names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    options = [n for n in names if n.startswith("--")]
    if not options:
        return None
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    action = _literal(kw["action"]) if "action" in kw else "store"
    entry: dict = {"options": options, "action": action if isinstance(action, str) else "callable",
                   "dest": _literal(kw["dest"]) if "dest" in kw else options[0][2:].replace("-", "_")}
    if "default" in kw and isinstance(kw["default"], ast.Constant):
        entry["default"] = kw["default"].value
    if "nargs" in kw:
        entry["nargs"] = _literal(kw["nargs"])
    if "type" in kw:
        entry["type"] = _type_name(kw["type"])
    if "choices" in kw:
        choices = _literal(kw["choices"])
        entry["choices"] = list(choices) if isinstance(choices, (list, tuple, set)) else None
    return entry


def _choice_extension(call: ast.Call) -> tuple[str, str] | None:
    """``add_parser_argument_choices_value(parser, "--opt", "value")`` (MindSpeed's features extend a choice list)."""
    vals = [_literal(a) for a in call.args[1:3]]
    if len(vals) == 2 and all(isinstance(v, str) for v in vals):
        return vals[0], vals[1]
    return None


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def extract(paths: list[Path]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    extensions: list[tuple[str, str]] = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        for node in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
            if _name(node) == "add_parser_argument_choices_value":
                ext = _choice_extension(node)
                extensions += [ext] if ext else []
                continue
            if _name(node) != "add_argument":
                continue
            entry = _argument(node)
            if entry:
                entry["file"] = path.name.replace("__", "/")
                for opt in entry["options"]:
                    out[opt] = entry
    for opt, value in extensions:  # applied once every definition is in (features register after the base)
        if opt in out and out[opt].get("choices") is not None and value not in out[opt]["choices"]:
            out[opt]["choices"].append(value)
    return out


def main() -> None:
    label, files = sys.argv[1], [Path(p) for p in sys.argv[2:]]
    json.dump({"source": label, "arguments": extract(files)}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
