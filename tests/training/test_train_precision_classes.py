"""Precision per op class in training: Linear classes kept in BF16 under an FP8 recipe, and FP8 core attention.

Each class runs its GEMMs, saves its inputs and (routed experts) dispatches at its own precision; the rest of the
layer keeps the recipe's. Checked against the BF16 and the all-FP8 costing of the same layer, by hand for the
bytes, at the YAML edge, and in the Megatron launch lines (``--te-precision-config-file`` and its file, matched the
way Megatron-Core's GlobMatcher matches: fnmatch on the module path, first enabled matcher wins).
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path

import pytest
from _train_rows import ROWS_BY_ID
from test_train_emit import MEGATRON, parse, script_args

from cost_models import compute
from cost_models.specs import Precision
from cost_models.training import comm as tcomm
from cost_models.training.activations import moe_ffn_bytes, routed_copies_per_device, tokens_per_device
from cost_models.training.dims import Dispatcher
from cost_models.training.layer_ops import ATTENTION_BACKWARD_RATIO, _elementwise_bytes, ffn_linears, layer_compute
from cost_models.training.specs import PrecisionRecipe, TrainingOpClass, TrainingWorkload
from planner.emit import megatron
from planner.emit.types import EmitError
from planner.inputs.errors import ScenarioError
from planner.inputs.reader import load_yaml
from planner.inputs.training import load_training

ROW = ROWS_BY_ID["TR-Q235-H100-FP8"]  # Qwen3-235B-A22B, TP2 PP8 EP32 on H100, an FP8 recipe
ROUTED = TrainingOpClass.ROUTED_EXPERTS
ATTN = TrainingOpClass.ATTENTION_PROJECTIONS


def _w(recipe: PrecisionRecipe, *bf16: TrainingOpClass, fp8_attention: bool = False) -> TrainingWorkload:
    return replace(ROW.workload, recipe=recipe, bf16_classes=frozenset(bf16), fp8_attention=fp8_attention)


def _layer(w: TrainingWorkload):
    return layer_compute(ROW.cluster.device, ROW.model, ROW.dims, w, moe_layer=True)


def test_a_bf16_class_runs_its_gemms_at_bf16_and_the_rest_at_the_recipe():
    fp8, bf16 = _layer(_w(PrecisionRecipe.FP8_BLOCKWISE)), _layer(_w(PrecisionRecipe.BF16))
    mixed = _layer(_w(PrecisionRecipe.FP8_BLOCKWISE, ROUTED))
    for part in ("forward_s", "input_grad_s", "weight_grad_s"):
        for name in ("expert_up", "expert_down"):
            assert getattr(mixed, part)[name] == getattr(bf16, part)[name]
            assert getattr(fp8, part)[name] < getattr(bf16, part)[name]  # H100: FP8 tensor cores
        for name in ("qkv", "attn_out", "router"):
            assert getattr(mixed, part)[name] == getattr(fp8, part)[name]


def test_a_bf16_class_drops_its_fp8_casts_by_hand():
    t = int(tokens_per_device(ROW.dims, ROW.workload))
    w_fp8, w_mixed = _w(PrecisionRecipe.FP8_BLOCKWISE), _w(PrecisionRecipe.FP8_BLOCKWISE, ROUTED)
    cast = {w: _elementwise_bytes(ROW.model, ROW.dims, w, t, moe_layer=True)["fp8_casts"][0] for w in (w_fp8, w_mixed)}
    experts = [lin for lin in ffn_linears(ROW.model, ROW.dims, w_fp8, t, moe_layer=True) if lin.op_class is ROUTED]
    # read bf16 (2) + write fp8 (1) = 3 bytes per input element of each routed-expert GEMM, none once they are BF16
    assert cast[w_fp8] - cast[w_mixed] == sum(3.0 * lin.batch * lin.m * lin.k for lin in experts)
    # every class in BF16: nothing is cast
    everything = _w(PrecisionRecipe.FP8_BLOCKWISE, *TrainingOpClass)
    assert "fp8_casts" not in _elementwise_bytes(ROW.model, ROW.dims, everything, t, moe_layer=True)


def test_a_bf16_class_saves_and_dispatches_bf16_by_hand():
    h = ROW.model.hidden_size
    copies = routed_copies_per_device(ROW.model, ROW.dims, ROW.workload)
    fp8 = moe_ffn_bytes(ROW.model, ROW.dims, _w(PrecisionRecipe.FP8_BLOCKWISE))
    mixed = moe_ffn_bytes(ROW.model, ROW.dims, _w(PrecisionRecipe.FP8_BLOCKWISE, ROUTED))
    # DeepSeek's blockwise recipe keeps a Linear input as FP8 with one fp32 scale per 128: 1 + 4/128 bytes
    assert fp8["expert_input"] == pytest.approx(copies * (1 + 4 / 128) * h)
    assert mixed["expert_input"] == pytest.approx(copies * 2 * h)
    assert mixed["expert_fc1_output"] == pytest.approx(copies * 2 * 2 * ROW.model.moe.expert_ffn_dim)  # gated, bf16
    deepep = replace(ROW.dims, dispatcher=Dispatcher.DEEPEP)  # the all-to-all dispatcher sends BF16 either way
    phases = {w: tcomm.ep_phase_seconds(ROW.cluster, ROW.model, deepep, w)
              for w in (_w(PrecisionRecipe.FP8_BLOCKWISE), _w(PrecisionRecipe.FP8_BLOCKWISE, ROUTED),
                        _w(PrecisionRecipe.BF16))}
    ph_fp8, ph_mixed, ph_bf16 = phases.values()
    assert ph_mixed.dispatch_forward_s == ph_bf16.dispatch_forward_s > ph_fp8.dispatch_forward_s
    assert ph_mixed.combine_forward_s == ph_fp8.combine_forward_s  # the combine is BF16 under every recipe


def test_fp8_attention_runs_forward_and_backward_at_the_fp8_attention_rate():
    d, a = ROW.cluster.device, ROW.model.attention
    mixed = _layer(_w(PrecisionRecipe.FP8_BLOCKWISE, fp8_attention=True))
    q_heads = a.num_q_heads // ROW.dims.tp
    k = compute.attention_prefill_cost(d, batch=ROW.dims.micro_batch_sequences, q_heads=q_heads,
                                       kv_heads=max(1, a.num_kv_heads // ROW.dims.tp), qk_head_dim=a.qk_head_dim,
                                       v_head_dim=a.v_head_dim, seq_tokens=ROW.workload.seq_tokens,
                                       precision=Precision.FP8)
    assert mixed.forward_s["core_attention"] == k.seconds / ROW.dims.cp
    assert mixed.input_grad_s["core_attention"] == ATTENTION_BACKWARD_RATIO * k.seconds / ROW.dims.cp
    assert mixed.forward_s["core_attention"] < _layer(_w(PrecisionRecipe.FP8_BLOCKWISE)).forward_s["core_attention"]


def test_the_workload_rejects_fp8_attention_without_an_fp8_recipe_or_fused_attention():
    with pytest.raises(ValueError, match="FP8 recipe"):
        _w(PrecisionRecipe.BF16, fp8_attention=True)
    with pytest.raises(ValueError, match="flash"):
        replace(_w(PrecisionRecipe.FP8_BLOCKWISE), flash_attention=False, fp8_attention=True)


def _scenario(tmp_path: Path, precision: str, flash: bool = True) -> Path:
    text = Path(ROW.path).read_text().replace("  precision: fp8_tensorwise", f"  precision: {precision}")
    if not flash:
        text = text.replace("  flash_attention: true", "  flash_attention: false")
    assert text != Path(ROW.path).read_text()
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_the_yaml_mapping_names_the_recipe_and_the_classes(tmp_path):
    plain = load_training(_scenario(tmp_path, "fp8_blockwise")).workload
    same = load_training(_scenario(tmp_path, "{recipe: fp8_blockwise}")).workload
    assert plain == same and not plain.bf16_classes and not plain.fp8_attention
    w = load_training(_scenario(tmp_path, "{recipe: fp8_blockwise, routed_experts: fp8, shared_experts: bf16, "
                                          "attention_projections: bf16, attention: fp8}")).workload
    assert w.recipe is PrecisionRecipe.FP8_BLOCKWISE and w.fp8_attention
    assert w.bf16_classes == {TrainingOpClass.SHARED_EXPERTS, ATTN}


@pytest.mark.parametrize(("precision", "flash", "key"), [
    ("{recipe: bf16, routed_experts: fp8}", True, "workload.precision.routed_experts"),
    ("{recipe: bf16, attention: fp8}", True, "workload.precision.attention"),
    ("{recipe: fp8_blockwise, attention: fp8}", False, "workload.precision.attention"),
    ("{recipe: fp8_blockwise, experts: bf16}", True, "workload.precision.experts"),
    ("{routed_experts: bf16}", True, "workload.precision.recipe"),
    ("fp9", True, "workload.precision"),
    ("[fp8]", True, "workload.precision"),
    ("{recipe: fp8_blockwise, routed_experts: int4}", True, "workload.precision.routed_experts"),
])
def test_bad_precision_names_its_key(tmp_path, precision, flash, key):
    with pytest.raises(ScenarioError) as e:
        load_training(_scenario(tmp_path, precision, flash))
    assert e.value.path == key


# Megatron-Core module paths (decoder.layers.N.<TransformerLayer attribute>...), with the DDP wrapper's prefix
MODULES = {
    "module.decoder.layers.0.self_attention.linear_qkv": ATTN,
    "module.decoder.layers.0.self_attention.linear_proj": ATTN,
    "module.decoder.layers.4.self_attention.linear_q_down_proj": ATTN,
    "module.decoder.layers.4.self_attention.linear_kv_up_proj": ATTN,
    "module.decoder.layers.0.mlp.linear_fc1": TrainingOpClass.DENSE_FFN,
    "module.decoder.layers.0.mlp.linear_fc2": TrainingOpClass.DENSE_FFN,
    "module.decoder.layers.5.mlp.experts.linear_fc1": ROUTED,
    "module.decoder.layers.5.mlp.experts.linear_fc2": ROUTED,
    "module.decoder.layers.5.mlp.shared_experts.linear_fc1": TrainingOpClass.SHARED_EXPERTS,
    "module.mtp.layers.0.transformer_layer.mlp.experts.linear_fc2": ROUTED,
    "module.decoder.layers.5.mlp.router": None,
    "module.output_layer": None,
    "module.embedding.word_embeddings": None,
}


def _matched(doc: dict, path: str) -> str | None:
    """The config Megatron-Core's RecipeConfig picks for ``path``: the first enabled glob matcher that matches."""
    for m in doc["matchers"].values():
        if m["enabled"] and m["type"] == "glob" and fnmatch.fnmatch(path, m["pattern"]):
            return m["config"]
    return None


@pytest.mark.parametrize("kept", [frozenset({ROUTED}), frozenset({ATTN, TrainingOpClass.SHARED_EXPERTS}),
                                  frozenset(TrainingOpClass)])
def test_megatron_gets_a_precision_file_that_keeps_exactly_those_classes_bf16(kept):
    w = replace(ROW.workload, recipe=PrecisionRecipe.FP8_BLOCKWISE, bf16_classes=kept)
    plan = megatron.emit(ROW.model, w, ROW.dims, ROW.cluster)
    ns = parse(MEGATRON, script_args(plan))
    assert ns.te_precision_config_file == megatron.TE_PRECISION_FILE and (ns.fp8, ns.fp8_recipe) == ("e4m3",
                                                                                                      "blockwise")
    for c in plan.commands:  # every node writes the file beside its line
        assert set(c.files) == {megatron.TE_PRECISION_FILE}
    doc = load_yaml(plan.commands[0].files[megatron.TE_PRECISION_FILE])
    cfg = doc["configs"]["bf16"]
    # TEQuantizationParams.parse_from_config asserts exactly these two keys; an empty recipe = no quantization
    assert cfg == {"transformer_engine_config_type": "TEQuantizationParams", "training_recipe": {}}
    for path, cls in MODULES.items():
        assert _matched(doc, path) == ("bf16" if cls in kept else None), path


def test_megatron_gets_no_precision_file_without_bf16_classes_and_refuses_fp8_attention():
    plan = megatron.emit(ROW.model, _w(PrecisionRecipe.FP8_BLOCKWISE), ROW.dims, ROW.cluster)
    assert parse(MEGATRON, script_args(plan)).te_precision_config_file is None
    assert all(not c.files for c in plan.commands)
    with pytest.raises(EmitError) as e:
        megatron.emit(ROW.model, _w(PrecisionRecipe.FP8_BLOCKWISE, fp8_attention=True), ROW.dims, ROW.cluster)
    assert e.value.field == "workload.precision.attention"


def test_the_mtp_merge_projection_keeps_the_recipe_whatever_the_classes():
    # Megatron-Core's mtp.layers.N.eh_proj matches none of the class globs, so it runs the recipe; so is it costed
    from cost_models.training.layer_ops import head_compute
    row = ROWS_BY_ID["TR-DSV3-H100"]  # DeepSeek-V3: one MTP layer on the last stage
    assert row.model.num_mtp_layers == 1
    base = replace(row.workload, recipe=PrecisionRecipe.FP8_BLOCKWISE)
    kept = replace(base, bf16_classes=frozenset(TrainingOpClass))
    a = head_compute(row.cluster.device, row.model, row.dims, base)
    b = head_compute(row.cluster.device, row.model, row.dims, kept)
    assert a.forward_s["mtp_proj"] == b.forward_s["mtp_proj"]
    doc = load_yaml(megatron.te_precision_file(kept)[megatron.TE_PRECISION_FILE])
    assert _matched(doc, "module.mtp.layers.0.eh_proj") is None
