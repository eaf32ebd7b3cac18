"""A lower bound on the step time of a training layout, from its compute alone, for the search's branch and bound.

The pipeline part of a step is at least the work of its busiest rank, and that is at least the compute of any
rank: ``passes x C_r`` with ``C_r`` the forward + backward kernels (recompute included) of one micro-batch
through the decoder layers of rank ``r`` (cost_models.training.layer_ops.layer_compute, per layer) and
``passes`` the full passes per step (``m / 2`` for DualPipe, ``m`` otherwise;
cost_models.training.step.rank_passes_per_step).  Overlap can hide communication but not compute, so this holds
for every schedule: paired chunks last at least their compute, ``F&B = max(C + f M, M) >= C``.  Heads, MTP
layers, communication, bubbles, DP traffic and the optimizer step only add to it.

A layer's kernels depend on ``tp``, ``cp``, ``ep``, ``etp``, the micro-batch, sequence parallelism and the
workload, not on the pipeline: they are cached per that key, so a bound costs one lookup per layout.
"""

from __future__ import annotations

from cost_models.training import layer_ops
from cost_models.training.dims import TrainingDims, chunk_layers, rank_chunks
from cost_models.training.specs import TrainingWorkload
from cost_models.training.step import rank_passes_per_step


def rank_layer_counts(model: object, dims: TrainingDims) -> list[tuple[int, int]]:
    """(dense, MoE) decoder layers of every pipeline rank (the first ``num_dense_layers`` layers are dense)."""
    counts = chunk_layers(model, dims)  # type: ignore[arg-type]
    starts = [sum(counts[:c]) for c in range(len(counts))]
    first_moe = model.num_dense_layers if model.moe is not None else model.num_layers  # type: ignore[attr-defined]
    out = []
    for r in range(dims.pp):
        dense = moe = 0
        for c in rank_chunks(dims, r):
            lo, hi = starts[c], starts[c] + counts[c]
            d = max(0, min(hi, first_moe) - lo)
            dense, moe = dense + d, moe + (hi - lo - d)
        out.append((dense, moe))
    return out


class ComputeBound:
    """Step-time lower bounds on one scenario, with the per-layer kernel times cached."""

    def __init__(self, sc: object) -> None:
        self.device = sc.cluster.device  # type: ignore[attr-defined]
        self.model = sc.model  # type: ignore[attr-defined]
        self._layer: dict[tuple, float] = {}

    def layer_s(self, dims: TrainingDims, workload: TrainingWorkload, *, moe_layer: bool) -> float:
        """Forward + backward kernels of one layer and micro-batch, seconds."""
        key = (dims.tp, dims.cp, dims.ep, dims.etp, dims.micro_batch_sequences, dims.sp_active, workload, moe_layer)
        if key not in self._layer:
            lc = layer_ops.layer_compute(self.device, self.model, dims, workload, moe_layer=moe_layer)
            self._layer[key] = lc.forward_total_s + lc.backward_total_s
        return self._layer[key]

    def step_lower_bound_s(self, dims: TrainingDims, workload: TrainingWorkload) -> float:
        m = dims.micro_batches(workload.global_batch_sequences)
        counts = rank_layer_counts(self.model, dims)
        dense = self.layer_s(dims, workload, moe_layer=False) if any(d for d, _ in counts) else 0.0
        moe = self.layer_s(dims, workload, moe_layer=True) if any(x for _, x in counts) else 0.0
        return rank_passes_per_step(dims, m) * max(d * dense + x * moe for d, x in counts)
