"""The fine-tuning spec: frozen parts and LoRA adapters (the costs: :mod:`cost_models.training.finetune`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Part(enum.Enum):
    """A part of the model that can be frozen (or, for the GEMM parts, carry LoRA adapters)."""

    EMBEDDING = "embedding"
    HEAD = "head"
    """The LM head (and the MTP merge projections)."""
    ATTENTION = "attention"
    DENSE_FFN = "dense_ffn"
    ROUTER = "router"
    ROUTED_EXPERTS = "routed_experts"
    SHARED_EXPERTS = "shared_experts"


LORA_TARGETS = (Part.ATTENTION, Part.DENSE_FFN, Part.ROUTED_EXPERTS, Part.SHARED_EXPERTS)
"""Parts whose GEMMs can carry LoRA adapters."""

LINEAR_PART = {"mla_down": Part.ATTENTION, "q_up": Part.ATTENTION, "kv_up": Part.ATTENTION, "qkv": Part.ATTENTION,
                "attn_out": Part.ATTENTION, "mlp_up": Part.DENSE_FFN, "mlp_down": Part.DENSE_FFN,
                "router": Part.ROUTER, "expert_up": Part.ROUTED_EXPERTS, "expert_down": Part.ROUTED_EXPERTS,
                "shared_up": Part.SHARED_EXPERTS, "shared_down": Part.SHARED_EXPERTS,
                "lm_head": Part.HEAD, "mtp_proj": Part.HEAD}
"""Part of every GEMM name of :mod:`cost_models.training.layer_ops`."""


@dataclass(frozen=True, kw_only=True)
class Finetune:
    """Which parts are frozen and which GEMMs carry LoRA adapters of which rank."""

    frozen: frozenset[Part] = field(default_factory=frozenset)
    """Parts whose parameters are not trained."""
    lora_rank: int = 0
    """Rank ``r`` of every adapter; 0 = no LoRA."""
    lora_targets: frozenset[Part] = field(default_factory=frozenset)
    """Parts whose GEMMs carry adapters (each must be frozen, and one of :data:`LORA_TARGETS`)."""

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise ValueError(f"workload.finetune.lora.rank must be >= 0, got {self.lora_rank}")
        if bool(self.lora_rank) != bool(self.lora_targets):
            raise ValueError("workload.finetune.lora needs both a rank >= 1 and at least one target")
        bad = sorted(p.value for p in self.lora_targets if p not in LORA_TARGETS or p not in self.frozen)
        if bad:
            raise ValueError(f"workload.finetune.lora.targets {bad} must be frozen GEMM parts "
                             f"({[p.value for p in LORA_TARGETS]} listed in workload.finetune.frozen)")
        if set(self.frozen) == set(Part) and not self.lora_rank:
            raise ValueError("workload.finetune freezes every part and adds no LoRA adapter: nothing to train")

    def trains(self, part: Part) -> bool:
        return part not in self.frozen

    def adapts(self, name: str) -> bool:
        """Whether GEMM ``name`` carries a LoRA adapter."""
        return self.lora_rank > 0 and LINEAR_PART.get(name) in self.lora_targets
