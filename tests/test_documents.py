"""Output documents as pydantic models (planner/documents/): frozen, closed, enums for closed choices, printed
unchanged, read back exactly, and read by the renderers by attribute."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _report_docs import KINDS, document
from pydantic import ValidationError

from cost_models.memory import MemoryBreakdown
from cost_models.parallel import OverlapPolicy, ParallelDims
from planner.documents.base import as_dict
from planner.documents.evaluate import DecodePhase, EvaluateDocument, OpDoc, memory_document
from planner.documents.parts import parallel_plan
from planner.documents.registry import MODELS, DocumentError, parse_document
from planner.documents.schedule import symbol
from planner.render.export import render_export
from planner.render.html import to_html
from planner.render.markdown import to_markdown
from planner.render.report_build import build_report

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
GIB = 2**30


def _op(**kw: object) -> OpDoc:
    base = dict(name="attn.qkv_proj", kind="compute", seconds=1e-5, flops=0, hbm_bytes=4096.0, scale_up_bytes=0,
                scale_out_bytes=0, bound="memory")
    return OpDoc(**(base | kw))


def test_numbers_print_as_the_cost_model_gave_them():
    # an int stays an int and a float a float, so a document's bytes do not change on the way through its model
    assert as_dict(_op()) == {"name": "attn.qkv_proj", "kind": "compute", "seconds": 1e-5, "flops": 0,
                              "hbm_bytes": 4096.0, "scale_up_bytes": 0, "scale_out_bytes": 0, "bound": "memory"}
    assert json.dumps(as_dict(_op())).count(": 0,") == 3 and '"hbm_bytes": 4096.0' in json.dumps(as_dict(_op()))


def test_documents_are_frozen_and_closed():
    op = _op()
    with pytest.raises(ValidationError, match="frozen"):
        op.seconds = 2.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        _op(seconds_ms=0.01)


@pytest.mark.parametrize(("key", "value"), [("bound", "fast"), ("kind", "kernel"), ("seconds", -1.0),
                                            ("seconds", "1e-5")])
def test_closed_choices_and_ranges_are_checked_when_built(key, value):
    with pytest.raises(ValidationError, match=key):
        _op(**{key: value})


def test_memory_part_derives_its_totals_by_hand():
    m = MemoryBreakdown(attention_weight_bytes=1 * GIB, dense_ffn_weight_bytes=2 * GIB,
                        shared_expert_weight_bytes=0.5 * GIB, routed_expert_weight_bytes=30 * GIB,
                        router_weight_bytes=0.25 * GIB, embedding_weight_bytes=1.25 * GIB, kv_cache_bytes=40 * GIB,
                        activation_bytes=4 * GIB, comm_buffer_bytes=2 * GIB, runtime_reserve_bytes=3 * GIB,
                        capacity_bytes=80 * GIB)
    doc = memory_document(m)
    assert doc.weight_bytes == 35 * GIB  # 1 + 2 + 0.5 + 30 + 0.25 + 1.25
    assert doc.static_bytes == 40 * GIB  # 35 weights + 2 buffers + 3 reserve
    assert doc.used_bytes == 84 * GIB  # 40 static + 40 KV + 4 activations
    assert doc.free_bytes == -4 * GIB  # 80 - 84: a negative free means the phase does not fit, and is allowed


def test_parallel_plan_carries_every_degree_in_order():
    dims = ParallelDims(attn_dp=16, moe_ep=16, redundant_experts=16, micro_batches=2, overlap=OverlapPolicy.TWO_BATCH)
    assert as_dict(parallel_plan(dims)) == dims.as_dict()
    assert list(as_dict(parallel_plan(dims))) == list(dims.as_dict())


def test_optional_keys_are_absent_when_unset_and_printed_when_set():
    doc = parse_document(document("evaluate"))
    assert isinstance(doc, EvaluateDocument) and doc.schedule is not None
    bare = doc.model_copy(update={"schedule": None, "placement": None, "launch": None, "deployment": None,
                                  "prefill_pool": None})
    printed = as_dict(bare)
    assert "schedule" not in printed and "launch" not in printed and "placement" not in printed
    assert list(printed)[-1] == "device"
    assert "schedule" in as_dict(doc) and "deployment" in as_dict(doc)


@pytest.mark.parametrize("golden", ["evaluate_deepseek_v3_h200_16.json", "plan_deepseek_v3_h200_16.json"])
def test_golden_documents_read_back_and_print_byte_for_byte(golden):
    text = (GOLDEN / golden).read_text()
    doc = parse_document(json.loads(text))
    assert json.dumps(as_dict(doc), indent=2) + "\n" == text


@pytest.mark.parametrize("kind", KINDS)
def test_every_printed_document_reads_back_into_its_model_unchanged(kind):
    printed = document(kind)
    doc = parse_document(printed)
    assert type(doc) is MODELS[printed["schema"]]
    assert json.dumps(as_dict(doc)) == json.dumps(printed)  # same keys, same order, same numbers


def test_reading_back_names_the_unknown_schema_and_passes_a_model_through():
    with pytest.raises(DocumentError, match=r"schema: got 'moeplan.nope/1'; accepted: moeplan.evaluate/2, "):
        parse_document({"schema": "moeplan.nope/1"})
    doc = parse_document(document("schedule"))
    assert parse_document(doc) is doc


def test_decode_phase_keys_differ_from_prefill():
    # decode reports sequences and TPOT; prefill tokens and TTFT: each phase's model takes only its own keys
    printed = document("evaluate")["decode"]
    assert DecodePhase.model_validate(printed).tpot_s == printed["tpot_s"]
    with pytest.raises(ValidationError, match="ttft_s"):
        DecodePhase.model_validate(printed | {"ttft_s": 0.1})


@pytest.mark.parametrize("kind", KINDS)
def test_reports_of_the_model_and_of_its_printed_dict_are_the_same(kind):
    printed = document(kind)
    model = parse_document(printed)
    assert build_report(model) == build_report(printed)
    assert to_html(model) == to_html(printed) and to_markdown(model) == to_markdown(printed)


@pytest.mark.parametrize("ext", [".json", ".yaml"])
def test_export_writes_the_dict_of_a_model(ext):
    printed = document("schedule")
    model = parse_document(printed)
    assert render_export(f"r{ext}", model) == render_export(f"r{ext}", printed)


def test_schedule_symbols():
    assert [symbol(n) for n in ("moe.dispatch", "moe.shared.down", "attn.tp_all_reduce", "attn.core", "embed.x")] \
        == ["D", "S", "R", "A", "E"]


STRING_KEY = re.compile(r"""(?<=[\w)\]])\[\s*["'][A-Za-z_]\w*["']\s*\]|\.get\(\s*["']""")
"""``doc["key"]`` or ``doc.get("key"...)``: a document read by string key."""


@pytest.mark.parametrize("module", ["sections.py", "report_build.py"])
def test_report_builders_read_documents_by_attribute(module):
    text = (ROOT / "planner" / "render" / module).read_text()
    assert STRING_KEY.findall(text) == []
