"""The JSON schemas in ``docs/schema/``, generated from the document models (never edited by hand).

``python -m planner.documents.schema --write`` rewrites them; ``python -m planner.documents.schema`` (or
``--check``) exits 1 and names each file that differs from what the models generate (``tests/test_schema.py``
runs the same check). Each file is self-contained (draft 2020-12, its parts under ``$defs``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Len
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from planner.documents.evaluate import EVALUATE_SCHEMA, EvaluateDocument
from planner.documents.registry import MODELS, SCHEMA_FILES

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schema"
"""docs/schema/ of a source checkout."""
REGENERATE = "python -m planner.documents.schema --write"

EVALUATE_OUTPUT = ("Output of `moeplan evaluate SCENARIO --json`: one document ($defs/EvaluateDocument), or, for "
                   "several scenarios, an array of them in argument order. ")


class _Generator(GenerateJsonSchema):
    """Pydantic's generator without the per-property titles it derives from field names (noise beside the key)."""

    def field_title_should_be_set(self, schema: Any) -> bool:  # noqa: ARG002
        return False


def _one_line(node: Any) -> Any:
    """Docstrings become descriptions: their line breaks become spaces."""
    if isinstance(node, dict):
        return {k: " ".join(v.split()) if k == "description" and isinstance(v, str) else _one_line(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_one_line(v) for v in node]
    return node


def _ordered(schema_id: str, description: str, body: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in body.items() if k not in ("title", "description")}
    return _one_line({"$schema": DRAFT, "title": schema_id, "description": description, **rest})


def document_schema(schema_id: str) -> dict[str, Any]:
    """The JSON schema of one document kind, as ``docs/schema/`` holds it."""
    model = MODELS[schema_id]
    if schema_id == EVALUATE_SCHEMA:
        several = Annotated[list[EvaluateDocument], Len(min_length=2)]
        body = TypeAdapter(EvaluateDocument | several).json_schema(schema_generator=_Generator)
        return _ordered(schema_id, EVALUATE_OUTPUT + EvaluateDocument.__doc__.split(". ", 1)[-1], body)
    body = model.model_json_schema(schema_generator=_Generator)
    return _ordered(schema_id, body.get("description", ""), body)


def schema_text(schema_id: str) -> str:
    return json.dumps(document_schema(schema_id), indent=2, ensure_ascii=False) + "\n"


def generated(folder: Path = SCHEMA_DIR) -> dict[Path, str]:
    """File -> text, for every document kind."""
    return {folder / f"{stem}.schema.json": schema_text(sid) for sid, stem in SCHEMA_FILES.items()}


def stale(folder: Path = SCHEMA_DIR) -> list[str]:
    """What differs between ``folder`` and the models: missing or changed files, and schema files no model makes."""
    want = generated(folder)
    out = [f"{p.name}: {'differs from' if p.is_file() else 'missing; expected'} the generated schema"
           for p, text in want.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    out += [f"{p.name}: no document model generates it" for p in sorted(folder.glob("*.schema.json"))
            if p not in want]
    return out


def write(folder: Path = SCHEMA_DIR) -> list[Path]:
    """Rewrite every schema file in ``folder`` and delete those no model generates; returns the files written."""
    want = generated(folder)
    for p in folder.glob("*.schema.json"):
        if p not in want:
            p.unlink()
    for p, text in want.items():
        p.write_text(text, encoding="utf-8")
    return sorted(want)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m planner.documents.schema", description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite docs/schema/ from the document models")
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/schema/ differs (the default)")
    ap.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="schema folder (default: docs/schema/)")
    args = ap.parse_args(argv)
    if args.write:
        for p in write(args.dir):
            print(f"wrote {p}")
        return 0
    problems = stale(args.dir)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"regenerate with: {REGENERATE}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
