"""Every document kind: its schema id, its model and its schema file; and reading a printed document back."""

from __future__ import annotations

from typing import Any

from planner.documents.afd import AFD_SCHEMA, AfdDocument
from planner.documents.base import Document
from planner.documents.catalog import DEVICES_SCHEMA, MODELS_SCHEMA, DevicesDocument, ModelsDocument
from planner.documents.compare import COMPARE_SCHEMA, CompareDocument
from planner.documents.cost import COST_SCHEMA, CostDocument
from planner.documents.evaluate import EVALUATE_SCHEMA, EvaluateDocument
from planner.documents.place import PLACE_SCHEMA, PlaceDocument
from planner.documents.plan import PLAN_SCHEMA, PlanDocument
from planner.documents.schedule import SCHEDULE_SCHEMA, ScheduleDocument
from planner.documents.training import (
    TRAIN_COMPARE_SCHEMA,
    TRAIN_EVALUATE_SCHEMA,
    TRAIN_PLAN_SCHEMA,
    TrainingCompareDocument,
    TrainingEvaluateDocument,
    TrainingPlanDocument,
)

MODELS: dict[str, type[Document]] = {
    EVALUATE_SCHEMA: EvaluateDocument, PLAN_SCHEMA: PlanDocument, SCHEDULE_SCHEMA: ScheduleDocument,
    PLACE_SCHEMA: PlaceDocument, COMPARE_SCHEMA: CompareDocument, COST_SCHEMA: CostDocument,
    DEVICES_SCHEMA: DevicesDocument, MODELS_SCHEMA: ModelsDocument, AFD_SCHEMA: AfdDocument,
    TRAIN_EVALUATE_SCHEMA: TrainingEvaluateDocument, TRAIN_PLAN_SCHEMA: TrainingPlanDocument,
    TRAIN_COMPARE_SCHEMA: TrainingCompareDocument}
"""Schema id -> the model of that document."""

SCHEMA_FILES: dict[str, str] = {
    EVALUATE_SCHEMA: "evaluate", PLAN_SCHEMA: "plan", SCHEDULE_SCHEMA: "schedule", PLACE_SCHEMA: "place",
    COMPARE_SCHEMA: "compare", COST_SCHEMA: "cost", DEVICES_SCHEMA: "catalog_devices", MODELS_SCHEMA: "catalog_models",
    AFD_SCHEMA: "afd", TRAIN_EVALUATE_SCHEMA: "train_evaluate", TRAIN_PLAN_SCHEMA: "train_plan",
    TRAIN_COMPARE_SCHEMA: "train_compare"}
"""Schema id -> stem of its file in docs/schema/ (``<stem>.schema.json``)."""


class DocumentError(ValueError):
    """A dict that is no moeplan document: unknown ``schema``, or keys its model rejects."""


def schema_of(doc: Any) -> Any:
    """The ``schema`` value of a document model or of a printed document (None when there is none)."""
    if isinstance(doc, Document):
        return getattr(doc, "schema_id", None)
    return doc.get("schema") if isinstance(doc, dict) else None


def parse_document(doc: Document | dict[str, Any]) -> Document:
    """The typed document of a printed one (``json.loads`` of ``--json`` output), checked against its model; a
    :class:`Document` passes through. DocumentError names the schema value and the accepted ones."""
    if isinstance(doc, Document):
        return doc
    schema = schema_of(doc)
    if schema not in MODELS:
        raise DocumentError(f"schema: got {schema!r}; accepted: {', '.join(MODELS)}")
    return MODELS[schema].model_validate(doc)
