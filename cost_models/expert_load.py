"""The busiest EP device's routed load in one step, as the expert GEMMs see it.

Every device of an EP group waits for the slowest one at each MoE layer: a token's combine completes only when
the expert outputs of all its ``top_k`` experts are back, so the layer lasts as long as the device that received
the most routed copies takes to run its grouped GEMMs.  Two things make that device busier than the mean:

* the placement's systematic imbalance (``imbalance``: a measured max/mean device load over a long window, e.g.
  of an EPLB placement on router counts, or 1.0 for an ideal one);
* routing randomness within the step: each device's count is a sum over the step's tokens, so even a perfect
  placement's busiest device receives ``mean + z_P sigma`` copies (:func:`all_to_all_ll.busiest_receiver_factor`,
  the same order statistic the low-latency all-to-all uses for its busiest receiver).

The factor is the larger of the two, as for the all-to-all's receive side, so the GEMMs and the all-to-all of
one layer are costed for the same busiest device.
"""

from __future__ import annotations

from cost_models.all_to_all_ll import busiest_receiver_factor


def busiest_device_load_factor(*, tokens_per_device: float, top_k: int, ep_size: int, num_experts: int,
                               imbalance: float) -> float:
    """Busiest EP device's routed copies in one step over the mean (module docstring); 1.0 without EP."""
    if ep_size <= 1:
        return 1.0
    noise = busiest_receiver_factor(messages_per_device=tokens_per_device * top_k, ep_size=ep_size, top_k=top_k,
                                    num_experts=num_experts)
    return max(imbalance, noise)


def mean_layer_load_factor(*, layer_imbalances: tuple[float, ...], tokens_per_device: float, top_k: int,
                           ep_size: int, num_experts: int) -> float:
    """The factor of :func:`busiest_device_load_factor` per MoE layer, averaged over the layers.

    Each layer waits for its own busiest device, so the larger of placement imbalance and routing noise is taken
    layer by layer before averaging: a few badly balanced layers cost more than their share of the mean
    imbalance suggests (the mean of maxima is at least the maximum of the means).  This is the scalar a
    scenario's ``expert_imbalance`` should carry when per-layer placement imbalances are known."""
    if not layer_imbalances:
        raise ValueError("layer_imbalances needs at least one layer")
    return sum(busiest_device_load_factor(tokens_per_device=tokens_per_device, top_k=top_k, ep_size=ep_size,
                                          num_experts=num_experts, imbalance=s) for s in layer_imbalances) \
        / len(layer_imbalances)
