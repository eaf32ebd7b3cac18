"""Typed, frozen specs that every cost model takes: device, link, cluster, model, workload.

All quantities are SI base units and say so in their names (``hbm_bytes``, ``hbm_bytes_per_s``,
``peak_flop_per_s``, ``latency_s``).  Parsing of human units ("80 GiB", "400 Gb/s") happens once, at
the YAML edge (``planner/inputs/scenario.py``); formatting happens at the report edge.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

_T = TypeVar("_T")
_MEMO_HASH = "_memo_hash"


def memo_hash(cls: type[_T]) -> type[_T]:
    """Class decorator for a frozen dataclass: its generated ``__hash__`` is computed once per instance and kept.

    A spec is hashed at every memoised cost call it keys (a plan search hashes the same model, cluster, dims and
    precisions hundreds of thousands of times, each time over every nested field and enum). The value is the
    generated one, so dicts and sets order as before; it is not pickled (``__getstate__`` drops it), since a
    string hash is only valid in the process that computed it."""
    field_hash = cls.__hash__
    assert field_hash is not None, f"{cls.__name__} is not hashable"

    def __hash__(self: object) -> int:
        state = self.__dict__
        found = state.get(_MEMO_HASH)
        if found is None:
            found = state[_MEMO_HASH] = field_hash(self)
        return found

    def __getstate__(self: object) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop(_MEMO_HASH, None)
        return state

    cls.__hash__ = __hash__  # type: ignore[method-assign,assignment]
    cls.__getstate__ = __getstate__  # type: ignore[attr-defined]
    return cls


class Precision(enum.Enum):
    """Numeric format of weights, activations or KV cache; carries its storage size."""

    BF16 = ("bf16", 2.0)
    FP8 = ("fp8", 1.0)
    INT8 = ("int8", 1.0)
    FP4 = ("fp4", 0.5)

    def __init__(self, label: str, bytes_per_element: float) -> None:
        self.label = label
        self.bytes_per_element = bytes_per_element

    @classmethod
    def from_label(cls, label: str) -> Precision:
        for p in cls:
            if p.label == label:
                return p
        raise ValueError(label)


class WeightFormat(enum.Enum):
    """How a weight matrix is stored: element type (whose tensor cores run it) plus its block-scale overhead.

    * ``bf16``: 2 bytes, no scales;
    * ``fp8`` / ``int8``: 1 byte plus one FP32 scale per 128 x 128 block (DeepSeek-V3 ``quantization_config``
      ``weight_block_size: [128, 128]``): 1 + 4 / 16384 bytes; per-tensor or per-channel FP8 scales are smaller
      still and are counted the same (under 0.03 % of the bytes);
    * ``mxfp4``: FP4 E2M1 elements in blocks of 32 sharing one 8-bit E8M0 scale (OCP Microscaling Formats (MX)
      Specification v1.0, 2023, §5 "MXFP4"): 0.5 + 1 / 32 = 0.53125 bytes;
    * ``nvfp4``: FP4 E2M1 elements in blocks of 16 sharing one FP8 E4M3 scale, plus one FP32 scale per tensor
      (NVIDIA technical blog "Introducing NVFP4 for Efficient and Accurate Low-Precision Inference", 2025):
      0.5 + 1 / 16 = 0.5625 bytes (the per-tensor scale is 4 bytes per matrix, not counted).
    """

    BF16 = ("bf16", Precision.BF16, 0.0)
    FP8 = ("fp8", Precision.FP8, 4.0 / (128 * 128))
    INT8 = ("int8", Precision.INT8, 4.0 / (128 * 128))
    MXFP4 = ("mxfp4", Precision.FP4, 1.0 / 32)
    NVFP4 = ("nvfp4", Precision.FP4, 1.0 / 16)

    def __init__(self, label: str, element: Precision, scale_bytes_per_element: float) -> None:
        self.label = label
        self.element = element
        """Element type: the precision whose tensor cores (and peak) a GEMM over these weights uses natively."""
        self.scale_bytes_per_element = scale_bytes_per_element

    @property
    def bytes_per_element(self) -> float:
        """Stored bytes per weight element, scales included."""
        return self.element.bytes_per_element + self.scale_bytes_per_element

    @classmethod
    def from_label(cls, label: str) -> WeightFormat:
        for f in cls:
            if f.label == label:
                return f
        raise ValueError(label)

    @classmethod
    def for_precision(cls, precision: Precision) -> WeightFormat:
        """The storage a one-precision ``weight_precision`` stands for: ``fp4`` is MXFP4 (gpt-oss's format)."""
        return {Precision.BF16: cls.BF16, Precision.FP8: cls.FP8, Precision.INT8: cls.INT8,
                Precision.FP4: cls.MXFP4}[precision]


class Confidence(enum.Enum):
    """How much a catalog number can be trusted (STYLE.md rule 8)."""

    DATASHEET = "datasheet"
    MEASURED = "measured"
    DERIVED = "derived"
    ESTIMATED = "estimated"


@memo_hash
@dataclass(frozen=True, kw_only=True)
class LinkSpec:
    """One network tier as seen from one device."""

    bytes_per_s: float
    """Line rate per device per direction (uni-directional), bytes/s."""
    latency_s: float
    """Fixed start-up latency of one transfer or collective step on this tier, seconds."""
    achievable_fraction: float = 0.8
    """Fraction of the line rate that collectives reach at large message sizes (measured where known)."""
    multicast_reduction: bool = False
    """The switch of this tier reduces and multicasts (NVLink SHARP, "NVLS": NVSwitch on Hopper / Blackwell)."""

    @property
    def effective_bytes_per_s(self) -> float:
        return self.bytes_per_s * self.achievable_fraction


@dataclass(frozen=True, kw_only=True)
class DeviceSpec:
    """One accelerator (GPU, NPU die) with the numbers the cost models need."""

    id: str
    """Lower-case catalog id, e.g. ``h200_sxm``."""
    name: str
    """Human name."""
    vendor: str
    """``nvidia``, ``amd`` or ``huawei``."""
    peak_flop_per_s: Mapping[Precision, float]
    """Dense (no 2:4 sparsity) matrix peak per precision, FLOP/s; a missing key means no hardware support."""
    hbm_bytes: float
    """Device memory capacity, bytes."""
    hbm_bytes_per_s: float
    """Device memory datasheet bandwidth, bytes/s."""
    compute_units: int
    """Streaming multiprocessors / compute units / AI cores: the unit of wave quantization."""
    l2_bytes: float
    """Last-level on-chip cache, bytes."""
    scale_up: LinkSpec
    """Tier inside a node or supernode (NVLink, HCCS/UB, Infinity Fabric)."""
    scale_out: LinkSpec
    """Tier between nodes (InfiniBand / RoCE NIC per device)."""
    devices_per_node: int
    """Devices sharing one scale-up domain by default (8 for HGX, 72 for NVL72, 768 dies for CloudMatrix384)."""
    vector_flop_per_s: float = 0.0
    """Non-matrix (CUDA core / vector unit) FP32 FLOP/s, for softmax, norms, routers; 0 = unknown (use 1/16 of bf16)."""
    sustained_clock_ratio: float = 0.0
    """Matrix rate under sustained load over the boost rate (the power limiter,
    ``cost_models.efficiency.SUSTAINED_CLOCK_RATIO``); 0 = that Hopper-calibrated value, 1 = no throttling."""

    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        # the peaks mapping is not hashable itself; hash its sorted items so specs can key memo caches
        return hash((self.id, tuple(sorted((p.label, v) for p, v in self.peak_flop_per_s.items())), self.hbm_bytes,
                     self.hbm_bytes_per_s, self.compute_units, self.l2_bytes, self.scale_up, self.scale_out,
                     self.devices_per_node, self.vector_flop_per_s, self.sustained_clock_ratio))

    def peak_for(self, precision: Precision) -> float:
        """Peak FLOP/s for ``precision``; falls back to the widest supported format slower than it.

        A device without FP8 units runs FP8 weights by up-casting to BF16 (A100, Ascend 910B/C); INT8 on
        devices that lack it likewise runs at BF16 rate.
        """
        if precision in self.peak_flop_per_s:
            return self.peak_flop_per_s[precision]
        return self.peak_flop_per_s[Precision.BF16]

    def supports(self, precision: Precision) -> bool:
        return precision in self.peak_flop_per_s


class AttentionKind(enum.Enum):
    """Attention family; decides KV size and decode arithmetic."""

    MHA = "mha"
    GQA = "gqa"
    MLA = "mla"
    MFA = "mfa"
    """Multi-matrix Factorization Attention (Step-3; Hu et al. 2025, arXiv 2412.19255): the query goes through a
    low-rank bottleneck (``q_lora_rank``, normalised, then up-projected to every head) and all query heads share
    ``num_kv_heads`` (Step-3: 1) key and value heads of the full head width."""


@memo_hash
@dataclass(frozen=True, kw_only=True)
class AttentionSpec:
    """Shape of one attention block."""

    kind: AttentionKind
    num_q_heads: int
    """Query heads."""
    num_kv_heads: int
    """KV heads (GQA/MHA). Nominal only for MLA."""
    qk_head_dim: int
    """Per-head query/key width (MLA: nope + rope)."""
    v_head_dim: int
    """Per-head value width."""
    q_lora_rank: int | None = None
    """MLA / MFA query compression rank (Step-3's ``share_q_dim``); None = plain q projection."""
    kv_lora_rank: int = 0
    """MLA latent KV rank (the cached latent width without the rope part)."""
    qk_rope_head_dim: int = 0
    """MLA decoupled rope key width, shared by all heads and cached."""
    sliding_window_tokens: int | None = None
    """Window of sliding-window layers; None = full attention everywhere."""
    sliding_window_layer_fraction: float = 0.0
    """Fraction of layers that use the sliding window (gpt-oss alternates: 0.5)."""

    @property
    def qk_nope_head_dim(self) -> int:
        return self.qk_head_dim - self.qk_rope_head_dim


@memo_hash
@dataclass(frozen=True, kw_only=True)
class MoESpec:
    """Routed + shared experts of one MoE layer."""

    num_routed_experts: int
    top_k: int
    expert_ffn_dim: int
    """Intermediate width of one routed expert (gated: 3 matrices hidden x ffn)."""
    num_shared_experts: int = 0
    shared_ffn_dim: int = 0
    """Total intermediate width of the shared expert(s) fused into one FFN (0 = none)."""
    num_groups: int = 1
    """Expert groups for node/group-limited routing (DeepSeek-V3: 8)."""
    topk_groups: int = 1
    """Groups a token may route to (DeepSeek-V3: 4). Equal to num_groups = unlimited."""


@memo_hash
@dataclass(frozen=True, kw_only=True)
class OpPrecisions:
    """Precision of each op class of a layer: the weights' storage, the attention math and the KV cache.

    A GEMM runs at its weights' element type where the device has tensor cores for it and otherwise de-quantises
    the weights to BF16 (weight-only: the stored bytes are read, the BF16 peak is used), as Hopper does for FP4.
    """

    routed_experts: WeightFormat
    """Routed-expert gate/up/down weights."""
    shared_experts: WeightFormat
    """Shared-expert weights."""
    dense_ffn: WeightFormat
    """Dense-layer FFN weights."""
    attention_projections: WeightFormat
    """q/kv down and up projections and the output projection."""
    attention: Precision = Precision.BF16
    """Math of the attention kernel (QK^T and PV): FP8 for FlashMLA FP8 / FlashAttention-3 FP8, else BF16.
    DeepSeek-V3 keeps attention operators in BF16 (report §3.3.1), hence the default."""
    kv_cache: Precision = Precision.BF16
    """KV-cache storage."""
    lm_head: WeightFormat = WeightFormat.BF16
    """Output head (kept BF16 by DeepSeek-V3, report §3.3.1)."""

    @classmethod
    def uniform(cls, weight: Precision, kv: Precision = Precision.BF16) -> OpPrecisions:
        """Every weight class in ``weight`` (BF16 head), BF16 attention math, ``kv`` cache: the one-precision
        behaviour of ``weight_precision`` / ``kv_precision``."""
        f = WeightFormat.for_precision(weight)
        return cls(routed_experts=f, shared_experts=f, dense_ffn=f, attention_projections=f, kv_cache=kv)

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name).label for name in OP_CLASSES}


OP_CLASSES = ("routed_experts", "shared_experts", "dense_ffn", "attention_projections", "attention", "kv_cache",
              "lm_head")
"""The op classes of :class:`OpPrecisions`, in the order reports list them."""
WEIGHT_CLASSES = ("routed_experts", "shared_experts", "dense_ffn", "attention_projections", "lm_head")
"""The op classes whose value is a :class:`WeightFormat`."""


@memo_hash
@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A decoder-only transformer, MoE or dense."""

    id: str
    name: str
    hidden_size: int
    num_layers: int
    """Decoder layers used in serving (MTP heads excluded)."""
    num_dense_layers: int
    """Layers with a dense FFN instead of MoE (all layers for a dense model)."""
    dense_ffn_dim: int
    """Intermediate width of the dense FFN (gated)."""
    vocab_size: int
    attention: AttentionSpec
    moe: MoESpec | None
    native_precision: Precision
    """Precision the released weights ship in."""
    max_context_tokens: int
    tie_embeddings: bool = False
    num_mtp_layers: int = 0
    """Multi-token-prediction layers present in the checkpoint (not used unless speculative decoding is on)."""
    checkpoint_precisions: OpPrecisions | None = None
    """Per-op-class formats the checkpoint's quantization config states; None = ``native_precision`` everywhere."""
    ffn_gated: bool = True
    """FFNs are gated (SwiGLU: gate, up, down = 3 matrices); False = plain two-matrix MLP (GELU), as the GPT models
    of the Megatron training papers (arXiv 2104.04473, 2205.05198) that the training cost models are checked on."""

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers if self.moe else 0


@memo_hash
@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    """The devices a plan may use and the two network tiers between them."""

    device: DeviceSpec
    num_nodes: int
    devices_per_node: int
    scale_up: LinkSpec
    scale_out: LinkSpec

    @property
    def num_devices(self) -> int:
        return self.num_nodes * self.devices_per_node


@dataclass(frozen=True, kw_only=True)
class ServingWorkload:
    """What the deployment must serve and how fast."""

    input_tokens: int
    output_tokens: int
    concurrency: int | None = None
    """Sequences in flight in the whole deployment; None = as many as memory allows."""
    ttft_slo_s: float | None = None
    tpot_slo_s: float | None = None
    weight_precision: Precision = Precision.BF16
    kv_precision: Precision = Precision.BF16
    activation_precision: Precision = Precision.BF16
    """Precision of GEMM activations (FP8 when FP8 GEMMs run; BF16 otherwise)."""
    dispatch_precision: Precision = Precision.BF16
    """Precision of the EP dispatch payload (DeepSeek sends FP8)."""
    prefill_tokens_per_device: int | None = None
    """Tokens one device prefills per forward (chunk size); None = one prompt per attention-DP rank."""
    decode_context_tokens: int | None = None
    """Mean KV length a decode step attends over; None = input + output / 2."""
    decode_batch_per_device: float | None = None
    """Sequences per device in a decode step; None = largest that memory and the TPOT SLO allow."""
    request_rate_per_s: float | None = None
    """Requests per second the deployment must sustain (``plan --objective devices``)."""
    aligned_prefill: bool = False
    """Aggregated serving: the engine aligns prompt (context) phases across attention-DP ranks."""
    mtp_tokens: int = 0
    """Draft tokens per step from multi-token prediction (0 = off)."""
    mtp_acceptance: float = 0.0
    """Probability a draft token is accepted given that the drafts before it were (every position alike)."""
    mtp_position_acceptance: tuple[float, ...] = ()
    """Per-position conditional acceptance (draft 1, 2, ...); overrides ``mtp_acceptance`` when given."""
    expert_imbalance: float = 1.0
    """Max/mean tokens per device of the routed experts (1.0 = perfect balance)."""
    op_precision: OpPrecisions | None = None
    """Precision per op class; None = ``weight_precision`` for every weight class, ``kv_precision`` for the KV."""
    runtime_reserve_bytes: float | None = None
    """Memory the serving engine keeps outside weights, KV, activations and EP buffers on each device (CUDA
    graphs, allocator, collective libraries); None = :data:`cost_models.memory.RUNTIME_RESERVE_BYTES`."""
    static_memory_fraction: float | None = None
    """Share of device memory the engine's static pool (weights + KV cache) takes, the rest holding everything
    else (SGLang ``--mem-fraction-static``; :mod:`cost_models.memory_pool`); overrides ``runtime_reserve_bytes``.
    None = no static pool: the KV cache gets what the weights, activations, buffers and reserve leave."""

    @property
    def precisions(self) -> OpPrecisions:
        """The precision of every op class (explicit, or derived from weight_precision / kv_precision)."""
        return self.op_precision or OpPrecisions.uniform(self.weight_precision, self.kv_precision)

    @property
    def mtp_acceptance_by_position(self) -> tuple[float, ...]:
        """Conditional acceptance of draft 1..k (k = ``mtp_tokens``)."""
        if self.mtp_position_acceptance:
            return self.mtp_position_acceptance
        return (self.mtp_acceptance,) * self.mtp_tokens
