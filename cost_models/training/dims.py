"""Every parallel degree of a training layout in one small, validated object (STYLE.md rule 6).

Megatron-Core's "MoE parallel folding" (Liu et al., arXiv 2504.14960) maps two groupings onto the same devices:

* attention / dense part: ``world = tp x cp x dp x pp`` (tensor with sequence parallelism, context, data,
  pipeline);
* routed experts: ``world = etp x ep x edp x pp`` (expert tensor, expert, expert-data, the same pipeline);

so ``etp x ep`` must divide ``tp x cp x dp`` and ``edp = tp x cp x dp / (etp x ep)``.  Rank order inside a stage
is tensor innermost, then context, then data (Megatron's default ``tp-cp-ep-dp-pp``); pipeline neighbours are
``tp x cp x dp`` ranks apart.

``pp`` counts pipeline *ranks* (devices along the pipeline).  With DualPipe each rank holds two of the ``pp``
stages (its own and the mirrored one); with DualPipeV (the "cut-in-half" V schedule) the model is cut into
``2 pp`` stages, two per rank (deepseek-ai/DualPipe README @3da1bbe).  Interleaved 1F1B splits each rank's
layers into ``vpp`` virtual chunks.

Validation never mutates; :func:`check_training_dims` returns :class:`~cost_models.parallel.DimsProblem` values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cost_models.parallel import DimsProblem
from cost_models.specs import AttentionKind, ModelSpec


class Schedule(enum.Enum):
    """Pipeline schedule."""

    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved_1f1b"
    ZERO_BUBBLE = "zb1p"
    DUALPIPE = "dualpipe"
    DUALPIPE_V = "dualpipev"


class OptimizerSharding(enum.Enum):
    """What is sharded over the data-parallel ranks."""

    NONE = "none"
    """Every DP rank holds full parameters, gradients and optimizer states."""
    ZERO1 = "zero1"
    """Optimizer states and master weights sharded (Megatron distributed optimizer, DeepSeek ZeRO-1)."""
    ZERO2 = "zero2"
    """States and gradients sharded."""
    ZERO3 = "zero3"
    """States, gradients and parameters sharded (FSDP); parameters all-gathered per layer when used."""


class ContextParallel(enum.Enum):
    """How context parallelism exchanges keys and values."""

    RING = "ring"
    """Ring P2P of KV chunks, overlapped with the blocks of attention (Megatron-Core ``p2p``)."""
    ULYSSES = "ulysses"
    """All-to-all from sequence-sharded to head-sharded and back (DeepSpeed-Ulysses, Megatron ``a2a``)."""


class A2AOverlap(enum.Enum):
    """Whether EP dispatch / combine hide behind another micro-batch's compute."""

    NONE = "none"
    FB_PAIRS = "fb_pairs"
    """A forward chunk and a backward chunk of two micro-batches run together, each one's all-to-all behind the
    other's compute (DualPipe's overlapped F&B; Megatron-Core 1F1B all-to-all overlap, ``--overlap-moe-expert-
    parallel-comm``)."""


class Dispatcher(enum.Enum):
    """How the EP dispatch and combine move tokens (Megatron-Core ``--moe-token-dispatcher-type``)."""

    DEEPEP = "deepep"
    """DeepEP normal kernels (``flex`` + ``--moe-flex-dispatcher-backend deepep``): one copy per destination
    node over RDMA, forwarded inside the node; then one permute into expert order (and one unpermute)."""
    ALLTOALL = "alltoall"
    """``MoEAlltoAllTokenDispatcher``: every (token, expert) copy is permuted and sent by an NCCL (or HCCL)
    all-to-all, then sorted by local expert; the combine mirrors it (NVIDIA/Megatron-LM@d98e8a64
    megatron/core/transformer/moe/token_dispatcher.py).  MindSpeed-LLM's ``alltoall_seq`` moves the same copies."""


@dataclass(frozen=True, kw_only=True)
class TrainingDims:
    """Parallel degrees and schedule of one training layout."""

    tp: int = 1
    """Tensor parallelism of attention and dense parts."""
    sequence_parallel: bool = True
    """Norm / dropout regions sharded along the sequence over the TP group (Korthikanti §4.2.2); ignored at tp=1."""
    cp: int = 1
    """Context parallelism (sequence split across devices in attention)."""
    cp_kind: ContextParallel = ContextParallel.RING
    pp: int = 1
    """Pipeline ranks."""
    vpp: int = 1
    """Virtual chunks per pipeline rank (interleaved 1F1B)."""
    schedule: Schedule = Schedule.ONE_F_ONE_B
    dp: int = 1
    """Data parallelism of the attention / dense part."""
    ep: int = 1
    """Expert parallelism of the routed experts."""
    etp: int = 1
    """Tensor parallelism inside each routed expert."""
    sharding: OptimizerSharding = OptimizerSharding.ZERO1
    micro_batch_sequences: int = 1
    """Sequences per micro-batch per data-parallel rank."""
    a2a_overlap: A2AOverlap = A2AOverlap.NONE
    dispatcher: Dispatcher = Dispatcher.DEEPEP
    """Token dispatcher of the EP all-to-alls."""
    overlap_grad_reduce: bool = True
    """Gradient reduction and parameter gathering overlap the last backward / first forward bucket by bucket
    (Megatron ``--overlap-grad-reduce --overlap-param-gather``); False = after the backward, exposed."""
    tp_comm_overlap: bool = True
    """The backward TP collectives of each column-parallel Linear run beside its own GEMMs (Megatron's
    asynchronous all-reduce, or with sequence parallelism the all-gather beside the input-gradient GEMM and the
    reduce-scatter beside the weight-gradient GEMM); False = every TP collective exposed (torchtitan without
    AsyncTP)."""
    pp_comm_overlap: bool = True
    """Interleaved 1F1B's sends and receives between pipeline ranks run beside compute (Megatron-Core
    ``--overlap-p2p-communication``, NVIDIA/Megatron-LM f9283c5a 2023-05-31, default since 4eeff55d 2023-10-12);
    False = each chunk's send exposed, as in 1F1B (Megatron-LM before 2023)."""

    @property
    def world_devices(self) -> int:
        return self.tp * self.cp * self.dp * self.pp

    @property
    def stage_group_devices(self) -> int:
        """Devices of one pipeline stage: ``tp x cp x dp`` (= ``etp x ep x edp``)."""
        return self.tp * self.cp * self.dp

    @property
    def edp(self) -> int:
        """Expert data parallelism: replicas of each expert shard inside one stage."""
        return max(1, self.stage_group_devices // (self.ep * self.etp))

    @property
    def sp_active(self) -> bool:
        return self.sequence_parallel and self.tp > 1

    @property
    def stages(self) -> int:
        """Pipeline stages the model is cut into (DualPipeV: two per rank)."""
        return 2 * self.pp if self.schedule is Schedule.DUALPIPE_V else self.pp

    @property
    def chunks_per_rank(self) -> int:
        """Model chunks on one rank: vpp (interleaved), 2 (DualPipe, DualPipeV), else 1."""
        if self.schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V):
            return 2
        return self.vpp if self.schedule is Schedule.INTERLEAVED else 1

    def micro_batches(self, global_batch_sequences: int) -> int:
        """Micro-batches per step per pipeline: global batch / (dp x micro-batch)."""
        return global_batch_sequences // (self.dp * self.micro_batch_sequences)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _positive(dims: TrainingDims) -> list[DimsProblem]:
    names = ("tp", "cp", "pp", "vpp", "dp", "ep", "etp", "micro_batch_sequences")
    return [DimsProblem(field=n, value=getattr(dims, n), accepted="an integer >= 1")
            for n in names if getattr(dims, n) < 1]


def _attention_problems(dims: TrainingDims, model: ModelSpec, seq_tokens: int) -> list[DimsProblem]:
    att, out = model.attention, []
    if att.num_q_heads % dims.tp:
        out.append(DimsProblem(field="tp", value=dims.tp, accepted=f"a divisor of {att.num_q_heads} query heads: "
                                                                   f"{_divisors(att.num_q_heads)}"))
    elif att.kind is not AttentionKind.MLA and att.num_kv_heads % dims.tp and dims.tp % att.num_kv_heads:
        out.append(DimsProblem(field="tp", value=dims.tp, accepted=f"a divisor or multiple of {att.num_kv_heads} "
                                                                   "KV heads"))
    if dims.cp_kind is ContextParallel.RING and seq_tokens % (2 * dims.cp):
        out.append(DimsProblem(field="cp", value=dims.cp, accepted=f"cp with seq_tokens {seq_tokens} divisible by "
                                                                   "2 cp (load-balanced causal ring)"))
    if dims.cp_kind is ContextParallel.ULYSSES and att.num_q_heads % (dims.tp * dims.cp):
        out.append(DimsProblem(field="cp", value=dims.cp, accepted=f"tp x cp dividing {att.num_q_heads} heads"))
    return out


def _expert_problems(dims: TrainingDims, model: ModelSpec) -> list[DimsProblem]:
    if model.moe is None:
        if dims.ep != 1 or dims.etp != 1:
            return [DimsProblem(field="ep", value=dims.ep, accepted="ep=1, etp=1 (the model is dense)")]
        return []
    out = []
    if model.moe.num_routed_experts % dims.ep:
        out.append(DimsProblem(field="ep", value=dims.ep, accepted=f"a divisor of {model.moe.num_routed_experts} "
                                                                   "experts"))
    if model.moe.expert_ffn_dim % dims.etp:
        out.append(DimsProblem(field="etp", value=dims.etp, accepted=f"a divisor of the expert width "
                                                                     f"{model.moe.expert_ffn_dim}"))
    if dims.stage_group_devices % (dims.ep * dims.etp):
        out.append(DimsProblem(field="ep*etp", value=dims.ep * dims.etp,
                               accepted=f"a divisor of tp*cp*dp = {dims.stage_group_devices} (MoE parallel folding)"))
    if dims.tp > 1 and not dims.sequence_parallel:
        out.append(DimsProblem(field="sequence_parallel", value="false",
                               accepted="true: Megatron-Core requires sequence parallelism for MoE with tp > 1"))
    return out


def _pipeline_problems(dims: TrainingDims, model: ModelSpec, micro_batches: int) -> list[DimsProblem]:
    out = []
    chunks = dims.stages * (dims.vpp if dims.schedule is Schedule.INTERLEAVED else 1)
    if chunks > model.num_layers:
        out.append(DimsProblem(field="pp", value=dims.pp, accepted=f"pp x chunks <= {model.num_layers} layers"))
    if dims.vpp > 1 and dims.schedule is not Schedule.INTERLEAVED:
        out.append(DimsProblem(field="vpp", value=dims.vpp, accepted="1 unless schedule is interleaved_1f1b"))
    if dims.schedule is Schedule.INTERLEAVED and dims.pp > 1 and micro_batches % dims.pp:
        out.append(DimsProblem(field="schedule", value=dims.schedule.value,
                               accepted=f"micro-batches ({micro_batches}) divisible by pp={dims.pp} for interleaving"))
    if dims.schedule is Schedule.DUALPIPE and dims.pp % 2:
        out.append(DimsProblem(field="pp", value=dims.pp, accepted="an even pp for DualPipe"))
    if dims.schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V) and micro_batches < 2 * dims.pp:
        out.append(DimsProblem(field="schedule", value=dims.schedule.value,
                               accepted=f"at least 2 x pp = {2 * dims.pp} micro-batches (got {micro_batches}; "
                                        "deepseek-ai/DualPipe examples)"))
    return out


def check_training_dims(dims: TrainingDims, model: ModelSpec, num_devices: int, *, seq_tokens: int,
                        global_batch_sequences: int) -> list[DimsProblem]:
    """Every divisibility / product problem of ``dims`` for this model, cluster size and batch (empty = ok)."""
    problems = _positive(dims)
    if problems:
        return problems
    if dims.world_devices != num_devices:
        problems.append(DimsProblem(field="tp*cp*dp*pp", value=dims.world_devices,
                                    accepted=f"{num_devices} (the cluster's device count)"))
    if global_batch_sequences % (dims.dp * dims.micro_batch_sequences):
        problems.append(DimsProblem(field="micro_batch_sequences", value=dims.micro_batch_sequences,
                                    accepted=f"dp x micro-batch dividing the global batch {global_batch_sequences}"))
    micro_batches = max(1, dims.micro_batches(global_batch_sequences))
    problems += _attention_problems(dims, model, seq_tokens)
    problems += _expert_problems(dims, model)
    problems += _pipeline_problems(dims, model, micro_batches)
    return problems


def chunk_layers(model: ModelSpec, dims: TrainingDims) -> list[int]:
    """Decoder layers of each model chunk in pipeline order (``stages x vpp`` chunks).

    Uneven counts (DeepSeek-V3: 61 layers on 16 stages) give the extra layers to the chunks after the first,
    leaving the first (embedding) and last (LM head, MTP) lighter, as published layouts do with Megatron's
    ``--decoder-first/last-pipeline-num-layers``.
    """
    n = dims.stages * (dims.vpp if dims.schedule is Schedule.INTERLEAVED else 1)
    base, extra = divmod(model.num_layers, n)
    counts = [base] * n
    order = list(range(1, n - 1)) + [n - 1, 0] if n > 2 else list(range(n))
    for i in order[:extra]:
        counts[i] += 1
    return counts


def rank_chunks(dims: TrainingDims, rank: int) -> list[int]:
    """Chunk indices (into :func:`chunk_layers`) that pipeline rank ``rank`` holds."""
    if dims.schedule is Schedule.INTERLEAVED:
        return [rank + v * dims.pp for v in range(dims.vpp)]
    if dims.schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V):
        return [rank, dims.stages - 1 - rank]
    return [rank]


def max_layers_per_rank(model: ModelSpec, dims: TrainingDims) -> int:
    counts = chunk_layers(model, dims)
    return max(sum(counts[c] for c in rank_chunks(dims, r)) for r in range(dims.pp))
