"""A lower bound on the step time of a training layout, for the search's branch and bound.

The pipeline part of a step (cost_models.training.step / pipeline) is at least the work of its busiest rank, and
the busiest rank's pace is at least every rank's: per micro-batch, rank ``r`` spends ``C_r`` in kernels
(forward + backward + recompute of its decoder layers, cost_models.training.layer_ops.layer_compute), ``TP_r`` in
exposed TP collectives (a dense layer's backward ones less what its column-parallel GEMMs hide,
:func:`cost_models.training.step.dense_tp_backward_s`) and ``M_r`` in EP all-to-all -- exposed unless chunks are
paired, and then ``F&B = max(C + f M, M) + exposed >= C + f M``, ``f`` the compute share the DeepEP kernels hold.  So the
pipeline part is at least ``passes x max_r(C_r + TP_r + a M_r)`` (``passes`` = ``m / 2`` for DualPipe, ``m``
otherwise; a = f when paired, else 1).  1F1B and interleaved 1F1B add the bubble ``(p - 1)(F + B) / v`` of the
busiest rank, which is at least ``(p - 1) / v x min_r(C_r + TP_r + M_r)``.  Heads, MTP layers, CP, PP sends, the
other schedules' bubbles, DP traffic and the optimizer step only add to the step.

A layer's kernels and collectives depend on ``tp``, ``cp``, ``ep``, ``etp``, the micro-batch, sequence
parallelism and the workload, not on the pipeline: they are cached per that key, so a bound costs a lookup and a
sum over ranks per layout.
"""

from __future__ import annotations

from cost_models.step import COMM_SM_FRACTION_NORMAL
from cost_models.training import comm as tcomm
from cost_models.training import finetune
from cost_models.training.dims import A2AOverlap, Schedule, TrainingDims, chunk_layers, rank_chunks
from cost_models.training.specs import TrainingWorkload
from cost_models.training.step import dense_tp_backward_s, rank_passes_per_step


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


def paired(dims: TrainingDims) -> bool:
    """Forward and backward chunks of two micro-batches run together (DualPipe(V), or the 1F1B a2a overlap)."""
    return dims.schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V) or dims.a2a_overlap is A2AOverlap.FB_PAIRS


class ComputeBound:
    """Step-time lower bounds on one scenario, with the per-layer kernel and collective times cached."""

    def __init__(self, sc: object) -> None:
        self.cluster = sc.cluster  # type: ignore[attr-defined]
        self.model = sc.model  # type: ignore[attr-defined]
        self._layer: dict[tuple, tuple[float, float, float]] = {}

    def layer_s(self, dims: TrainingDims, workload: TrainingWorkload, *, moe_layer: bool) -> tuple[float, float, float]:
        """(kernels, TP collectives, EP all-to-all) of one layer and micro-batch, forward + backward, seconds."""
        key = (dims.tp, dims.cp, dims.cp_kind, dims.ep, dims.etp, dims.micro_batch_sequences, dims.sp_active,
               dims.tp_comm_overlap, workload, moe_layer)
        if key not in self._layer:
            lc = finetune.layer_compute(self.cluster.device, self.model, dims, workload, moe_layer=moe_layer)
            cm = tcomm.layer_comm(self.cluster, self.model, dims, workload, moe_layer=moe_layer)
            redo = workload.recompute.full
            tp_b = cm.tp_backward_s if moe_layer else dense_tp_backward_s(self.cluster, self.model, dims, workload,
                                                                           lc)
            self._layer[key] = (lc.forward_total_s + lc.backward_total_s,
                                cm.tp_forward_s * (2 if redo else 1) + tp_b,
                                cm.ep_forward_s * (2 if redo else 1) + cm.ep_backward_s)
        return self._layer[key]

    def step_lower_bound_s(self, dims: TrainingDims, workload: TrainingWorkload) -> float:
        """``passes x max_r(C_r + TP_r + a M_r)`` (a = the compute share the all-to-all kernels hold when paired,
        1 otherwise), plus for 1F1B and interleaved 1F1B the bubble ``(p - 1) / v x min_r(C_r + TP_r + M_r)``."""
        m = dims.micro_batches(workload.global_batch_sequences)
        counts = rank_layer_counts(self.model, dims)
        zero = (0.0, 0.0, 0.0)
        dense = self.layer_s(dims, workload, moe_layer=False) if any(d for d, _ in counts) else zero
        moe = self.layer_s(dims, workload, moe_layer=True) if any(x for _, x in counts) else zero
        share = COMM_SM_FRACTION_NORMAL if paired(dims) else 1.0
        per_rank = [[d * a + x * b for a, b in zip(dense, moe, strict=True)] for d, x in counts]
        work = rank_passes_per_step(dims, m) * max(c + t + share * e for c, t, e in per_rank)
        bubble = 0.0
        if dims.schedule in (Schedule.ONE_F_ONE_B, Schedule.INTERLEAVED):
            v = dims.vpp if dims.schedule is Schedule.INTERLEAVED else 1
            bubble = (dims.pp - 1) / v * min(c + t + e for c, t, e in per_rank)
        return work + bubble
