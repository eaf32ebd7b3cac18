"""``--export PATH``: write a moeplan document as JSON, YAML, Markdown or self-contained HTML, atomically.

A document is a model of :mod:`planner.documents` or the dict ``--json`` printed (JSON and YAML write
:func:`planner.documents.base.as_dict` of it; the reports read it back into its model). The format follows the
file's extension. The text is rendered first and then written to a temporary file in
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


Doc = Any
"""A :class:`planner.documents.base.Document` or its dict (imported lazily: ``--help`` does not need pydantic
models)."""


def _json(doc: Doc) -> str:
    from planner.documents.base import as_dict
    return json.dumps(as_dict(doc), indent=2, default=str) + "\n"


def _yaml(doc: Doc) -> str:
    from planner.documents.base import as_dict
    from planner.inputs.scenario import dump_yaml
    return dump_yaml(as_dict(doc))


def _markdown(doc: Doc) -> str:
    from planner.render.markdown import to_markdown
    return to_markdown(doc)


def _html(doc: Doc) -> str:
    from planner.render.html import to_html
    return to_html(doc)


RENDERERS: dict[str, Callable[[Doc], str]] = {
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


def render_export(path: str | Path, doc: Doc) -> str:
    """The text :func:`write_export` would write to ``path``."""
    return RENDERERS[export_format(path)](doc)


def write_export(path: str | Path, doc: Doc, *, force: bool = False) -> Path:
    """Write ``doc`` to ``path`` in the format of its extension, atomically (an existing file only with
    ``force``); returns the path written."""
    return write_text_atomic(path, render_export(path, doc), force=force)


def write_text_atomic(path: str | Path, text: str, *, force: bool = False) -> Path:
    """:func:`planner.inputs.files.write_text_atomic`, its error as an :class:`ExportError`."""
    try:
        return files.write_text_atomic(path, text, force=force)
    except files.FileWriteError as e:
        raise ExportError(str(e)) from e
