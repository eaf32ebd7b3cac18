"""``--export PATH``: write a moeplan document as JSON, YAML, Markdown or self-contained HTML, atomically.

The format follows the file's extension. The text is rendered first and then written to a temporary file in
the same folder, flushed and renamed over ``PATH``: a failure at any step leaves no half-written file (and no
temporary file) behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planner.inputs import files

EXTENSIONS = (".json", ".yaml", ".yml", ".md", ".html")
ACCEPTED = "a file ending in " + ", ".join(EXTENSIONS[:-1]) + " or " + EXTENSIONS[-1]


class ExportError(Exception):
    """Bad export path (unknown extension, unwritable folder); the message names the path and what is accepted."""


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, default=str) + "\n"


def _yaml(doc: dict[str, Any]) -> str:
    from planner.inputs.scenario import dump_yaml
    return dump_yaml(doc)


def _markdown(doc: dict[str, Any]) -> str:
    from planner.render.markdown import to_markdown
    return to_markdown(doc)


def _html(doc: dict[str, Any]) -> str:
    from planner.render.html import to_html
    return to_html(doc)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    ".json": _json, ".yaml": _yaml, ".yml": _yaml, ".md": _markdown, ".html": _html}


def export_format(path: str | Path) -> str:
    """The extension that picks the format (lower case); ExportError when it is not one of :data:`EXTENSIONS`."""
    ext = Path(path).suffix.lower()
    if ext not in RENDERERS:
        raise ExportError(f"got {str(path)!r}; accepted: {ACCEPTED}")
    return ext


def check_export(path: str | Path) -> str:
    """:func:`export_format`, plus the folder must exist and be writable: called before any work is done."""
    ext = export_format(path)
    folder = Path(path).parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        why = "is not writable" if folder.is_dir() else "does not exist"
        raise ExportError(f"got {str(path)!r} (folder {str(folder)!r} {why}); accepted: {ACCEPTED} "
                          "in an existing, writable folder")
    return ext


def render_export(path: str | Path, doc: dict[str, Any]) -> str:
    """The text :func:`write_export` would write to ``path``."""
    return RENDERERS[export_format(path)](doc)


def write_export(path: str | Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` to ``path`` in the format of its extension, atomically; returns the path written."""
    return write_text_atomic(path, render_export(path, doc))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """:func:`planner.inputs.files.write_text_atomic`, its error as an :class:`ExportError`."""
    try:
        return files.write_text_atomic(path, text)
    except files.FileWriteError as e:
        raise ExportError(str(e)) from e
