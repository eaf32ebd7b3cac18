"""Files in: the one bounded reader every input file goes through (scenarios, hf configs, load files).

Before any parsing a file must be a regular file (no device node, FIFO or folder: ``/dev/zero`` fails at once)
no larger than its cap, and UTF-8 text (a UTF-8 byte-order mark is dropped; UTF-16 and latin-1 are refused).
YAML is read with a loader that refuses aliases (an alias bomb is a 900-byte file that expands to gigabytes),
duplicate keys and nesting deeper than :data:`MAX_DEPTH`; JSON refuses duplicate keys, NaN / Infinity and
runaway nesting. Every refusal is an :class:`InputFileError` whose ``accepted`` says what would be read.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

MIB = 2**20
SCENARIO_MAX_BYTES = 4 * MIB
"""Cap of a scenario YAML file and of a config.json / hf_quant_config.json (the largest shipped is ~10 KiB)."""
LOADS_MAX_BYTES = 64 * MIB
"""Cap of an expert-load file (1,024 layers x 4,096 experts of 15-digit counts is ~64 MiB)."""
MAX_DEPTH = 32
"""Deepest nesting of mappings / lists accepted in YAML or JSON input (a scenario needs 4)."""


class InputFileError(Exception):
    """An input file refused before or while parsing; ``accepted`` says what would be read."""

    def __init__(self, accepted: str, *, where: str = "file", found: str = "") -> None:
        super().__init__(accepted)
        self.accepted = accepted
        self.where = where
        """Where in the file (``line 2, column 7``), or ``file``."""
        self.found = found
        """What was found there, in words (empty when the whole file is the problem)."""


def shorten(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error message stays one readable line."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile object whose repr fails still needs a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shorten_text(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_text(path: str | Path, *, max_bytes: int = SCENARIO_MAX_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``, at most ``max_bytes`` bytes; else :class:`InputFileError`."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputFileError(f"an existing, readable file ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError("a regular file (not a folder, device node or pipe)")
    if st.st_size > max_bytes:
        raise InputFileError(f"a file of at most {max_bytes // MIB} MiB (this one has {st.st_size:,} bytes)")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise InputFileError(f"a readable file ({e.strerror})") from None
    if len(data) > max_bytes:  # the file grew after stat
        raise InputFileError(f"a file of at most {max_bytes // MIB} MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise InputFileError(f"UTF-8 text (byte {e.start} is not UTF-8{'; this file is UTF-16' if utf16 else ''}; "
                             "re-save it as UTF-8)") from None


class _BoundedLoader(yaml.SafeLoader):
    """Safe YAML loader without aliases, duplicate keys or nesting deeper than :data:`MAX_DEPTH`."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(problem="aliases (*name) are not accepted; write the value out",
                                       problem_mark=event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(problem=f"nesting deeper than {MAX_DEPTH} levels",
                                           problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {shorten(key, 40)}",
                                           problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse YAML ``text`` with the bounded loader; :class:`InputFileError` names the line of a problem."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - _BoundedLoader is a SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None)
        raise InputFileError(f"valid YAML{where}" + (f" ({problem})" if problem else "")) from None
    except (RecursionError, MemoryError):
        raise InputFileError(f"YAML nested at most {MAX_DEPTH} levels") from None


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise InputFileError(f"JSON without duplicate keys (key {shorten(k, 40)} appears twice)")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise InputFileError(f"JSON numbers that are finite (got {name})")


def load_json(text: str) -> Any:
    """Parse JSON ``text``: no duplicate keys, no NaN / Infinity, no nesting past the interpreter's stack."""
    try:
        return json.loads(text, object_pairs_hook=_pairs_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise InputFileError(f"valid JSON (line {e.lineno}: {e.msg})", where=f"line {e.lineno}, column {e.colno}",
                             found=e.msg) from None
    except RecursionError:
        raise InputFileError("JSON nested a few hundred levels at most") from None
    except ValueError as e:  # integers longer than Python's 4,300-digit conversion limit
        raise InputFileError(f"valid JSON numbers ({shorten(str(e), 60)})") from None
