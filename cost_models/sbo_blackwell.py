"""Single-batch overlap (SGLang SBO) of one MoE decode layer as SGLang runs it on Blackwell.

sgl-project/sglang@0ac832c ``python/sglang/srt/batch_overlap/single_batch_overlap.py`` (``SboFlags``,
``compute_overlap_args``; v0.5.5 ``python/sglang/srt/single_batch_overlap.py`` has the same Blackwell paths):

* ``enable_dispatch_shared_overlap`` is off on Blackwell with DeepEP (``nccl_ep or not is_blackwell()``): the
  low-latency dispatch runs whole, send and receive, before the experts;
* ``enable_combine_shared_two_stream_overlap`` is on: the combine runs on a second stream while the shared
  experts run on the main stream with DeepGEMM limited to ``compute_num_sms = SMs - 32``
  (``communicate_num_sms = 32 if is_blackwell() else 3``);
* ``enable_combine_down_gemm_two_stream_overlap`` needs a grouped GEMM that signals finished expert blocks:
  ``is_flashinfer_cutedsl() or (is_deep_gemm() and not is_blackwell())``. On Blackwell that is FlashInfer's CuTe DSL
  masked GEMM, SGLang's NVFP4 MoE runner (``--moe-runner-backend flashinfer_cutedsl``); FP8 experts run DeepGEMM,
  and there the combine waits for the whole down GEMM (``record_event_after_down``).

Per layer, with ``s = SMs / (SMs - 32)`` the stretch of a GEMM on the remaining SMs, ``D`` / ``C`` the dispatch
/ combine and ``C_fixed, C_wire, C_latency, C_recv`` the combine's parts as :func:`cost_models.step._ll_parts`
splits them (wire time = in-flight time less one tier latency):

    without the down-GEMM signal:  layer = rest + D + down + max(s x shared, C)
    with it:                       layer = rest + D + max(s x (down + shared),
                                                          max(s x down, C_fixed + C_wire) + C_latency + C_recv)

(with the signal the combine starts with the down GEMM, streams each block as it is signalled, and the shared
experts follow the down GEMM on the main stream). The combine kernel's own SM count is not modelled: its time
is the wire-bound low-latency time of :mod:`cost_models.all_to_all_ll`.
"""

from __future__ import annotations

from cost_models import ops as opmod
from cost_models.kinds import OpKind
from cost_models.specs import DeviceSpec, Precision

BLACKWELL_SBO_COMMUNICATE_SMS = 32
"""SMs SGLang leaves to the combine under SBO on Blackwell; DeepGEMM runs the overlapped GEMMs on the rest
(sgl-project/sglang@0ac832c ``compute_overlap_args``: ``32 if is_blackwell() else 3``)."""


def runs_blackwell_sbo(device: DeviceSpec) -> bool:
    """Whether SGLang takes its Blackwell SBO paths on ``device``: an NVIDIA part with FP4 tensor cores is a
    Blackwell (sm100) part in this catalog (B200, GB200; no Hopper or Ampere part has FP4)."""
    return device.vendor == "nvidia" and Precision.FP4 in device.peak_flop_per_s


def blackwell_sbo_layer_s(ops: tuple[opmod.OpCost, ...], *, compute_units: int, down_signal: bool,
                          combine_parts: tuple[float, float, float, float]) -> tuple[float, float]:
    """(layer seconds, overlap overhead seconds) of one MoE layer under Blackwell SBO (module docstring).

    ``combine_parts``: the combine's (fixed, wire, tier latency, receive) seconds; ``down_signal``: the grouped
    GEMM signals finished blocks (NVFP4 experts on the CuTe DSL runner). ``ops`` must hold ``moe.dispatch``,
    ``moe.combine`` and ``moe.experts_down``."""
    names = {o.name: o for o in ops}
    dispatch, combine, down = names["moe.dispatch"], names["moe.combine"], names["moe.experts_down"]
    compute = sum(o.seconds for o in ops if o.kind == OpKind.COMPUTE)
    comm = sum(o.seconds for o in ops if o.kind == OpKind.COMM)
    shared = sum(o.seconds for o in ops if o.name.startswith("moe.shared."))
    rest = compute + comm - dispatch.seconds - combine.seconds - down.seconds - shared
    stretch = compute_units / (compute_units - BLACKWELL_SBO_COMMUNICATE_SMS)
    if not down_signal:
        tail = down.seconds + max(stretch * shared, combine.seconds)
        overhead = (stretch - 1) * shared
    else:
        c_fixed, c_wire, c_latency, c_recv = combine_parts
        combine_end = max(stretch * down.seconds, c_fixed + c_wire) + c_latency + c_recv
        tail = max(stretch * (down.seconds + shared), combine_end)
        overhead = (stretch - 1) * (down.seconds + shared)
    return rest + dispatch.seconds + tail, overhead
