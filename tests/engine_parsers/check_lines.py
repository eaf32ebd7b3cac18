"""Run SGLang 0.5.5's or vLLM 0.11.0's own argument parser and config checks on launch lines (a subprocess of
tests/test_engine_parsers.py, started with stand_ins/ and the pinned engine wheels on PYTHONPATH).

stdin: JSON ``{"engine": "sglang" | "vllm", "lines": [{"id": str, "argv": [...], "env": {...}}]}`` (``env`` also
carries ``MOEPLAN_STANDIN_DEVICES``, the devices of the node the line runs on) with every
``${VAR}`` already replaced and the model argument pointing at a local folder holding the model's config.json.
stdout: one JSON object ``{id: "ok" | "<exception type>: <message>"}``.

Per line, exactly what the engine runs before it touches a GPU:
- SGLang: ``ServerArgs.add_cli_args`` -> ``parse_args`` -> ``ServerArgs.from_cli_args`` (its ``__post_init__``
  checks), plus the DeepEP low-latency dispatch cap the decode path asserts at start-up
  (sglang/srt/layers/moe/token_dispatcher/deepep.py: ``SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK``,
  default 128, at most 1024), which must cover the sequences one DP rank runs. ``--device cuda`` is added when
  a line does not name a device: SGLang would detect CUDA on the GPU host, this machine has none.
- vLLM: the ``vllm serve`` parser (``ServeSubcommand.subparser_init``), ``validate_parsed_serve_args``,
  ``EngineArgs.from_cli_args`` and ``create_engine_config`` (the ``VllmConfig`` / ``ParallelConfig`` checks,
  e.g. DBO's all-to-all backend), with the line's environment set. The platform is vLLM's CUDA platform class
  (NVML cannot see a GPU here).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback


def _with_env(env: dict[str, str], fn):  # noqa: ANN001, ANN202
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fn()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sglang_checker():  # noqa: ANN201
    from sglang.srt.server_args import ServerArgs

    def check(argv: list[str], env: dict[str, str]) -> None:
        args = argv[argv.index("sglang.launch_server") + 1:]
        if "--device" not in args:
            args += ["--device", "cuda"]
        p = argparse.ArgumentParser()
        ServerArgs.add_cli_args(p)
        sa = _with_env(env, lambda: ServerArgs.from_cli_args(p.parse_args(args)))
        if sa.moe_a2a_backend == "deepep" and sa.deepep_mode in ("low_latency", "auto") \
                and sa.disaggregation_mode != "prefill":
            cap = int(env.get("SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK", "128"))
            assert cap <= 1024, f"SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK={cap} > 1024 (deepep.py assert)"
            if sa.max_running_requests is not None:
                per_rank = -(-sa.max_running_requests // (sa.dp_size if sa.enable_dp_attention else 1))
                # EAGLE's verify step runs speculative_num_draft_tokens (= steps + 1 at topk 1) per sequence
                spec = sa.speculative_num_draft_tokens if sa.speculative_algorithm else 1
                assert per_rank * spec <= cap, (
                    f"{per_rank} sequences x {spec} tokens per DP rank exceed the DeepEP low-latency dispatch "
                    f"cap of {cap} tokens per rank")
    return check


def vllm_checker():  # noqa: ANN201
    import vllm.platforms
    from vllm.platforms.cuda import NonNvmlCudaPlatform
    vllm.platforms._current_platform = NonNvmlCudaPlatform()
    import vllm.utils
    from vllm.engine.arg_utils import EngineArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.entrypoints.openai.cli_args import validate_parsed_serve_args
    from vllm.utils import FlexibleArgumentParser

    def check(argv: list[str], env: dict[str, str]) -> None:
        assert argv[:2] == ["vllm", "serve"], argv[:2]
        root = FlexibleArgumentParser()
        ServeSubcommand().subparser_init(root.add_subparsers(dest="subparser"))

        def build() -> None:
            count = getattr(vllm.utils, "_cuda_device_count_stateless", None)
            if hasattr(count, "cache_clear"):  # cached per CUDA_VISIBLE_DEVICES; lines differ in node size
                count.cache_clear()
            args = root.parse_args(argv[1:])
            validate_parsed_serve_args(args)
            args.model = args.model_tag
            EngineArgs.from_cli_args(args).create_engine_config()
        _with_env(env, build)
    return check


def main() -> None:
    req = json.load(sys.stdin)
    logging.disable(logging.WARNING)
    check = {"sglang": sglang_checker, "vllm": vllm_checker}[req["engine"]]()
    out: dict[str, str] = {}
    for line in req["lines"]:
        try:
            check(list(line["argv"]), dict(line["env"]))
            out[line["id"]] = "ok"
        except BaseException as e:  # noqa: BLE001 - every failure is a result to report, SystemExit included
            msg = str(e).strip() or traceback.format_exc(limit=2)
            out[line["id"]] = f"{type(e).__name__}: {msg}"
            if os.environ.get("MOEPLAN_PARSER_TRACE"):
                traceback.print_exc()
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
