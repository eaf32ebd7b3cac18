"""Typed specs of a training workload: precision recipe, optimizer, recompute policy, routing, batch.

All sizes are bytes per element or per parameter and say so in their names.  Sources:

* Adam with fp32 master weights, fp32 gradients and fp32 moments: 2 (bf16 param) + 4 (fp32 grad) + 4 (master)
  + 4 + 4 (moments) = 18 bytes per parameter, the figure of Megatron's estimator
  (NVIDIA/Megatron-LM@d98e8a64 megatron/training/theoretical_memory_usage.py, ``num_bytes_per_parameter``);
* DeepSeek-V3 keeps AdamW's moments in BF16 and the master weights and gradient accumulation in FP32
  (DeepSeek-V3 report, arXiv 2412.19437, §3.3.4 "Low-Precision Storage and Communication");
* Megatron-LM's mixed precision under ``--fp16`` accumulates and all-reduces gradients in the parameter dtype (2
  bytes) unless ``--accumulate-allreduce-grads-in-fp32`` is given (an opt-in ``store_true``; ``--bf16`` turns it
  on), NVIDIA/Megatron-LM megatron/arguments.py ``_add_mixed_precision_args``: the 2021-era fp16 runs;
* Muon keeps one momentum buffer per matrix instead of Adam's two moments (Liu et al., "Muon is Scalable for LLM
  Training", arXiv 2502.16982, §2: "Muon ... requires only one momentum buffer");
* FP8 recipes: DeepSeek-V3's fine-grained scaling (1x128 activation tiles, 128x128 weight blocks, §3.3.1-3.3.2),
  which also caches the inputs of its Linear layers in FP8 for the backward pass (§3.3.4); Transformer Engine
  tensor-wise (delayed / current) scaling and MXFP8 (32-element blocks, OCP MX spec v1.0);
* precision per op class: torchtitan converts the dense Linears (``Float8LinearConverter``, with ``filter_fqns``
  for the modules kept in high precision, e.g. ``["output", "router.gate"]``) and the routed experts' grouped GEMMs
  (``Float8GroupedExpertsConverter``; MXFP8 for the grouped experts, ``MXFP8GroupedExpertsConverter``) separately
  (pytorch/torchtitan@b5bcd76c torchtitan/components/quantization/float8.md, mx.py), so routed experts in FP8 beside
  BF16 attention is a run one can launch; FP8 core attention is Transformer Engine's ``fp8_dpa`` (Megatron-Core's
  ``fp8_dot_product_attention`` config field, which has no command-line flag; NVIDIA/Megatron-LM@d98e8a64
  megatron/core/fp8_utils.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cost_models.specs import Precision
from cost_models.training.finetune_spec import Finetune


class PrecisionRecipe(enum.Enum):
    """How the Linear GEMMs of training run and what precision their saved inputs and EP payloads have."""

    BF16 = ("bf16", Precision.BF16, 2.0, 2.0)
    FP8_TENSORWISE = ("fp8_tensorwise", Precision.FP8, 2.0, 2.0)
    FP8_BLOCKWISE = ("fp8_blockwise", Precision.FP8, 1.0 + 4.0 / 128, 1.0 + 4.0 / 128)
    MXFP8 = ("mxfp8", Precision.FP8, 1.0 + 1.0 / 32, 2.0)

    def __init__(self, label: str, gemm_precision: Precision, saved_linear_input_bytes_per_element: float,
                 dispatch_bytes_per_element: float) -> None:
        self.label = label
        self.gemm_precision = gemm_precision
        """Operand precision of forward, input-gradient and weight-gradient Linear GEMMs."""
        self.saved_linear_input_bytes_per_element = saved_linear_input_bytes_per_element
        """Bytes per element of a Linear input kept for the weight-gradient GEMM (DeepSeek caches FP8 + scales;
        Transformer Engine's tensor-wise recipe keeps the BF16 input and re-casts it; MXFP8 keeps the
        column-wise FP8 copy with one E8M0 scale per 32)."""
        self.dispatch_bytes_per_element = dispatch_bytes_per_element
        """EP dispatch payload per hidden element (DeepSeek dispatches FP8 with 1x128 scales; the others BF16)."""

    @property
    def swiglu_input_bytes_per_element(self) -> float:
        """Saved gate/up outputs of routed experts: DeepSeek caches the SwiGLU inputs in FP8 (§3.3.4)."""
        return self.saved_linear_input_bytes_per_element if self is PrecisionRecipe.FP8_BLOCKWISE else 2.0

    @classmethod
    def from_label(cls, label: str) -> PrecisionRecipe:
        for r in cls:
            if r.label == label:
                return r
        raise ValueError(f"unknown precision recipe {label!r}; accepted: {[r.label for r in cls]}")


class TrainingOpClass(enum.Enum):
    """A class of Linear GEMMs a training precision can keep in BF16 under an FP8 recipe (the serving op classes of
    :data:`cost_models.specs.OP_CLASSES` that training runs as Linears; the router, the embedding and the head are
    BF16 under every recipe)."""

    ATTENTION_PROJECTIONS = "attention_projections"
    """q/k/v (MLA down and up) and output projections."""
    DENSE_FFN = "dense_ffn"
    """The dense layers' MLP."""
    ROUTED_EXPERTS = "routed_experts"
    """The routed experts' grouped GEMMs."""
    SHARED_EXPERTS = "shared_experts"
    """The shared experts' MLP."""


class Optimizer(enum.Enum):
    """Optimizer with the bytes per parameter of its states (module docstring for sources)."""

    ADAM = ("adam", 2.0, 4.0, 4.0, 8.0)
    ADAM_BF16_MOMENTS = ("adam_bf16_moments", 2.0, 4.0, 4.0, 4.0)
    ADAM_FP16_GRADS = ("adam_fp16_grads", 2.0, 2.0, 4.0, 8.0)
    """Adam whose gradients accumulate and are all-reduced in fp16 (Megatron-LM ``--fp16`` without
    ``--accumulate-allreduce-grads-in-fp32``)."""
    MUON = ("muon", 2.0, 4.0, 4.0, 4.0)

    def __init__(self, label: str, param_bytes: float, grad_bytes: float, master_bytes: float,
                 state_bytes: float) -> None:
        self.label = label
        self.param_bytes = param_bytes
        """Model (compute) copy of a parameter: bf16."""
        self.grad_bytes = grad_bytes
        """Gradient accumulation buffer per parameter: fp32 ("main grads"); fp16 for ``ADAM_FP16_GRADS``."""
        self.master_bytes = master_bytes
        """fp32 master copy the optimizer updates."""
        self.state_bytes = state_bytes
        """Optimizer moments per parameter (Adam: two fp32 = 8; BF16 moments = 4; Muon: one fp32 momentum = 4)."""

    @property
    def sharded_bytes(self) -> float:
        """What a distributed optimizer (ZeRO-1) shards over data-parallel ranks: master + moments."""
        return self.master_bytes + self.state_bytes

    @property
    def total_bytes(self) -> float:
        return self.param_bytes + self.grad_bytes + self.sharded_bytes


class RecomputeModule(enum.Enum):
    """A part of a layer whose saved activations are dropped and recomputed in the backward pass."""

    CORE_ATTENTION = "core_attn"
    """Softmax(QK^T)V: Korthikanti et al.'s "selective" recompute (arXiv 2205.05198 §4.2)."""
    NORM = "layernorm"
    """Norm outputs (the GEMM inputs after each norm): Megatron-Core ``--recompute-modules layernorm``."""
    ACTIVATION = "moe_act"
    """FFN activation outputs (the down-projection inputs): Megatron-Core ``moe_act`` (and ``mlp`` activation)."""
    MLA_UP_PROJ = "mla_up_proj"
    """MLA's q/k/v after the up-projections: Megatron-Core ``mla_up_proj``."""


@dataclass(frozen=True, kw_only=True)
class Recompute:
    """Activation recomputation: none, selected modules, or full (only each layer's input is kept)."""

    full: bool = False
    """Keep only the input of every layer; rerun the whole layer forward before its backward."""
    modules: frozenset[RecomputeModule] = field(default_factory=frozenset)
    """Modules recomputed when ``full`` is False (empty = no recompute)."""
    op_sac: bool = False
    """torchtitan's per-op selective checkpointing (:mod:`cost_models.training.op_sac`): keep the block input, the
    SDPA output and every other matmul output; rerun everything else (expert GEMMs, norms, activations)."""

    def drops(self, module: RecomputeModule) -> bool:
        return self.full or module in self.modules

    @property
    def reruns_layer(self) -> bool:
        """Whether a layer's backward rebuilds most of its forward first (full recompute, op-level SAC): its whole
        set of activations is alive once, during that layer's backward."""
        return self.full or self.op_sac

    @classmethod
    def none(cls) -> Recompute:
        return cls()

    @classmethod
    def selective(cls, *modules: RecomputeModule) -> Recompute:
        return cls(modules=frozenset(modules or (RecomputeModule.CORE_ATTENTION,)))

    @classmethod
    def full_layers(cls) -> Recompute:
        return cls(full=True)

    @classmethod
    def op_selective(cls) -> Recompute:
        return cls(op_sac=True)


@dataclass(frozen=True, kw_only=True)
class TrainingWorkload:
    """What one training step processes and how."""

    seq_tokens: int
    """Tokens per sequence."""
    global_batch_sequences: int
    """Sequences per optimizer step (all data-parallel ranks together)."""
    recipe: PrecisionRecipe = PrecisionRecipe.BF16
    optimizer: Optimizer = Optimizer.ADAM
    recompute: Recompute = field(default_factory=Recompute)
    expert_imbalance: float = 1.0
    """Max / mean routed tokens per EP rank (1.0 = force-balanced routing)."""
    capacity_factor: float | None = None
    """Expert capacity as a multiple of the mean load (tokens beyond it are dropped); None = dropless."""
    flash_attention: bool = True
    """Core attention is a fused kernel that keeps only its output and the softmax log-sum-exp; False = the
    unfused attention of the 2021-2022 Megatron papers, which keeps the s x s scores (Korthikanti's 5as/h term)."""
    dropout: bool = False
    """Dropout after attention and MLP (1-byte masks, Korthikanti Table 2); modern LLM pre-training uses none."""
    loss_chunks: int = 1
    """Chunks the LM head and cross-entropy run in along the tokens (a chunked loss): only one chunk's logits and
    softmax are alive at a time; 1 = the whole micro-batch's logits at once."""
    loss_fp32_upcast: bool = False
    """The loss is PyTorch's cross-entropy on an fp32 copy of the logits (torchtitan:
    ``cross_entropy(pred.float(), labels)``), which keeps several fp32 vocabulary-sized tensors alive
    (:data:`cost_models.training.activations.TORCH_LOSS_BYTES`); False = Megatron's fused vocab-parallel
    cross-entropy (``LOGIT_BYTES``)."""
    fp32_params: bool = False
    """The sharded parameters are fp32 and are themselves the optimizer's master copy, cast to bf16 at each
    all-gather: PyTorch FSDP2 with ``MixedPrecisionPolicy(param_dtype=bf16)`` as torchtitan applies it (its model is
    built in ``training.dtype``, default float32, train.py ``set_default_dtype``; pytorch/torchtitan@92ed8b31
    models/llama3/infra/parallelize.py ``apply_fsdp``, config ``mixed_precision_param``). No separate bf16 shard is
    kept. Applies under ZeRO-3 (FSDP); other shardings are costed as Megatron keeps them. False = a bf16 model copy
    beside an fp32 master (Megatron-Core, incl. its FSDP)."""
    finetune: Finetune | None = None
    """Frozen parts and LoRA adapters (:mod:`cost_models.training.finetune`); None = every parameter trains."""
    bf16_classes: frozenset[TrainingOpClass] = frozenset()
    """Linear classes kept in BF16 under an FP8 recipe (their GEMMs at the BF16 rate, their saved inputs and, for the
    routed experts, the EP dispatch in BF16, no FP8 cast before them); empty = the recipe for every Linear."""
    fp8_attention: bool = False
    """Core attention in FP8 (Transformer Engine's fused FP8 attention, ``fp8_dpa``): forward and backward at the
    device's FP8 attention rate; needs an FP8 recipe and flash (fused) attention."""

    def __post_init__(self) -> None:
        for name in ("seq_tokens", "global_batch_sequences", "loss_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"workload.{name} must be >= 1, got {getattr(self, name)}")
        if self.expert_imbalance < 1.0:
            raise ValueError(f"workload.expert_imbalance must be >= 1.0, got {self.expert_imbalance}")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ValueError(f"workload.capacity_factor must be > 0 or None, got {self.capacity_factor}")
        if self.recipe is PrecisionRecipe.BF16 and self.fp8_attention:
            raise ValueError("workload.fp8_attention needs an FP8 recipe")
        if self.fp8_attention and not self.flash_attention:
            raise ValueError("workload.fp8_attention needs flash (fused) attention")

    def fp8(self, op_class: TrainingOpClass) -> bool:
        """Whether ``op_class``'s Linears run in the recipe's FP8 (an FP8 recipe, the class not kept in BF16)."""
        return self.recipe.gemm_precision is Precision.FP8 and op_class not in self.bf16_classes

    def linear_precision(self, op_class: TrainingOpClass) -> Precision:
        """Operand precision of ``op_class``'s forward, input-gradient and weight-gradient GEMMs."""
        return self.recipe.gemm_precision if self.fp8(op_class) else Precision.BF16

    def saved_input_bytes_per_element(self, op_class: TrainingOpClass) -> float:
        """Bytes per element of an ``op_class`` Linear input kept for its weight-gradient GEMM."""
        return self.recipe.saved_linear_input_bytes_per_element if self.fp8(op_class) else Precision.BF16.bytes_per_element

    @property
    def dispatch_bytes_per_element(self) -> float:
        """EP dispatch payload per hidden element: the recipe's where the routed experts run in FP8, else BF16."""
        return self.recipe.dispatch_bytes_per_element if self.fp8(TrainingOpClass.ROUTED_EXPERTS) else Precision.BF16.bytes_per_element

    @property
    def swiglu_input_bytes_per_element(self) -> float:
        """Saved gate/up outputs of the routed experts (:attr:`PrecisionRecipe.swiglu_input_bytes_per_element`
        where they run in FP8)."""
        return (self.recipe.swiglu_input_bytes_per_element if self.fp8(TrainingOpClass.ROUTED_EXPERTS)
                else Precision.BF16.bytes_per_element)

    @property
    def global_batch_tokens(self) -> int:
        return self.seq_tokens * self.global_batch_sequences

    @property
    def routed_load_factor(self) -> float:
        """Load of the busiest EP rank over the mean: the imbalance, capped by the capacity factor (drops)."""
        if self.capacity_factor is None:
            return self.expert_imbalance
        return min(self.expert_imbalance, self.capacity_factor)
