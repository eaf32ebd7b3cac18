"""Print the engine-iteration model (cost_models.iteration) on the TRT-H200 aggregated row beside what
`moeplan evaluate` predicts today (the attention-DP prefill stall rule) and the published figures, and the decode
step the publication implies under the iteration model (README "Accuracy", the open item on aggregated serving).

Run: .venv/bin/python benchmarks/aggregated_iteration.py
The row is validation, never fitting data: nothing here is tuned to it.
"""

from __future__ import annotations

from pathlib import Path

from cost_models import iteration as it
from planner.analysis.evaluate import evaluate_scenario
from planner.inputs.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TRT_AGG = ROOT / "scenarios" / "validation" / "trt_h200_aggregated.yaml"
# The TensorRT-LLM doc's H200 max-throughput command (NVIDIA/TensorRT-LLM
# docs/source/blogs/Best_perf_practice_on_DeepSeek-R1_in_TensorRT-LLM.md): --max_num_tokens 1151, and "MLA chunked
# context support ... not supported on Hopper" (a prompt is admitted whole).
BUDGET_TOKENS = 1151
PUBLISHED_OUTPUT_TOK_PER_S_PER_DEVICE = 1436.0
PUBLISHED_USER_TOK_PER_S = 11.35


def main() -> int:
    sc = load_scenario(TRT_AGG)
    ev = evaluate_scenario(sc, sc.plan)
    r, wl, dims = ev.result, sc.workload, sc.plan
    b = r.decode.sequences_per_device * dims.attn_tp
    step_s = r.decode.step.step_s
    print(f"TRT-H200, {b:g} sequences per rank, decode step {step_s * 1e3:.2f} ms (model)")
    print("| model | output tok/s/device | error | tok/s/user | error |")
    print("| --- | --- | --- | --- | --- |")

    def row(name: str, device: float, user: float) -> None:
        print(f"| {name} | {device:,.0f} | {device / PUBLISHED_OUTPUT_TOK_PER_S_PER_DEVICE - 1:+.1%} | "
              f"{user:.2f} | {user / PUBLISHED_USER_TOK_PER_S - 1:+.1%} |")

    print(f"| published | {PUBLISHED_OUTPUT_TOK_PER_S_PER_DEVICE:,.0f} | | {PUBLISHED_USER_TOK_PER_S:.2f} | |")
    row("stall rule (evaluate today)", r.aggregated_output_tok_per_s_per_device, r.aggregated_user_tok_per_s)
    for alignment in it.PrefillAlignment:
        mix = it.iteration_mix(attn_dp=dims.attn_dp, batch_per_rank=b, input_tokens=wl.input_tokens,
                               decode_steps_per_request=wl.output_tokens, budget_tokens=BUDGET_TOKENS,
                               query_tokens_per_sequence=1 + wl.mtp_tokens, chunked=False, alignment=alignment)
        extra_s = it.chunk_extra_s(sc.model, sc.cluster, dims, wl, mix, b)
        cycle_s = it.request_cycle_s(mix, step_s, extra_s, dims.pp)
        row(f"iteration, {alignment} (mixed {mix.mixed_fraction:.1%}, +{extra_s * 1e3:.1f} ms each)",
            r.decode.sequences_per_device * wl.output_tokens / cycle_s, wl.output_tokens / cycle_s)
        implied_s = wl.output_tokens / PUBLISHED_USER_TOK_PER_S / mix.iterations_per_request / dims.pp \
            - mix.mixed_fraction * extra_s
        print(f"|   decode step the published per-user rate implies | {implied_s * 1e3:.1f} ms | "
              f"{implied_s / step_s:.2f} x the model's | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
