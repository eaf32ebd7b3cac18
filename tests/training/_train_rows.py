"""The expressible published training runs as typed inputs, with the measured figure and its source.

Rows are VALIDATION: no constant of cost_models is fitted on them.  Where a row does not state an input the
model needs, the choice below says "assumed" and why.  Measured step times are derived from each source's own
throughput and FLOP counting (each source's own convention, named per row).

Model shapes of the GPT rows: Narayanan et al. 2021 (arXiv 2104.04473) Table 1 and Korthikanti et al. 2022 (arXiv
2205.05198) Table 3 (heads, hidden, layers; vocabulary 51,200; plain GeLU MLP of 4h; sequence 2,048); micro-batch
and interleaving of the Korthikanti rows from Calculon's validation inputs (calculon-ai/calculon@33a5aab
validation/seqsel/tab5/*.json: 22B micro-batch 4; 175B and 530B micro-batch 1 with 3 chunks; 1T micro-batch 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cost_models.specs import AttentionKind, AttentionSpec, ClusterSpec, ModelSpec, Precision
from cost_models.training.dims import A2AOverlap, OptimizerSharding, Schedule, TrainingDims
from cost_models.training.flops import megatron_flops, narayanan_flops, six_n_flops
from cost_models.training.specs import (
    Optimizer,
    PrecisionRecipe,
    Recompute,
    RecomputeModule,
    TrainingWorkload,
)
from planner.catalog.devices import get_device
from planner.catalog.models import get_model


def gpt(name: str, *, hidden: int, heads: int, layers: int) -> ModelSpec:
    """A GPT of the Megatron papers: MHA, plain 4h GeLU MLP, vocabulary 51,200, untied head."""
    d = hidden // heads
    return ModelSpec(id=name, name=name, hidden_size=hidden, num_layers=layers, num_dense_layers=layers,
                     dense_ffn_dim=4 * hidden, vocab_size=51200, ffn_gated=False,
                     attention=AttentionSpec(kind=AttentionKind.MHA, num_q_heads=heads, num_kv_heads=heads,
                                             qk_head_dim=d, v_head_dim=d),
                     moe=None, native_precision=Precision.BF16, max_context_tokens=2048)


def cluster(device_id: str, devices: int) -> ClusterSpec:
    d = get_device(device_id)
    per_node = min(devices, d.devices_per_node)
    return ClusterSpec(device=d, num_nodes=devices // per_node, devices_per_node=per_node, scale_up=d.scale_up,
                       scale_out=d.scale_out)


@dataclass(frozen=True, kw_only=True)
class Row:
    id: str
    model: ModelSpec
    cluster: ClusterSpec
    dims: TrainingDims
    workload: TrainingWorkload
    measured_step_s: float
    """Step time the source measured (or derived from its throughput with its own FLOP counting)."""
    note: str
    measured_memory_gib: float | None = None
    """Peak memory per device the source measured (max over devices), GiB."""


def _step_from_tflops(flops: float, tflops: float, devices: int) -> float:
    return flops / (tflops * 1e12 * devices)


def _step_from_tokens(workload: TrainingWorkload, tok_per_s_per_device: float, devices: int) -> float:
    return workload.global_batch_tokens / (tok_per_s_per_device * devices)


_GPT_2022 = dict(flash_attention=False, dropout=True)


def _meg21(name: str, hidden: int, heads: int, layers: int, pp: int, vpp: int, devices: int, batch: int,
           tflops: float) -> Row:
    model = gpt(name, hidden=hidden, heads=heads, layers=layers)
    # fp16 mixed precision (the 2021 runs predate bf16 in Megatron): gradients accumulate and are all-reduced in
    # fp16 (Optimizer.ADAM_FP16_GRADS, Megatron-LM's default without --accumulate-allreduce-grads-in-fp32)
    w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=batch, recompute=Recompute.full_layers(),
                         optimizer=Optimizer.ADAM_FP16_GRADS, **_GPT_2022)
    dims = TrainingDims(tp=8, sequence_parallel=False, pp=pp, vpp=vpp, dp=devices // (8 * pp),
                        schedule=Schedule.INTERLEAVED if vpp > 1 else Schedule.ONE_F_ONE_B,
                        sharding=OptimizerSharding.NONE, overlap_grad_reduce=False)
    flops = narayanan_flops(model, seq_tokens=2048, batch_sequences=batch)
    return Row(id=f"TR-MEG21-{name}", model=model, cluster=cluster("a100_sxm_80gb", devices), dims=dims, workload=w,
               measured_step_s=_step_from_tflops(flops, tflops, devices),
               note=f"{tflops} TFLOP/s/GPU (eq. 3 counting); micro-batch 1 and vpp={vpp} assumed (not in Table 1); "
                    "full recompute, no SP (2021), DP all-reduce (fp16) not overlapped, no distributed optimizer")


def _kor22(name: str, hidden: int, heads: int, layers: int, pp: int, vpp: int, mbs: int, batch: int,
           seqsel_s: float, full_s: float) -> list[Row]:
    model = gpt(name, hidden=hidden, heads=heads, layers=layers)
    devices = 8 * pp
    out = []
    for label, rec, sp, step in (("seqsel", Recompute.selective(RecomputeModule.CORE_ATTENTION), True, seqsel_s),
                                 ("full", Recompute.full_layers(), False, full_s)):
        w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=batch, recompute=rec, **_GPT_2022)
        dims = TrainingDims(tp=8, sequence_parallel=sp, pp=pp, vpp=vpp, dp=1, micro_batch_sequences=mbs,
                            schedule=Schedule.INTERLEAVED if vpp > 1 else Schedule.ONE_F_ONE_B,
                            sharding=OptimizerSharding.NONE)
        out.append(Row(id=f"TR-KOR22-{name}-{label}", model=model, cluster=cluster("a100_sxm_80gb", devices),
                       dims=dims, workload=w, measured_step_s=step,
                       note="Table 5 iteration time; Calculon tab5 inputs for micro-batch and chunks"))
    return out


def _dsv3_h800() -> Row:
    model = get_model("deepseek-v3")
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=15360, recipe=PrecisionRecipe.FP8_BLOCKWISE,
                         optimizer=Optimizer.ADAM_BF16_MOMENTS,
                         recompute=Recompute.selective(RecomputeModule.NORM, RecomputeModule.MLA_UP_PROJ,
                                                       RecomputeModule.ACTIVATION))
    dims = TrainingDims(tp=1, pp=16, dp=128, ep=64, schedule=Schedule.DUALPIPE, sharding=OptimizerSharding.ZERO1)
    return Row(id="TR-DSV3-H800", model=model, cluster=cluster("h800", 2048), dims=dims, workload=w,
               measured_step_s=_step_from_tokens(w, 1543.0, 2048),
               note="180K GPU-h per 1T tokens = 1,543 tok/s/GPU (derived); recompute of RMSNorm, MLA up-projection "
                    "and SwiGLU output per §3.2.3/§3.3.4; micro-batch 1 and balanced routing assumed")


def _megatron_moe(row_id: str, model_id: str, devices: int, *, tp: int, pp: int, vpp: int, ep: int, gbs: int,
                  recipe: PrecisionRecipe, recompute: Recompute, overlap: A2AOverlap, measured: Callable[
                      [TrainingWorkload, float], float], note: str) -> Row:
    model = get_model(model_id)
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=gbs, recipe=recipe, recompute=recompute)
    dims = TrainingDims(tp=tp, pp=pp, vpp=vpp, dp=devices // (tp * pp), ep=ep, schedule=Schedule.INTERLEAVED,
                        sharding=OptimizerSharding.ZERO1, a2a_overlap=overlap)
    flops = megatron_flops(model, seq_tokens=4096, batch_sequences=gbs)
    return Row(id=row_id, model=model, cluster=cluster("h100_sxm", devices), dims=dims, workload=w,
               measured_step_s=measured(w, flops), note=note)


def _moe_rows() -> list[Row]:
    none, normact = Recompute.none(), Recompute.selective(RecomputeModule.NORM, RecomputeModule.ACTIVATION)
    return [
        _megatron_moe("TR-DSV3-H100", "deepseek-v3", 1024, tp=2, pp=8, vpp=4, ep=64, gbs=8192,
                      recipe=PrecisionRecipe.FP8_BLOCKWISE, recompute=none, overlap=A2AOverlap.NONE,
                      measured=lambda w, f: _step_from_tokens(w, 1297.0, 1024),
                      note="1,297 tok/s/GPU; recompute and a2a overlap not stated (none assumed)"),
        _megatron_moe("TR-Q235-H100-FP8", "qwen3-235b-a22b", 256, tp=2, pp=8, vpp=4, ep=32, gbs=8192,
                      recipe=PrecisionRecipe.FP8_TENSORWISE, recompute=none, overlap=A2AOverlap.NONE,
                      measured=lambda w, f: _step_from_tokens(w, 1712.0, 256),
                      note="1,712 tok/s/GPU; recompute and a2a overlap not stated (none assumed)"),
        _megatron_moe("TR-Q235-H100-FP8-GBS2K", "qwen3-235b-a22b", 256, tp=2, pp=8, vpp=4, ep=32, gbs=2048,
                      recipe=PrecisionRecipe.FP8_TENSORWISE, recompute=none, overlap=A2AOverlap.NONE,
                      measured=lambda w, f: _step_from_tokens(w, 1575.0, 256),
                      note="1,575 tok/s/GPU; recompute and a2a overlap not stated (none assumed)"),
        _megatron_moe("TR-Q235-H100-BF16", "qwen3-235b-a22b", 256, tp=2, pp=8, vpp=4, ep=32, gbs=2048,
                      recipe=PrecisionRecipe.BF16, recompute=normact, overlap=A2AOverlap.NONE,
                      measured=lambda w, f: 19.7, note="step 19.7 s"),
        _megatron_moe("TR-Q235-H100-BF16-A2A", "qwen3-235b-a22b", 256, tp=2, pp=8, vpp=4, ep=32, gbs=2048,
                      recipe=PrecisionRecipe.BF16, recompute=normact, overlap=A2AOverlap.FB_PAIRS,
                      measured=lambda w, f: 17.6, note="step 17.6 s with the 1F1B all-to-all overlap"),
    ]


def _ascend_rows() -> list[Row]:
    q30 = get_model("qwen3-30b-a3b")
    wq = TrainingWorkload(seq_tokens=4096, global_batch_sequences=256, recompute=Recompute.full_layers())
    dq = TrainingDims(tp=1, pp=2, dp=8, ep=8, schedule=Schedule.ONE_F_ONE_B, sharding=OptimizerSharding.ZERO1)
    mix = get_model("mixtral-8x7b")
    wm = TrainingWorkload(seq_tokens=32768, global_batch_sequences=128)
    dm = TrainingDims(tp=8, pp=4, cp=2, dp=1, ep=1, etp=8, schedule=Schedule.ONE_F_ONE_B,
                      sharding=OptimizerSharding.ZERO1)
    return [
        Row(id="TR-Q30-A2", model=q30, cluster=cluster("ascend_910b2", 16), dims=dq, workload=wq,
            measured_step_s=_step_from_tokens(wq, 2318.0, 16),
            note="2,318 tok/s/NPU; 910B2 assumed for 'Atlas 900 A2 PODc'; alltoall_seq timed as DeepEP normal"),
        Row(id="TR-MIX-A2", model=mix, cluster=cluster("ascend_910b2", 64), dims=dm, workload=wm,
            measured_step_s=_step_from_tokens(wm, 706.0, 64),
            note="706 tok/s/NPU; EP1 = experts tensor-parallel over the TP group (etp 8); recompute not stated"),
    ]


def _llama3() -> Row:
    model = get_model("llama-3.1-405b")
    w = TrainingWorkload(seq_tokens=8192, global_batch_sequences=2048)
    dims = TrainingDims(tp=8, pp=16, vpp=2, dp=64, schedule=Schedule.INTERLEAVED, sharding=OptimizerSharding.ZERO2)
    flops = six_n_flops(model, seq_tokens=8192, batch_sequences=2048)
    return Row(id="TR-L3-405B", model=model, cluster=cluster("h100_sxm", 8192), dims=dims, workload=w,
               measured_step_s=_step_from_tflops(flops, 430.0, 8192),
               note="430 TFLOP/s/GPU (6N + causal attention); interleaved vpp=2 and micro-batch 1 assumed; FSDP "
                    "without resharding after forward taken as ZeRO-2")


def _torchtitan() -> list[Row]:
    """pytorch/torchtitan benchmarks/llama3_h100_202412_torchtitan.md (TR-TT-70B, TR-TT-405B) and mlc-ai/pith-train
    issue #79 (MEM-Q30-B200).  torchtitan's Float8 is tensor-wise scaling; FSDP reshards after forward (ZeRO-3)."""
    l70, l405, q30 = get_model("llama-3.1-70b"), get_model("llama-3.1-405b"), get_model("qwen3-30b-a3b")
    full, fp8 = Recompute.full_layers(), PrecisionRecipe.FP8_TENSORWISE
    w70 = TrainingWorkload(seq_tokens=8192, global_batch_sequences=512, recipe=fp8, recompute=full)
    d70 = TrainingDims(tp=8, dp=32, micro_batch_sequences=16, sharding=OptimizerSharding.ZERO3)
    w405 = TrainingWorkload(seq_tokens=8192, global_batch_sequences=256, recipe=fp8, recompute=full)
    out = [Row(id="TR-TT-70B", model=l70, cluster=cluster("h100_sxm", 256), dims=d70, workload=w70,
               measured_step_s=_step_from_tokens(w70, 829.0, 256), measured_memory_gib=71.9,
               note="829 tok/s/GPU, 71.9 GiB; compile not modelled")]
    for label, sched, vpp, tok, mem in (("1F1B", Schedule.ONE_F_ONE_B, 1, 100.0, 82.5),
                                        ("interleaved", Schedule.INTERLEAVED, 2, 128.0, 72.7)):
        # micro-batches: torchtitan's default is the pipeline degree (``pipeline_parallel_microbatches`` None ->
        # ``pipeline_parallel_degree``, pytorch/torchtitan@9dec370 torchtitan/parallelisms/pipelining_utils.py):
        # 8 micro-batches of local batch 32 / 8 = 4 sequences
        d = TrainingDims(tp=8, pp=8, vpp=vpp, dp=8, micro_batch_sequences=4, schedule=sched,
                         sharding=OptimizerSharding.ZERO3)
        out.append(Row(id=f"TR-TT-405B-{label}", model=l405, cluster=cluster("h100_sxm", 512), dims=d,
                       workload=w405, measured_step_s=_step_from_tokens(w405, tok, 512), measured_memory_gib=mem,
                       note=f"{tok:.0f} tok/s/GPU, {mem} GiB; 8 micro-batches of 4 (torchtitan default), vpp={vpp} "
                            "assumed; AsyncTP not modelled (TP exposed)"))
    # the report (mlc-ai/pith-train issue #79, 2026-07-22) also states "eight loss chunks" and compiled blocks and loss
    wq = TrainingWorkload(seq_tokens=8192, global_batch_sequences=64, loss_chunks=8,
                          recompute=Recompute.selective(RecomputeModule.NORM, RecomputeModule.ACTIVATION))
    dq = TrainingDims(dp=8, micro_batch_sequences=8, sharding=OptimizerSharding.ZERO3)
    out.append(Row(id="MEM-Q30-B200", model=q30, cluster=cluster("b200", 8), dims=dq, workload=wq,
                   measured_step_s=_step_from_tokens(wq, 19_450.0, 8), measured_memory_gib=141.8,
                   note="19.4-19.5k tok/s/GPU, 141.8 GiB (user report); eight loss chunks; torchtitan's op-level "
                        "selective checkpointing (which matmul outputs it saves) taken as recompute of norms and "
                        "activations; torch.compile not modelled"))
    return out


def rows() -> list[Row]:
    out = [
        _meg21("18.4B", 6144, 48, 40, 1, 1, 256, 1024, 135.0),
        _meg21("145.6B", 12288, 96, 80, 8, 2, 1536, 2304, 148.0),
        _meg21("529.6B", 20480, 128, 105, 35, 3, 2520, 2520, 163.0),
        _meg21("1008B", 25600, 160, 128, 64, 2, 3072, 3072, 163.0),
    ]
    out += _kor22("22B", 6144, 64, 48, 1, 1, 4, 4, 1.10, 1.42)
    out += _kor22("175B", 12288, 96, 96, 8, 3, 1, 64, 13.75, 18.13)
    out += _kor22("530B", 20480, 128, 105, 35, 3, 1, 280, 37.83, 49.05)
    out += _kor22("1T", 25600, 160, 128, 64, 1, 1, 512, 71.49, 94.42)
    out += [_dsv3_h800(), *_moe_rows(), *_ascend_rows(), _llama3(), *_torchtitan()]
    return out


ROWS_BY_ID: dict[str, Row] = {r.id: r for r in rows()}
"""The rows by id (built once per test session)."""
