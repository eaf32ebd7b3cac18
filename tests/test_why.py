"""Why, in words: the ranking-tie sentences of planner.analysis.why on hand-made re-costed deployments."""

from __future__ import annotations

from planner.analysis.why import tie_reasons
from planner.search.validate import Recost


def _r(out: float, pre: float, dec: float, tpot: float, ttft: float) -> Recost:
    return Recost(output_tok_per_s=out, output_tok_per_s_per_device=out / 16, prefill_input_tok_per_s=pre,
                  decode_output_tok_per_s=dec, devices_used=16, tpot_s=tpot, ttft_s=ttft)


def test_prefill_bound_deployments_tie_and_the_lower_tpot_is_named():
    # 4,000-token prompts, 1,000-token answers: a prefill pool at 72,000 input tok/s feeds 18,000 output tok/s;
    # both decode pools could serve more (19,000 and 20,000), so both deliver 18,000 and tie; the third does not
    rows = [_r(18_000.0, 72_000.0, 19_000.0, 0.050, 0.90), _r(18_000.0, 72_000.0, 20_000.0, 0.048, 0.95),
            _r(17_000.0, 68_000.0, 19_000.0, 0.050, 0.80)]
    key, tie = tie_reasons(rows, "throughput", input_tokens=4000, output_tokens=1000)
    assert "delivered output tok/s (in 0.01 tok/s units), then the fewest devices" in key
    assert tie.startswith("#1, #2 tie at 18,000 output tok/s: each is bound by its prefill pool")
    assert "#2 has the lowest TPOT (48.0 ms) and #1 the lowest TTFT (900 ms)" in tie   # #3 is not tied


def test_no_tie_gives_only_the_key():
    rows = [_r(18_000.0, 72_000.0, 19_000.0, 0.05, 0.9), _r(17_000.0, 68_000.0, 19_000.0, 0.05, 0.9)]
    assert len(tie_reasons(rows, "throughput", input_tokens=4000, output_tokens=1000)) == 1
