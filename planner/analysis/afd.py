"""Evaluate the attention-FFN disaggregated (AFD) deployment of a scenario's ``afd:`` section.

The scenario gives the layout (:class:`cost_models.afd.AfdLayout`), the whole batch (``workload.concurrency``) and
the mean context (``workload.decode_context_tokens``, else input + output / 2); the cost model is
:func:`cost_models.afd.decode`. Documents and renderers only read the :class:`AfdEvaluation` returned here.
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_models import afd
from cost_models.parallel import DimsProblem
from cost_models.serving import decode_context
from planner.inputs.scenario import Scenario


@dataclass(frozen=True, kw_only=True)
class AfdEvaluation:
    """One AFD scenario, costed."""

    scenario: Scenario
    layout: afd.AfdLayout
    result: afd.AfdResult


def layout_problems(sc: Scenario) -> list[DimsProblem]:
    """What is wrong with the scenario's AFD layout for its model and cluster (empty = acceptable)."""
    assert sc.afd is not None, "not an AFD scenario"
    return afd.check_layout(sc.afd, sc.model, sc.cluster)


def evaluate_afd(sc: Scenario) -> AfdEvaluation:
    """Cost the scenario's AFD layout (call :func:`layout_problems` first: a bad layout raises here)."""
    assert sc.afd is not None and sc.workload.concurrency is not None, "not an AFD scenario"
    problems = layout_problems(sc)
    if problems:
        raise ValueError("; ".join(p.message() for p in problems))
    wl = sc.workload
    result = afd.decode(sc.model, sc.cluster, sc.afd, batch=float(wl.concurrency), context_tokens=decode_context(wl),
                        weight_precision=wl.weight_precision, kv_precision=wl.kv_precision,
                        dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance)
    return AfdEvaluation(scenario=sc, layout=sc.afd, result=result)
