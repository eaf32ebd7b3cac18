"""Fine-tuning (frozen parts, LoRA adapters): memory, step-time terms and launch lines derived by hand.

Qwen3-30B-A3B (h 2048, 48 layers, 32 q / 4 kv heads x 128, 128 experts x 768, V 151,936, untied) per layer:
attention 18,874,368, one expert 3 x 2048 x 768 = 4,718,592, router 2048 x 128 = 262,144, table 311,164,928
(tests/training/test_train_memory.py).  TP1 PP2 EP8 DP8, rank 0 = 24 layers + the embedding:
dense (tp part + routers) 764,149,760 + 6,291,456 = 770,441,216; experts 24 x 128 x 4,718,592 / 8 = 1,811,939,328.
LoRA rank 16 on attention: qkv [2048 -> 32 x 128 + 4 x (128 + 128) = 5120] = 16 x 7168 = 114,688;
attn_out [4096 -> 2048] = 16 x 6144 = 98,304; 212,992 per layer, 24 layers = 5,111,808 on rank 0.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from _train_rows import cluster
from test_train_emit import MINDSPEED, parse

from cost_models import compute
from cost_models.specs import Precision
from cost_models.training import finetune as ft
from cost_models.training.dims import TrainingDims
from cost_models.training.finetune_spec import Finetune, Part
from cost_models.training.layer_ops import Linear, layer_compute
from cost_models.training.memory import finetune_elements, training_memory
from cost_models.training.specs import TrainingOpClass, TrainingWorkload
from cost_models.training.step import training_step
from planner.catalog.devices import get_device
from planner.catalog.models import get_model
from planner.emit import megatron, mindspeed
from planner.emit.types import EmitError
from planner.inputs.errors import ScenarioError
from planner.inputs.training import load_training

GIB = 2**30
ROOT = Path(__file__).resolve().parents[2]
MODEL = get_model("qwen3-30b-a3b")
DIMS = TrainingDims(pp=2, dp=8, ep=8)
LORA = Finetune(frozen=frozenset(Part), lora_rank=16, lora_targets=frozenset({Part.ATTENTION}))
FROZEN_EXPERTS = Finetune(frozen=frozenset({Part.ROUTED_EXPERTS}))
DENSE, EXPERT, LORA_RANK0 = 770_441_216, 1_811_939_328, 5_111_808


def _w(spec: Finetune | None) -> TrainingWorkload:
    return TrainingWorkload(seq_tokens=4096, global_batch_sequences=256, finetune=spec)


def test_lora_parameter_count_by_hand():
    # r (d_in + d_out) per adapted GEMM, batch of local experts for routed experts
    qkv = Linear(name="qkv", m=1, k=2048, n=5120, op_class=TrainingOpClass.ATTENTION_PROJECTIONS)
    up = Linear(name="expert_up", m=1, k=2048, n=1536, batch=16, op_class=TrainingOpClass.ROUTED_EXPERTS)
    spec = Finetune(frozen=frozenset(Part), lora_rank=16,
                    lora_targets=frozenset({Part.ATTENTION, Part.ROUTED_EXPERTS}))
    assert ft.lora_elements(spec, [qkv]) == 16 * (2048 + 5120) == 114_688
    # 16 experts x 16 x (2048 + 1536) = 917,504, all on the expert side
    assert ft.lora_elements(spec, [qkv, up]) == 114_688 + 917_504
    assert ft.lora_expert_elements(spec, [qkv, up]) == 917_504
    assert ft.lora_elements(LORA, [up]) == 0  # experts not targeted


def test_lora_adapters_train_and_frozen_weights_keep_only_bf16():
    e = finetune_elements(MODEL, DIMS, _w(LORA), 0)
    assert (e.dense_trainable, e.expert_trainable) == (LORA_RANK0, 0)
    assert (e.dense_frozen, e.expert_frozen) == (DENSE, EXPERT)
    mem = training_memory(MODEL, DIMS, _w(LORA), rank=0, capacity_bytes=64 * GIB)
    # frozen: 2 B each; adapters: 2 B weight, 4 B fp32 grad, 12 B master + moments over dp 8 (ZeRO-1)
    assert mem.parameter_bytes == 2 * (DENSE + EXPERT + LORA_RANK0)
    assert mem.gradient_bytes == 4 * LORA_RANK0
    assert mem.optimizer_bytes == 12 * LORA_RANK0 / 8


def test_frozen_experts_drop_their_states_only():
    mem = training_memory(MODEL, DIMS, _w(FROZEN_EXPERTS), rank=0, capacity_bytes=64 * GIB)
    # dense as in full training (6 + 12/8 = 7.5 B), frozen experts 2 B (full training: 18 B at edp 1)
    assert mem.state_bytes == pytest.approx(DENSE * 7.5 + EXPERT * 2)


def test_saved_activations_keep_what_the_input_gradient_and_adapters_need():
    per_layer = {"qkv_input": 1.0, "proj_input": 2.0, "router_input": 4.0, "router_scores": 8.0,
                 "expert_input": 16.0, "expert_fc1_output": 32.0, "expert_fc2_input": 64.0}
    # LoRA on attention keeps its Linear inputs (A's weight gradient reads x); frozen router + experts drop theirs;
    # scores and gate/up outputs are read by the softmax / SwiGLU input gradients
    assert ft.saved_activations(LORA, per_layer) == {"qkv_input": 1.0, "proj_input": 2.0, "router_scores": 8.0,
                                                     "expert_fc1_output": 32.0}
    only_experts = ft.saved_activations(FROZEN_EXPERTS, per_layer)
    assert set(per_layer) - set(only_experts) == {"expert_input", "expert_fc2_input"}


def test_frozen_parts_skip_weight_gradients_and_lora_adds_its_gemms():
    device = get_device("h100_sxm")
    lc = layer_compute(device, MODEL, DIMS, _w(LORA), moe_layer=True)
    qkv = Linear(name="qkv", m=4096, k=2048, n=5120, op_class=TrainingOpClass.ATTENTION_PROJECTIONS)
    out = ft.adjust_layer(device, LORA, lc, [qkv])
    # every frozen GEMM's weight gradient is gone; only the adapter's remains
    assert set(out.weight_grad_s) == {"lora_qkv"}
    assert out.input_grad_s["expert_up"] == lc.input_grad_s["expert_up"]  # input gradient stays

    def g(m, k, n):
        return compute.gemm_cost(device, m=m, k=k, n=n, batch=1, precision=Precision.BF16).seconds
    # forward x A^T [4096,2048]x[2048,16], then [4096,16]x[16,5120]; dX: dY B then (.) A; dB = dY^T (x A^T),
    # dA = (dY B)^T x
    assert out.forward_s["lora_qkv"] == g(4096, 2048, 16) + g(4096, 16, 5120)
    assert out.input_grad_s["lora_qkv"] == g(4096, 5120, 16) + g(4096, 16, 2048)
    assert out.weight_grad_s["lora_qkv"] == g(5120, 4096, 16) + g(16, 4096, 2048)


def test_step_reduces_and_updates_only_trainable_parameters():
    c = cluster("h100_sxm", 64)
    full = training_step(c, MODEL, DIMS, _w(None))
    lora = training_step(c, MODEL, DIMS, _w(LORA))
    # optimizer: memory-bound over the rank's ZeRO-1 shard of trainable elements (the adapters, over dp 8):
    # read + write master (4) and moments (8), read the fp32 grad (4), write the bf16 param (2) = 30 B each
    busiest = finetune_elements(MODEL, DIMS, _w(LORA), lora.busiest_rank).dense_trainable
    assert lora.optimizer_s == compute.memory_bound_cost(c.device, bytes=busiest / 8 * 30).seconds
    assert lora.by_resource_s["dp_total"] < full.by_resource_s["dp_total"] / 50
    assert "wgrad_expert_up" in full.by_op_s and "wgrad_expert_up" not in lora.by_op_s
    assert lora.by_op_s["bwd_expert_up"] == pytest.approx(full.by_op_s["bwd_expert_up"])
    # FLOPs are Megatron's count (6 N per token), unchanged by freezing
    assert lora.flops == full.flops and lora.step_s < full.step_s


def _write(tmp_path: Path, finetune: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text("name: t\nmodel: {catalog: qwen3-30b-a3b}\ncluster: {device: h100_sxm, nodes: 1}\n"
                 "workload: {kind: training, seq_tokens: 4096, global_batch_sequences: 64, finetune: "
                 + finetune + "}\n")
    return p


@pytest.mark.parametrize(("finetune", "key"), [
    ("{frozen: [embedding], lora: {rank: 8, targets: [attention]}}", "workload.finetune.lora.targets"),
    ("{frozen: [eyes]}", "workload.finetune.frozen"),
    ("{frozen: all, lora: {rank: 0, targets: [attention]}}", "workload.finetune.lora.rank"),
    ("{frozen: all, lora: {rank: 8, targets: [head]}}", "workload.finetune.lora.targets"),
    ("{frozen: all}", "workload.finetune.frozen"),
    ("{}", "workload.finetune"),
])
def test_bad_finetune_input_names_the_key(tmp_path: Path, finetune: str, key: str):
    with pytest.raises(ScenarioError) as e:
        load_training(_write(tmp_path, finetune))
    assert e.value.path.startswith(key)


def _after(plan, script: str) -> list[str]:
    argv = list(plan.commands[0].argv)
    return argv[argv.index(script) + 1:]


def test_shipped_lora_scenario_emits_mindspeeds_lora_flags_and_megatron_refuses():
    sc = load_training(ROOT / "scenarios" / "training" / "qwen3_30b_a3b_lora_910b_8.yaml")
    plan = mindspeed.emit(sc.model, sc.workload, sc.plan, sc.cluster)
    ns = parse(MINDSPEED, _after(plan, "posttrain_gpt.py"))
    assert (ns.finetune, ns.stage, ns.is_instruction_dataset, ns.lora_r) == (True, "sft", True, 16)
    assert ns.lora_target_modules == ["linear_qkv", "linear_proj"]
    with pytest.raises(EmitError) as e:
        mindspeed.emit(sc.model, replace(sc.workload, finetune=FROZEN_EXPERTS), sc.plan, sc.cluster)
    assert e.value.field == "workload.finetune.frozen"
    experts = Finetune(frozen=frozenset(Part), lora_rank=8, lora_targets=frozenset({Part.ROUTED_EXPERTS}))
    with pytest.raises(EmitError) as e:
        mindspeed.emit(sc.model, replace(sc.workload, finetune=experts), sc.plan, sc.cluster)
    assert e.value.field == "workload.finetune.lora.targets"
    with pytest.raises(EmitError) as e:
        megatron.emit(sc.model, sc.workload, sc.plan, cluster("h100_sxm", 8))
    assert e.value.field == "workload.finetune" and "posttrain_gpt.py" in e.value.accepted


def test_plan_on_the_lora_scenario_matches_brute_force_and_the_bound_holds():
    from collections import Counter

    from planner.search.training import _best_on
    from planner.search.training_bound import ComputeBound
    sc = load_training(ROOT / "scenarios" / "training" / "qwen3_30b_a3b_lora_910b_8.yaml")
    _, _, every = _best_on(sc, 8, 1, Counter(), exhaustive=True)
    _, _, best = _best_on(sc, 8, 3, Counter(), exhaustive=False)
    assert [e.step_s for e in best] == pytest.approx([e.step_s for e in every[:3]], rel=1e-12)
    bound = ComputeBound(sc)
    # the bound sees the skipped weight gradients too, so it never exceeds a fine-tuning step
    assert all(bound.step_lower_bound_s(e.dims, e.workload) <= e.step_s * (1 + 1e-12) for e in every)


def test_fsdp_under_pipeline_keeps_no_gradient_accumulator_for_frozen_weights():
    from cost_models.training.dims import OptimizerSharding
    dims = replace(DIMS, sharding=OptimizerSharding.ZERO3)
    mem = training_memory(MODEL, dims, _w(LORA), rank=0, capacity_bytes=64 * GIB)
    # FSDP + PP: every weight unsharded in bf16 (2 B), fp32 accumulators (4 B) for the adapters only
    assert mem.unsharded_state_bytes == 2 * (DENSE + EXPERT + LORA_RANK0) + 4 * LORA_RANK0
    # sharded states: frozen weights 2 B over dp 8 (dense) / edp 1 (experts); adapters 18 B over dp 8
    assert mem.state_bytes == pytest.approx(2 * DENSE / 8 + 2 * EXPERT + 18 * LORA_RANK0 / 8)
