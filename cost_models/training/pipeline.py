"""Closed-form pipeline schedules: bubble time, total time of the pipeline part, and what each rank holds.

Per schedule, with ``PP`` pipeline *stages*, ``m`` micro-batches and chunk times ``F`` (forward of one stage),
``B`` (full backward: input- plus weight-gradient), ``W`` (the weight-gradient part of ``B``) and ``F&B`` (one
forward and one backward chunk of two micro-batches run mutually overlapped):

| schedule | bubble | parameters per device | activations per device | devices |
| --- | --- | --- | --- | --- |
| 1F1B | (PP-1)(F+B) | 1x | PP | PP |
| ZB1P | (PP-1)(F+B-2W) | 1x | PP | PP |
| DualPipe | (PP/2-1)(F&B+B-3W) | 2x | PP+1 | PP |
| DualPipeV | (PP/2-1)(F&B+B-3W) | 2x | PP+1 | PP/2 |

(deepseek-ai/DualPipe README @3da1bbea53606543d7f5f232338fc58096db30e3, "Pipeline Bubbles and Memory Usage
Comparison"; activations in units of one micro-batch's activations of one stage, parameters in units of one
stage's parameters).  Interleaved 1F1B with ``v`` chunks per rank divides the bubble by ``v`` (Narayanan et al.
2021, arXiv 2104.04473 §2.2.2: bubble fraction ``(p-1)/(v m)``) and holds ``p + (p-1)/v`` stage units on the first
rank: Megatron's warm-up runs ``2 (p - r - 1) + (v - 1) p`` chunks on rank ``r`` before the first backward
(megatron/core/pipeline_parallel/schedules.py), plus the one in steady state.

Time of the pipeline part: the useful work ``m x (F + B)`` (or ``m x F&B`` when forward and backward chunks are
paired and overlapped) plus the bubble.  The pairing in DualPipe's warm-up and cool-down is what its bubble
formula already accounts for; using ``m x F&B`` for the rest is this module's simplification.
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_models.training.dims import Schedule


@dataclass(frozen=True, kw_only=True)
class ChunkTimes:
    """Times of one micro-batch on one stage (one chunk), seconds."""

    forward_s: float
    """F: forward of the chunk, including the communication it exposes."""
    backward_s: float
    """B: the full backward (input gradients and weight gradients, plus recompute)."""
    weight_grad_s: float
    """W: the weight-gradient GEMMs inside B (what zero-bubble schedules defer into the bubbles)."""
    overlapped_fb_s: float
    """F&B: one forward and one backward chunk of two micro-batches run together."""


def bubble_s(schedule: Schedule, stages: int, t: ChunkTimes, *, vpp: int = 1) -> float:
    """Idle time of the busiest rank per step (module table); ``stages`` = PP of the table."""
    p = stages
    f, b, w, fb = t.forward_s, t.backward_s, t.weight_grad_s, t.overlapped_fb_s
    if schedule is Schedule.ONE_F_ONE_B:
        return (p - 1) * (f + b)
    if schedule is Schedule.INTERLEAVED:
        # chunk times are 1/v of a stage's: (p-1)(F/v + B/v)
        return (p - 1) * (f + b) / vpp
    if schedule is Schedule.ZERO_BUBBLE:
        return (p - 1) * (f + b - 2 * w)
    return (p / 2 - 1) * (fb + b - 3 * w)


def bubble_fraction(schedule: Schedule, stages: int, micro_batches: int, *, vpp: int = 1) -> float:
    """Bubble over useful time for the schedules whose bubble is a multiple of F + B: ``(p-1)/m`` (1F1B) and
    ``(p-1)/(v m)`` (interleaved); other schedules need chunk times (:func:`bubble_s`)."""
    if schedule is Schedule.ONE_F_ONE_B:
        return (stages - 1) / micro_batches
    if schedule is Schedule.INTERLEAVED:
        return (stages - 1) / (vpp * micro_batches)
    raise ValueError(f"{schedule.value}: the bubble depends on W and F&B; use bubble_s")


def pipeline_s(schedule: Schedule, stages: int, micro_batches: int, t: ChunkTimes, *, vpp: int = 1,
               paired: bool = False) -> float:
    """Time of the pipeline part of a step: ``m (F+B)`` or, when forward and backward chunks are paired
    (DualPipe always; 1F1B with the all-to-all overlap when ``paired``), ``m F&B``; plus the bubble.  For 1F1B,
    ZB1P and interleaved, ``t`` holds a rank's whole stage (all its virtual chunks); for DualPipe(V) one chunk."""
    if schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V):
        # F, B are one stage's chunk; a DualPipe rank runs m chunk passes (half of the micro-batches through
        # each of its two stages), a DualPipeV rank 2m (every micro-batch through both of its stages)
        passes = micro_batches * (2 if schedule is Schedule.DUALPIPE_V else 1)
        work = passes * t.overlapped_fb_s
    elif paired:
        # only steady-state chunks pair up: the warm-up forwards (and as many cool-down backwards) of the first
        # rank run alone (Megatron-Core's combined 1F1B overlaps the steady state only)
        chunks = micro_batches * vpp
        alone = min(chunks, warmup_chunks(schedule, stages, 0, vpp=vpp, paired=True)) / chunks
        work = micro_batches * (alone * (t.forward_s + t.backward_s) + (1 - alone) * t.overlapped_fb_s)
    else:
        work = micro_batches * (t.forward_s + t.backward_s)
    return work + bubble_s(schedule, stages, t, vpp=vpp)


def warmup_chunks(schedule: Schedule, ranks: int, rank: int, *, vpp: int = 1, paired: bool = False) -> int:
    """Forward chunks rank ``rank`` runs before its first backward: ``p - r - 1`` (1F1B, ZB1P) or
    ``2 (p - r - 1) + (v - 1) p`` (interleaved, megatron/core/pipeline_parallel/schedules.py).  ``paired``: the
    combined 1F1B of the all-to-all overlap runs one more interleaved warm-up forward, so that the forward and
    backward of every steady-state step are independent (NVIDIA/Megatron-LM@d98e8a64 schedules.py
    ``get_pp_rank_microbatches``, ``overlap_moe_expert_parallel_comm``)."""
    if schedule is Schedule.INTERLEAVED:
        return 2 * (ranks - rank - 1) + (vpp - 1) * ranks + (1 if paired else 0)
    return ranks - rank - 1


def combined_step_chunks(ranks: int, rank: int, micro_batches: int, vpp: int) -> list[tuple[int, int]]:
    """(forward chunk, backward chunk) of rank ``rank``'s local chunks in every steady-state combined step of the
    interleaved schedule with the all-to-all overlap.

    Megatron-Core runs virtual micro-batch ``i`` forward on local chunk ``(i mod p v) // p`` and backward on
    ``v - 1 - (i mod p v) // p`` (``get_model_chunk_id`` with the default group size ``p``); a steady step pairs
    forward ``k + w`` with backward ``k``, ``w`` the warm-up chunks (NVIDIA/Megatron-LM@d98e8a64 schedules.py).
    """
    total = micro_batches * vpp
    warm = min(total, warmup_chunks(Schedule.INTERLEAVED, ranks, rank, vpp=vpp, paired=True))
    group = ranks * vpp
    return [(((k + warm) % group) // ranks, vpp - 1 - (k % group) // ranks) for k in range(total - warm)]


def unpaired_layer_share(layers_per_chunk: list[int], steps: list[tuple[int, int]]) -> float:
    """Share of a rank's layer passes (forward and backward) that run unpaired in the combined steps ``steps``:
    a step overlaps ``min(a_f, a_b)`` layer pairs of its forward and backward chunk and runs the other
    ``|a_f - a_b|`` layers alone (``TransformerModelChunkSchedulePlan.run``, model_chunk_schedule_plan.py)."""
    passes = sum(layers_per_chunk[f] + layers_per_chunk[b] for f, b in steps)
    if not passes:
        return 0.0
    return sum(abs(layers_per_chunk[f] - layers_per_chunk[b]) for f, b in steps) / passes


def parameter_copies(schedule: Schedule) -> int:
    """Stage-parameter units per device (table column 3)."""
    return 2 if schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V) else 1


def activation_stage_units(schedule: Schedule, stages: int) -> int:
    """Stage-activation units on the busiest device (table column 4) for 1F1B, ZB1P, DualPipe and DualPipeV."""
    if schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V):
        return stages + 1
    if schedule in (Schedule.ONE_F_ONE_B, Schedule.ZERO_BUBBLE):
        return stages
    raise ValueError(f"{schedule.value}: use in_flight_chunks")


def devices(schedule: Schedule, stages: int) -> int:
    """Devices a pipeline of ``stages`` stages occupies (table column 5)."""
    return stages // 2 if schedule is Schedule.DUALPIPE_V else stages


def in_flight_chunks(schedule: Schedule, ranks: int, rank: int, micro_batches: int, *, vpp: int = 1) -> float:
    """Micro-batch chunk activations rank ``rank`` holds at its peak, in units of one micro-batch of one of its
    chunks (a chunk is ``1/vpp`` of the rank's layers interleaved; one stage otherwise).

    1F1B and ZB1P: ``min(m, p - r)``; interleaved: ``min(m v, 2 (p - r - 1) + (v - 1) p + 1)``; DualPipe and
    DualPipeV: ``PP + 1`` stage units on every rank (the README's per-device figure, with ``PP`` stages).
    """
    if schedule in (Schedule.ONE_F_ONE_B, Schedule.ZERO_BUBBLE):
        return float(min(micro_batches, ranks - rank))
    if schedule is Schedule.INTERLEAVED:
        return float(min(micro_batches * vpp, warmup_chunks(schedule, ranks, rank, vpp=vpp) + 1))
    stages = 2 * ranks if schedule is Schedule.DUALPIPE_V else ranks
    return float(stages + 1)
