"""Training memory per device and per pipeline rank: weights, gradients, optimizer states, activations, buffers.

Weights and states (Megatron's estimator, NVIDIA/Megatron-LM@d98e8a64 megatron/training/theoretical_memory_usage.py):
attention, dense FFNs, shared experts, embedding and head are split over ``tp``; the router is replicated; routed
experts are split over ``ep x etp``.  Bytes per parameter (Adam, bf16 params, fp32 grads, master and moments):
18 without a distributed optimizer, ``6 + 12 / dp`` with it (ZeRO-1); the experts use the expert-data-parallel
size.  ZeRO-2 also shards the gradients (``2 + 16 / dp``), ZeRO-3 / FSDP everything (``18 / dp``).  The dense
part's states shard over ``dp x cp`` (Megatron's distributed optimizer uses the data-parallel group with context
parallel ranks; the estimator itself divides by ``dp``).  Norms and biases are not counted (cost_models.params).

Activations: :mod:`cost_models.training.activations` per layer and micro-batch, times the micro-batch chunks the
schedule keeps in flight on the rank (:func:`cost_models.training.pipeline.in_flight_chunks`); the last stage adds
its logits (Megatron's fused cross-entropy, or PyTorch's on fp32-upcast logits); full recompute adds one layer's
working set.  The reserve adds the caching allocator's fragmentation over the tensors' peak
(:data:`ALLOCATOR_FRAGMENTATION`), so ``used_bytes`` is a reserved peak, as torchtitan reports it.  DualPipe's two
chunks per rank hold two stages' parameters (``2x`` in the DualPipe README table) because rank ``r`` holds stages
``r`` and ``PP-1-r``.

FSDP (ZeRO-3) with pipeline parallelism does not reshard between micro-batches: the rank's bf16 parameters and
fp32 gradient accumulators stay unsharded for the whole step (:func:`fsdp_pipeline_unsharded_bytes`); without
PP it gathers one layer at a time (a two-layer buffer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cost_models import params
from cost_models.memory import GIB, RUNTIME_RESERVE_BYTES
from cost_models.specs import ModelSpec
from cost_models.training import activations as act
from cost_models.training import finetune as ft
from cost_models.training import layer_ops
from cost_models.training.dims import OptimizerSharding, TrainingDims, chunk_layers, rank_chunks
from cost_models.training.finetune_spec import Part
from cost_models.training.pipeline import in_flight_chunks
from cost_models.training.specs import Optimizer, TrainingWorkload

DEEPEP_BUFFER_BYTES = 2 * GIB
"""NVLink + RDMA staging buffers of DeepEP's normal kernels per device.  Estimated: Megatron-Core sizes them from
DeepEP's ``get_nvl_buffer_size_hint`` / ``get_rdma_buffer_size_hint`` (megatron/core/transformer/moe/fused_a2a.py),
about 1 GiB each at hidden 7168; only charged when ep > 1."""

TRAINING_RESERVE_BYTES = RUNTIME_RESERVE_BYTES
"""CUDA context, NCCL communicators, cuBLAS workspaces (estimated, as for serving)."""

ALLOCATOR_FRAGMENTATION = 0.15
"""Share of the caching allocator's reserved peak that no tensor occupies (reserved - allocated, over reserved).
Measured: GMLake (Guo et al., ASPLOS 2024, arXiv 2401.08156) removes on average 15 % (up to 33 %) fragmentation
of the PyTorch caching allocator over eight LLM training runs on A100 80 GB with recomputation, ZeRO and LoRA;
the mean is used.  The tensors' peak ``A`` then reserves ``A / (1 - f)``: :func:`fragmentation_bytes`."""


def fragmentation_bytes(allocated_bytes: float) -> float:
    """Reserved-but-unused bytes over an allocated peak: ``A f / (1 - f)`` (0.15: 17.6 % of ``A``)."""
    return allocated_bytes * ALLOCATOR_FRAGMENTATION / (1.0 - ALLOCATOR_FRAGMENTATION)


def bytes_per_parameter(optimizer: Optimizer, sharding: OptimizerSharding, dp: int) -> float:
    """Weight + gradient + optimizer bytes per parameter with states sharded over ``dp`` ranks.

    Adam: 18 (none), ``6 + 12/dp`` (ZeRO-1, Megatron's distributed optimizer), ``2 + 16/dp`` (ZeRO-2),
    ``18/dp`` (ZeRO-3 / FSDP).
    """
    o = optimizer
    if sharding is OptimizerSharding.NONE:
        return o.total_bytes
    if sharding is OptimizerSharding.ZERO1:
        return o.param_bytes + o.grad_bytes + o.sharded_bytes / dp
    if sharding is OptimizerSharding.ZERO2:
        return o.param_bytes + (o.grad_bytes + o.sharded_bytes) / dp
    return o.total_bytes / dp


def _ffn_elements(model: ModelSpec, width: int) -> float:
    return (3 if model.ffn_gated else 2) * model.hidden_size * width


@dataclass(frozen=True, kw_only=True)
class RankParameters:
    """Parameter elements one device of a pipeline rank holds, by how they are sharded."""

    tp_sharded: float
    """Attention, dense FFN, shared experts, embedding, head, MTP projection: already divided by tp."""
    replicated: float
    """Routers."""
    expert_sharded: float
    """Routed experts: already divided by ep x etp."""
    dense_layers: int
    moe_layers: int

    @property
    def total(self) -> float:
        return self.tp_sharded + self.replicated + self.expert_sharded


def _rank_layer_kinds(model: ModelSpec, dims: TrainingDims, rank: int) -> tuple[int, int]:
    """(dense, moe) decoder layers on ``rank``; the first ``num_dense_layers`` layers are the dense ones."""
    counts = chunk_layers(model, dims)
    starts = [sum(counts[:c]) for c in range(len(counts))]
    dense = moe = 0
    for c in rank_chunks(dims, rank):
        for layer in range(starts[c], starts[c] + counts[c]):
            if model.moe is not None and layer >= model.num_dense_layers:
                moe += 1
            else:
                dense += 1
    return dense, moe


def holds_first(dims: TrainingDims, rank: int) -> bool:
    return 0 in rank_chunks(dims, rank)


def holds_last(model: ModelSpec, dims: TrainingDims, rank: int) -> bool:
    return len(chunk_layers(model, dims)) - 1 in rank_chunks(dims, rank)


def rank_parameters(model: ModelSpec, dims: TrainingDims, rank: int) -> RankParameters:
    """Parameter elements on one device of pipeline rank ``rank`` (embedding on the first chunk, head and MTP on
    the last)."""
    dense, moe = _rank_layer_kinds(model, dims, rank)
    h, tp = model.hidden_size, dims.tp
    attn = params.attention_weight_elements(model)
    table = model.vocab_size * h
    mtp = model.num_mtp_layers if holds_last(model, dims, rank) else 0
    tp_part = (dense + moe + mtp) * attn + dense * _ffn_elements(model, model.dense_ffn_dim) + mtp * 2 * h * h
    replicated = expert = 0.0
    if model.moe is not None:
        moe_like = moe + mtp
        tp_part += moe_like * _ffn_elements(model, model.moe.shared_ffn_dim)
        replicated = moe_like * params.router_weight_elements(model)
        expert = moe_like * model.moe.num_routed_experts * _ffn_elements(model, model.moe.expert_ffn_dim)
    if holds_first(dims, rank):
        tp_part += table
    if holds_last(model, dims, rank) and (not model.tie_embeddings or not holds_first(dims, rank)):
        tp_part += table
    return RankParameters(tp_sharded=tp_part / tp, replicated=float(replicated),
                          expert_sharded=expert / (dims.ep * dims.etp), dense_layers=dense, moe_layers=moe)


def rank_part_elements(model: ModelSpec, dims: TrainingDims, rank: int) -> dict[Part, float]:
    """:func:`rank_parameters` by model part (elements on one device, already divided by their sharding)."""
    dense, moe = _rank_layer_kinds(model, dims, rank)
    h, tp = model.hidden_size, dims.tp
    first, last = holds_first(dims, rank), holds_last(model, dims, rank)
    mtp = model.num_mtp_layers if last else 0
    table = model.vocab_size * h
    head = mtp * 2 * h * h + (table if last and (not model.tie_embeddings or not first) else 0)
    out = {Part.EMBEDDING: table / tp if first else 0.0, Part.HEAD: head / tp,
           Part.ATTENTION: (dense + moe + mtp) * params.attention_weight_elements(model) / tp,
           Part.DENSE_FFN: dense * _ffn_elements(model, model.dense_ffn_dim) / tp,
           Part.ROUTER: 0.0, Part.SHARED_EXPERTS: 0.0, Part.ROUTED_EXPERTS: 0.0}
    if model.moe is not None:
        moe_like = moe + mtp
        out[Part.SHARED_EXPERTS] = moe_like * _ffn_elements(model, model.moe.shared_ffn_dim) / tp
        out[Part.ROUTER] = float(moe_like * params.router_weight_elements(model))
        out[Part.ROUTED_EXPERTS] = (moe_like * model.moe.num_routed_experts
                                    * _ffn_elements(model, model.moe.expert_ffn_dim) / (dims.ep * dims.etp))
    return out


@dataclass(frozen=True, kw_only=True)
class FinetuneElements:
    """Parameter elements on one device of a pipeline rank under fine-tuning, by group and trainability."""

    dense_trainable: float
    """Non-expert parameters that train (incl. their LoRA adapters), sharded over ``dp x cp``."""
    expert_trainable: float
    """Routed-expert parameters that train (incl. their adapters), sharded over the expert-DP group."""
    dense_frozen: float
    expert_frozen: float


def finetune_elements(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, rank: int
                      ) -> FinetuneElements:
    """Trainable and frozen elements of ``rank`` (:mod:`cost_models.training.finetune`); LoRA adapters train."""
    spec = workload.finetune
    assert spec is not None
    parts = rank_part_elements(model, dims, rank)
    dense, moe = _rank_layer_kinds(model, dims, rank)
    moe += model.num_mtp_layers if holds_last(model, dims, rank) else 0
    lora_dense = lora_expert = 0.0
    for kind, n in ((False, dense), (True, moe)):
        if n:
            lins = (layer_ops.attention_linears(model, dims, 1)
                    + layer_ops.ffn_linears(model, dims, workload, 1, moe_layer=kind))
            e = ft.lora_expert_elements(spec, lins)
            lora_expert += n * e
            lora_dense += n * (ft.lora_elements(spec, lins) - e)
    def total(trains: bool, experts: bool) -> float:
        return sum(v for p, v in parts.items()
                   if spec.trains(p) == trains and (p is Part.ROUTED_EXPERTS) == experts)
    return FinetuneElements(dense_trainable=total(True, False) + lora_dense,
                            expert_trainable=total(True, True) + lora_expert,
                            dense_frozen=total(False, False), expert_frozen=total(False, True))


def _finetune_state_bytes(e: FinetuneElements, optimizer: Optimizer, dims: TrainingDims
                          ) -> tuple[float, float, float]:
    """(param, grad, optimizer) bytes: trainable elements as in :func:`_state_bytes`, frozen ones weights only."""
    trainable = RankParameters(tp_sharded=e.dense_trainable, replicated=0.0, expert_sharded=e.expert_trainable,
                               dense_layers=0, moe_layers=0)
    param_b, grad_b, opt_b = _state_bytes(trainable, optimizer, dims)
    zero3 = dims.sharding is OptimizerSharding.ZERO3
    param_b += optimizer.param_bytes * (e.dense_frozen / (dims.dp * dims.cp if zero3 else 1)
                                        + e.expert_frozen / (dims.edp if zero3 else 1))
    return param_b, grad_b, opt_b


@dataclass(frozen=True, kw_only=True)
class TrainingMemory:
    """Bytes on one device of one pipeline rank."""

    rank: int
    parameter_bytes: float
    gradient_bytes: float
    optimizer_bytes: float
    """fp32 master weights and optimizer moments (after sharding)."""
    activation_bytes: float
    activation_by_tensor: dict[str, float]
    """Per-layer-and-micro-batch tensors times the in-flight count (bytes on the device)."""
    comm_buffer_bytes: float
    reserve_bytes: float
    """Framework reserve plus the allocator's fragmentation over the allocated peak (:func:`fragmentation_bytes`)."""
    capacity_bytes: float
    unsharded_state_bytes: float = 0.0
    """FSDP under pipeline parallelism: the rank's parameters and gradient accumulators kept unsharded over the
    data-parallel group for the whole step (:func:`fsdp_pipeline_unsharded_bytes`); 0 otherwise."""

    @property
    def state_bytes(self) -> float:
        return self.parameter_bytes + self.gradient_bytes + self.optimizer_bytes

    @property
    def used_bytes(self) -> float:
        return (self.state_bytes + self.activation_bytes + self.comm_buffer_bytes + self.reserve_bytes
                + self.unsharded_state_bytes)

    @property
    def fits(self) -> bool:
        return self.used_bytes <= self.capacity_bytes

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(state_bytes=self.state_bytes, used_bytes=self.used_bytes)
        return d


def fp32_params_are_master(dims: TrainingDims, workload: TrainingWorkload) -> bool:
    """FSDP2's fp32 parameter shards are the optimizer's master (``workload.fp32_params``, under ZeRO-3 only): no
    bf16 shard is kept and the optimizer writes none."""
    return workload.fp32_params and dims.sharding is OptimizerSharding.ZERO3


def _state_bytes(p: RankParameters, optimizer: Optimizer, dims: TrainingDims) -> tuple[float, float, float]:
    """(param, grad, optimizer) bytes of a rank's parameters under the sharding."""
    dense_dp, expert_dp = dims.dp * dims.cp, dims.edp
    out = [0.0, 0.0, 0.0]
    for elements, group in ((p.tp_sharded + p.replicated, dense_dp), (p.expert_sharded, expert_dp)):
        s = dims.sharding
        out[0] += elements * optimizer.param_bytes / (group if s is OptimizerSharding.ZERO3 else 1)
        out[1] += elements * optimizer.grad_bytes / (group if s in (OptimizerSharding.ZERO2, OptimizerSharding.ZERO3)
                                                     else 1)
        out[2] += elements * optimizer.sharded_bytes / (1 if s is OptimizerSharding.NONE else group)
    return out[0], out[1], out[2]


def _activations(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, rank: int,
                 p: RankParameters) -> dict[str, float]:
    m = dims.micro_batches(workload.global_batch_sequences)
    chunks = dims.chunks_per_rank
    in_flight = in_flight_chunks(dims.schedule, dims.pp, rank, m, vpp=dims.vpp)
    mtp = model.num_mtp_layers if holds_last(model, dims, rank) else 0
    out: dict[str, float] = {}
    for kind, n in (("dense", p.dense_layers), ("moe", p.moe_layers + mtp)):
        if n == 0:
            continue
        per_layer = act.layer_bytes(model, dims, workload, moe_layer=kind == "moe")
        if workload.finetune is not None:
            per_layer = ft.saved_activations(workload.finetune, per_layer)
        for name, v in per_layer.items():
            out[name] = out.get(name, 0.0) + v * n / chunks * in_flight
    if holds_last(model, dims, rank):
        out["head_logits"] = act.head_bytes(model, dims, workload)
    if workload.recompute.reruns_layer:
        out["recompute_working_set"] = act.full_layer_bytes(model, dims, workload, moe_layer=p.moe_layers > 0)
    return out


REDUCE_GRAD_BYTES = 4.0
"""fp32: the gradient reduce dtype of FSDP2 mixed precision in torchtitan (``--training.mixed_precision_reduce``
default float32, pytorch/torchtitan@9dec370 torchtitan/config_manager.py)."""


def fsdp_stays_unsharded(dims: TrainingDims) -> bool:
    """FSDP under pipeline parallelism: parameters gathered once per step and gradients reduced once per step,
    not per layer and micro-batch (:func:`fsdp_pipeline_unsharded_bytes` for the sources)."""
    return dims.sharding is OptimizerSharding.ZERO3 and dims.pp > 1


def fsdp_pipeline_unsharded_bytes(p: RankParameters, optimizer: Optimizer, dims: TrainingDims) -> float:
    """FSDP (ZeRO-3) with pipeline parallelism keeps a rank's parameters unsharded all step, and its gradients too.

    torchtitan turns off resharding after forward when PP is on ("to avoid per-microbatch all-gathers",
    pytorch/torchtitan@9dec370 torchtitan/parallelisms/parallelize_llama.py ``apply_fsdp``), and PyTorch's pipeline
    stage runs every backward of an FSDP stage with ``set_reshard_after_backward(False)`` and
    ``set_requires_gradient_sync(False)``, reducing once after the last micro-batch
    (pytorch/pytorch@0138610 torch/distributed/pipelining/stage.py ``backward_maybe_with_nosync``); the unsynced
    gradients accumulate unsharded in the reduce dtype (torch/distributed/fsdp/_fully_shard/_fsdp_param.py
    ``to_accumulated_grad_if_needed``).  So the rank holds, besides its sharded states, ``param_bytes`` (bf16) plus
    ``REDUCE_GRAD_BYTES`` (fp32) per parameter element of its stage(s).  0 without ZeRO-3, or with pp = 1 (then
    FSDP gathers one layer at a time: the prefetch buffer of :func:`training_memory`).
    """
    if not fsdp_stays_unsharded(dims):
        return 0.0
    return p.total * (optimizer.param_bytes + REDUCE_GRAD_BYTES)


def training_memory(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *, rank: int,
                    capacity_bytes: float) -> TrainingMemory:
    """Memory of one device of pipeline rank ``rank`` (module docstring)."""
    p = rank_parameters(model, dims, rank)
    if workload.finetune is None:
        param_b, grad_b, opt_b = _state_bytes(p, workload.optimizer, dims)
    else:
        param_b, grad_b, opt_b = _finetune_state_bytes(finetune_elements(model, dims, workload, rank),
                                                       workload.optimizer, dims)
    if fp32_params_are_master(dims, workload):
        param_b = 0.0  # the fp32 shard is the master, counted in optimizer_bytes; bf16 exists only once gathered
    by_tensor = _activations(model, dims, workload, rank, p)
    buffers = DEEPEP_BUFFER_BYTES if dims.ep > 1 else 0.0
    unsharded = fsdp_pipeline_unsharded_bytes(p, workload.optimizer, dims)
    if unsharded and workload.finetune is not None:
        # frozen parameters stay unsharded too, but have no gradient accumulator
        e = finetune_elements(model, dims, workload, rank)
        trainable = e.dense_trainable + e.expert_trainable
        unsharded = ((trainable + e.dense_frozen + e.expert_frozen) * workload.optimizer.param_bytes
                     + trainable * REDUCE_GRAD_BYTES)
    if dims.sharding is OptimizerSharding.ZERO3 and not unsharded:
        # FSDP gathers a layer's full parameters, the next one prefetched: two unsharded layers in bf16
        layers = max(1, p.dense_layers + p.moe_layers)
        buffers += 2 * p.total / layers * workload.optimizer.param_bytes
    allocated = param_b + grad_b + opt_b + sum(by_tensor.values()) + buffers + unsharded
    return TrainingMemory(rank=rank, parameter_bytes=param_b, gradient_bytes=grad_b, optimizer_bytes=opt_b,
                          activation_bytes=sum(by_tensor.values()), activation_by_tensor=by_tensor,
                          comm_buffer_bytes=buffers,
                          reserve_bytes=TRAINING_RESERVE_BYTES + fragmentation_bytes(allocated),
                          capacity_bytes=capacity_bytes, unsharded_state_bytes=unsharded)


def memory_per_rank(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *,
                    capacity_bytes: float) -> list[TrainingMemory]:
    """:func:`training_memory` for every pipeline rank, rank 0 first."""
    return [training_memory(model, dims, workload, rank=r, capacity_bytes=capacity_bytes) for r in range(dims.pp)]
