"""The JSON schemas in docs/schema/ are what the document models generate, every ``--json`` document validates
against its schema, and the schemas can fail.

Each schema file is self-contained (its parts under ``$defs``), so the plain ``jsonschema`` validator reads it
with no registry. When a model changes, regenerate with ``python -m planner.documents.schema --write``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from planner.cli import main
from planner.documents import schema as gen
from planner.documents.registry import MODELS, SCHEMA_FILES

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "docs" / "schema"
DEFAULT = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"
ASCEND_16 = ROOT / "scenarios" / "ascend_910b_deepseek_v3_16cards.yaml"
ASCEND_64 = ROOT / "scenarios" / "ascend_910b_deepseek_v3_64cards.yaml"
STEP3_2A2F = ROOT / "scenarios" / "validation" / "step3_2a2f_h800_decode.yaml"
QWEN30_910B = ROOT / "scenarios" / "training" / "qwen3_30b_a3b_910b_16.yaml"
ROUTING_COUNTS = ROOT / "planner" / "catalog" / "expert_loads" / "deepseek_v3_routing_counts.csv"
DOCUMENTS = tuple(SCHEMA_FILES.values())
"""Schema file stems: evaluate, plan, schedule, place, compare, cost, catalog_devices, catalog_models, afd."""
VERSIONS = {"evaluate": 2, "plan": 2, "place": 2, "compare": 2, "schedule": 1, "cost": 1, "catalog_devices": 1,
            "catalog_models": 1, "afd": 1, "train_evaluate": 1, "train_plan": 1, "train_compare": 1}
"""/2: the _tok_s -> _tok_per_s and CP-SAT work-unit renames; the others never renamed a key."""
UNIT_WORDS = re.compile(r"second|bytes|token|FLOP|count|fraction|ratio|dimensionless|ind(ex|ices)|units|elements"
                        r"|seed|tok/s|row's unit", re.I)
"""What a number's description must say: its unit, or what it counts."""

DENSE_SCENARIO = """
name: Llama 3.1 70B on 8 x H200 (dense)
model: {catalog: llama-3.1-70b, weight_precision: bf16}
cluster: {device: h200_sxm, nodes: 1, devices_per_node: 8}
workload:
  input_tokens: 2000
  output_tokens: 500
plan: attn_tp=8,dense_tp=8
"""


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())


def problems(name: str, doc: Any) -> list[str]:
    """Validation errors of ``doc`` against ``docs/schema/<name>.schema.json`` (empty: valid), each with the JSON
    path of the bad value."""
    v = Draft202012Validator(schema(name))
    return [f"{(e := best_match([err])).json_path}: {e.message[:300]}" for err in v.iter_errors(doc)]


def run_json(*args: str | Path) -> Any:
    res = CliRunner().invoke(main, [*map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# --- the schema files are generated


def test_committed_schemas_are_the_generated_ones():
    stale = gen.stale()
    assert stale == [], ("docs/schema/ differs from the document models; regenerate with "
                         f"`{gen.REGENERATE}` and commit the result:\n" + "\n".join(stale))


def test_the_check_fails_on_an_edited_missing_or_extra_schema_file(tmp_path):
    gen.write(tmp_path)
    assert gen.stale(tmp_path) == []
    plan = tmp_path / "plan.schema.json"
    plan.write_text(plan.read_text().replace("Time per output token", "Time per token"))
    (tmp_path / "evaluate.schema.json").unlink()
    (tmp_path / "common.schema.json").write_text("{}")
    assert gen.stale(tmp_path) == ["evaluate.schema.json: missing; expected the generated schema",
                                   "plan.schema.json: differs from the generated schema",
                                   "common.schema.json: no document model generates it"]
    gen.write(tmp_path)
    assert gen.stale(tmp_path) == [] and not (tmp_path / "common.schema.json").exists()


def test_schema_module_check_exits_1_and_says_how_to_regenerate(tmp_path, capsys):
    assert gen.main(["--check", "--dir", str(tmp_path)]) == 1
    assert gen.REGENERATE in capsys.readouterr().err
    assert gen.main(["--write", "--dir", str(tmp_path)]) == 0
    assert gen.main(["--dir", str(tmp_path)]) == 0


def test_every_document_kind_has_a_schema_file():
    assert set(MODELS) == set(SCHEMA_FILES)
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json")) == sorted(f"{s}.schema.json" for s in DOCUMENTS)


# --- the schema files themselves


def _objects(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema that declares ``properties``, with its JSON-pointer-ish location."""
    if isinstance(node, dict):
        if "properties" in node:
            yield where, node
        for k, v in node.items():
            yield from _objects(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _objects(v, f"{where}/{i}")


def _is_number(sub: dict[str, Any]) -> bool:
    kinds = [sub, *sub.get("anyOf", []), sub.get("items", {}), sub.get("additionalProperties") or {}]
    return any(isinstance(k, dict) and k.get("type") in ("number", "integer") for k in kinds)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_schema_is_draft_2020_12_with_every_key_described_and_closed(name):
    s = schema(name)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(s)
    assert s.get("description")
    for key, sub in s.get("$defs", {}).items():
        assert sub.get("description"), f"{name}: $defs/{key} has no description"
    for where, obj in _objects(s):
        assert obj.get("additionalProperties") is False, f"{name}{where}: fixed-shape object left open"
        for key, sub in obj["properties"].items():
            assert sub.get("description"), f"{name}{where}/properties/{key} has no description"
            if _is_number(sub):
                assert UNIT_WORDS.search(sub["description"]), f"{name}{where}/{key}: number without a unit"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_schema_id_is_a_const_matching_the_title(name):
    s = schema(name)
    root = s["$defs"]["EvaluateDocument"] if name == "evaluate" else s
    assert root["properties"]["schema"]["const"] == s["title"] == f"moeplan.{name.replace('_', '.')}/{VERSIONS[name]}"


def test_optional_keys_may_be_absent_but_never_null():
    doc = schema("evaluate")["$defs"]["EvaluateDocument"]
    for key in ("schedule", "placement", "launch"):
        assert key not in doc["required"] and "$ref" in doc["properties"][key]
        assert "anyOf" not in doc["properties"][key]


# --- documents from the shipped scenarios


@pytest.fixture(scope="module")
def loads_4_layers(tmp_path_factory) -> Path:
    """The shipped router counts cut to 4 MoE layers (its '#' source line kept), to keep placement fast."""
    lines = ROUTING_COUNTS.read_text().splitlines(keepends=True)
    assert lines[0].startswith("#")
    path = tmp_path_factory.mktemp("loads") / "deepseek_v3_4_layers.csv"
    path.write_text("".join(lines[:5]))
    return path


@pytest.fixture(scope="module")
def evaluate_doc() -> dict[str, Any]:
    return run_json("evaluate", DEFAULT)


@pytest.fixture(scope="module")
def plan_doc() -> dict[str, Any]:
    return run_json("plan", DEFAULT, "--seed", "0")


@pytest.fixture(scope="module")
def schedule_doc() -> dict[str, Any]:
    return run_json("schedule", DEFAULT)


@pytest.fixture(scope="module")
def place_doc(loads_4_layers) -> dict[str, Any]:
    return run_json("place", DEFAULT, "--expert-load", loads_4_layers, "--time-limit", "0.05")


@pytest.fixture(scope="module")
def compare_doc() -> dict[str, Any]:
    return run_json("compare", ASCEND_16, "--baseline", ASCEND_16, "--candidate", ASCEND_64)


@pytest.fixture(scope="module")
def cost_doc() -> dict[str, Any]:
    return run_json("cost", "gemm", "--device", "h200_sxm", "--m", "64", "--k", "7168", "--n", "4096")


@pytest.fixture(scope="module")
def catalog_devices_doc() -> dict[str, Any]:
    return run_json("catalog", "devices")


@pytest.fixture(scope="module")
def catalog_models_doc() -> dict[str, Any]:
    return run_json("catalog", "models")


@pytest.fixture(scope="module")
def afd_doc() -> dict[str, Any]:
    return run_json("evaluate", STEP3_2A2F)


@pytest.fixture(scope="module")
def train_evaluate_doc() -> dict[str, Any]:
    return run_json("evaluate", QWEN30_910B)


@pytest.fixture(scope="module")
def train_plan_doc() -> dict[str, Any]:
    return run_json("plan", QWEN30_910B)


@pytest.fixture(scope="module")
def train_compare_doc() -> dict[str, Any]:
    return run_json("compare", QWEN30_910B, "--baseline", QWEN30_910B, "--candidate", "tp=1,pp=2,ep=8,recompute=full,"
                    "schedule=zb1p")


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_validates(name, request):
    doc = request.getfixturevalue(f"{name}_doc")
    assert doc["schema"] == f"moeplan.{name.replace('_', '.')}/{VERSIONS[name]}"
    assert problems(name, doc) == []


def test_cost_of_attention_validates():
    doc = run_json("cost", "attention", "--device", "h200_sxm", "--phase", "prefill", "--batch", "2", "--q-heads",
                   "16", "--kv-heads", "4", "--head-dim", "128", "--context", "4000")
    assert doc["args"]["phase"] == "prefill" and problems("cost", doc) == []


def test_evaluate_of_a_dense_model_validates(tmp_path):
    path = tmp_path / "dense.yaml"
    path.write_text(DENSE_SCENARIO)
    doc = run_json("evaluate", path)
    assert set(doc["schedule"]["layers"]) == {"dense"} and doc["slo"]["ttft_met"] is None
    assert problems("evaluate", doc) == []


def test_evaluate_with_a_load_file_validates_with_its_placement(tmp_path, loads_4_layers):
    text = DEFAULT.read_text()
    assert text.count("\nworkload:\n") == 1
    path = tmp_path / "with_loads.yaml"
    path.write_text(text.replace("\nworkload:\n", f"\nworkload:\n  expert_load: {loads_4_layers}\n"))
    doc = run_json("evaluate", path)
    assert doc["placement"]["layers"] == [0, 1, 2, 3]
    assert problems("evaluate", doc) == []


def test_evaluate_with_launch_lines_validates():
    doc = run_json("evaluate", DEFAULT, "--emit", "sglang")
    assert doc["launch"]["engine"] == "sglang"
    assert problems("evaluate", doc) == []


def test_evaluate_of_several_scenarios_is_an_array_of_documents(evaluate_doc):
    assert problems("evaluate", [evaluate_doc, evaluate_doc]) == []
    assert problems("evaluate", [evaluate_doc])  # one scenario prints the document itself, not a list


# --- the schemas reject what they should (one bad change each; the rest of the document stays valid)


def _drop(*path: str | int) -> Callable[[Any], None]:
    def apply(doc: Any) -> None:
        for key in path[:-1]:
            doc = doc[key]
        del doc[path[-1]]
    return apply


def _set(value: Any, *path: str | int) -> Callable[[Any], None]:
    def apply(doc: Any) -> None:
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value
    return apply


BAD = {
    "train_evaluate": [
        ("required key dropped", _drop("memory")),
        ("degree as a string", _set("2", "plan", "pp")),
        ("unknown schedule", _set("gpipe", "plan", "schedule")),
        ("unknown pipeline method", _set("guess", "pipeline", "method")),
    ],
    "train_plan": [
        ("required key dropped", _drop("top")),
        ("unknown objective", _set("fun", "objective")),
    ],
    "evaluate": [
        ("required key dropped", _drop("decode")),
        ("degree as a string", _set("1", "plan", "attn_tp")),
        ("unknown key", _set(1.0, "prefill", "ttft_ms")),
        ("other schema id", _set("moeplan.evaluate/3", "schema")),
        ("unknown confidence", _set("guess", "device", "sources", "hbm_bytes", "confidence")),
        ("unknown op bound", _set("vibes", "decode", "step", "layers", 0, "ops", 0, "bound")),
        ("optional key as null", _set(None, "schedule")),
        ("schedule status", _set("DONE", "schedule", "layers", "moe", "solver", "status")),
    ],
    "plan": [
        ("required key dropped", _drop("top")),
        ("count as a string", _set("16", "top", 0, "devices_used")),
        ("unknown rejection", _set(3, "rejected", "vibes")),
        ("unknown pool role", _set("both", "top", 0, "pools", 0, "role")),
        ("embedded evaluate", _set("a lot", "chosen_breakdown", "decode", "memory_bytes", "kv_cache_bytes")),
    ],
    "schedule": [
        ("required key dropped", _drop("layers")),
        ("fractional micro-batches", _set(2.5, "micro_batches")),
        ("unknown resource", _set("pcie", "layers", "moe", "intervals", 0, "resource")),
    ],
    "place": [
        ("required key dropped", _drop("max_replicas")),
        ("slot id as a string", _set(["3"], "layers", 0, "physical_to_logical")),
        ("unknown stop reason", _set("bored", "layers", 0, "stopped_by")),
    ],
    "compare": [
        ("required key dropped", _drop("metrics")),
        ("ratio as a string", _set("x2", "metrics", 0, "ratio")),
        ("embedded evaluate", _drop("candidate", "evaluate", "slo")),
    ],
    "cost": [
        ("required key dropped", _drop("seconds")),
        ("unknown bound", _set("scale_up", "bound")),
        ("attention argument in a gemm", _set("decode", "args", "phase")),
    ],
    "catalog_devices": [
        ("unknown confidence", _set("guess", "items", 0, "sources", "hbm_bytes", "confidence")),
    ],
    "catalog_models": [
        ("unknown attention", _set("linear", "items", 0, "attention")),
    ],
    "afd": [
        ("required key dropped", _drop("afd", "tpot_s")),
        ("unknown bottleneck", _set("pcie", "afd", "layers", 0, "bottleneck")),
        ("fractional instances", _set(1.5, "afd", "layout", "ffn_instances")),
        ("unknown key", _set(1.0, "afd", "memory_bytes", "mtp_weight_bytes")),
    ],
}


@pytest.mark.parametrize(("name", "what", "mutate"),
                         [(name, what, mutate) for name, cases in BAD.items() for what, mutate in cases],
                         ids=[f"{name}-{what}" for name, cases in BAD.items() for what, _ in cases])
def test_schema_rejects_a_broken_document(name, what, mutate, request):
    doc = copy.deepcopy(request.getfixturevalue(f"{name}_doc"))
    mutate(doc)
    assert problems(name, doc), f"{name}: {what} passed validation"


@pytest.mark.parametrize(("golden", "name"), [("evaluate_deepseek_v3_h200_16.json", "evaluate"),
                                              ("plan_deepseek_v3_h200_16.json", "plan")])
def test_golden_files_validate_against_their_schema(golden, name):
    doc = json.loads((Path(__file__).resolve().parent / "golden" / golden).read_text())
    assert problems(name, doc) == []
