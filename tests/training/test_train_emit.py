"""``--emit megatron`` / ``--emit mindspeed`` launch lines checked against the frameworks' own argument definitions.

Megatron-LM's parser cannot be built here (``megatron/training/arguments.py`` imports torch and Megatron-Core), so
its ``add_argument`` definitions at the pinned commit were copied as data (tests/data/train_args/, made by
``extract.py`` from the files named in each JSON's ``source``).  Each test rebuilds an ``argparse`` parser from them
and parses the emitted arguments with it: unknown flags, values outside ``choices`` and non-integers for ``int``
options fail.  Then the cross-argument rules Megatron (``validate_args``, ``TransformerConfig.__post_init__``,
``PipelineParallelLayerLayout``) and MindSpeed (feature ``validate_args``) assert are re-stated and checked.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from _train_rows import ROWS_BY_ID, Row

from cost_models.training.dims import OptimizerSharding, Schedule
from cost_models.training.specs import Optimizer, PrecisionRecipe, Recompute, RecomputeModule
from planner.emit import megatron, mindspeed, render_shell
from planner.emit.types import EmitError, LaunchPlan

DATA = Path(__file__).resolve().parents[1] / "data" / "train_args"


def parser(name: str) -> argparse.ArgumentParser:
    """An argparse parser with every option of the copied definitions (their dest, action, nargs, type, choices)."""
    defs = json.loads((DATA / name).read_text())["arguments"]
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    seen: set[str] = set()
    for entry in defs.values():
        if entry["options"][0] in seen:
            continue
        seen.update(entry["options"])
        kw: dict = {"dest": entry["dest"]}
        if "default" in entry:
            kw["default"] = entry["default"]
        action = entry["action"]
        if action in ("store_true", "store_false"):
            kw["action"] = action
        else:
            kw["type"] = {"int": int, "float": float}.get(entry.get("type", "str"), str)
            if entry.get("nargs") is not None:
                kw["nargs"] = entry["nargs"]
            if entry.get("choices"):
                kw["choices"] = entry["choices"]
            if action == "append":
                kw["action"] = "append"
        p.add_argument(*entry["options"], **kw)
    return p


MEGATRON = parser("megatron_lm_dd546099.json")
MINDSPEED = parser("mindspeed_llm_d55190f7.json")


def script_args(plan: LaunchPlan, rank: int = 0) -> list[str]:
    argv = list(plan.commands[rank].argv)
    return argv[argv.index("pretrain_gpt.py") + 1:]


def parse(p: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace:
    try:
        ns, unknown = p.parse_known_args(args)
    except SystemExit:  # argparse reports a bad choice / type on stderr and exits
        pytest.fail(f"the parser rejected {args}")
    assert unknown == [], f"flags the framework does not define: {unknown}"
    return ns


def _layout_stages(layout: str) -> list[str]:
    return layout.split("|")


def _vpp(ns: argparse.Namespace) -> int | None:
    if ns.pipeline_model_parallel_layout:
        v = len(_layout_stages(ns.pipeline_model_parallel_layout)) // ns.pipeline_model_parallel_size
    elif getattr(ns, "num_virtual_stages_per_pipeline_rank", None):
        v = ns.num_virtual_stages_per_pipeline_rank
    elif getattr(ns, "num_layers_per_virtual_pipeline_stage", None):
        v = ns.num_layers // ns.pipeline_model_parallel_size // ns.num_layers_per_virtual_pipeline_stage
    else:
        v = 1
    return v if v > 1 else None


def megatron_problems(ns: argparse.Namespace, world: int, env: dict[str, str]) -> list[str]:
    """Megatron's cross-argument assertions that a launch line can break (arguments.py ``validate_args``,
    transformer_config.py, pipeline_parallel_layer_layout.py at the pinned commits)."""
    out = []
    tp, pp, cp = ns.tensor_model_parallel_size, ns.pipeline_model_parallel_size, ns.context_parallel_size
    ep, etp = ns.expert_model_parallel_size, ns.expert_tensor_parallel_size or tp
    if ns.ffn_hidden_size is not None and ns.ffn_hidden_size < 1:
        out.append("a positive --ffn-hidden-size")
    if world % (tp * pp * cp):
        out.append("world size divisible by tp*pp*cp")
    dp = world // (tp * pp * cp)
    if (world // pp) % (ep * etp):
        out.append("ep*etp divides the devices of a stage (MoE parallel folding)")
    if ns.global_batch_size % (ns.micro_batch_size * dp):
        out.append("global batch divisible by micro batch x dp")
    if ns.num_experts and ns.num_experts % ep:
        out.append("num_experts divisible by ep")
    if ns.num_experts and tp > 1 and not ns.sequence_parallel:
        out.append("sequence parallelism with MoE and tp > 1")
    vpp = _vpp(ns)
    if ns.pipeline_model_parallel_layout:
        flat = ns.pipeline_model_parallel_layout
        if len(_layout_stages(flat)) % pp:
            out.append("layout stages divisible by pp")
        if flat.count("t") != ns.num_layers or not flat.startswith("E") or not flat.endswith("L"):
            out.append("layout: E first, num_layers decoder layers, L last")
        if flat.count("m") != (ns.mtp_num_layers or 0) or ("m" in flat and "t" in flat[flat.index("m"):]):
            out.append("layout: the MTP layers after every decoder layer, mtp_num_layers of them")
    elif vpp:
        per_virtual = getattr(ns, "num_layers_per_virtual_pipeline_stage", None)
        if ns.num_layers % (pp * vpp) or (per_virtual and (ns.num_layers // pp) % per_virtual):
            out.append("num_layers divisible by pp x vpp")
    elif ns.num_layers % pp:
        out.append("num_layers divisible by pp")
    if vpp and pp < 2:
        out.append("interleaving needs pp > 1")
    if ns.overlap_param_gather and not (ns.use_distributed_optimizer or getattr(ns, "use_megatron_fsdp", False)):
        out.append("--overlap-param-gather needs the distributed optimizer")
    if ns.overlap_param_gather and not ns.overlap_grad_reduce:
        out.append("--overlap-param-gather needs --overlap-grad-reduce")
    if cp > 1 and ns.seq_length % (2 * cp):
        out.append("seq_length divisible by 2 cp")
    if ns.recompute_granularity == "selective" and ns.recompute_method is not None:
        out.append("no recompute method with selective recompute")
    if ns.recompute_granularity == "full" and ns.recompute_method is None:
        out.append("a recompute method with full recompute")
    modules = ns.recompute_modules or []
    if "moe_act" in modules and not ns.moe_grouped_gemm:
        out.append("moe_act recompute needs grouped GEMM")
    mla = getattr(ns, "multi_latent_attention", False) or getattr(ns, "multi_head_latent_attention", False)
    if "mla_up_proj" in modules and not mla:
        out.append("mla_up_proj recompute needs MLA")
    if getattr(ns, "fp8_recipe", None) == "blockwise" and ns.fp8 != "e4m3":
        out.append("blockwise FP8 needs e4m3")
    if getattr(ns, "overlap_moe_expert_parallel_comm", False):
        if ep == 1 or ns.moe_token_dispatcher_type not in ("alltoall", "flex") or \
                ns.recompute_granularity == "full" or (pp > 1 and not vpp) or (ns.mtp_num_layers or 1) > 1:
            out.append("1F1B all-to-all overlap: ep > 1, alltoall/flex, no full recompute, vpp when pp > 1, MTP <= 1")
    fsdp = getattr(ns, "use_megatron_fsdp", False)
    if fsdp and (env.get("CUDA_DEVICE_MAX_CONNECTIONS") == "1" or ns.ckpt_format != "fsdp_dtensor"):
        out.append("Megatron-FSDP: CUDA_DEVICE_MAX_CONNECTIONS != 1 and fsdp_dtensor checkpoints")
    if (tp > 1 or cp > 1) and not fsdp and not getattr(ns, "overlap_moe_expert_parallel_comm", False) \
            and env.get("CUDA_DEVICE_MAX_CONNECTIONS") != "1":
        out.append("TP / CP need CUDA_DEVICE_MAX_CONNECTIONS=1 (before Blackwell)")
    return out


def mindspeed_problems(ns: argparse.Namespace) -> list[str]:
    """MindSpeed's feature checks (fb_overlap.py, dualpipev_feature.py at the pinned commit)."""
    out = []
    if ns.moe_fb_overlap and (ns.moe_token_dispatcher_type in ("allgather", "alltoall_seq")
                              or (ns.expert_tensor_parallel_size or 1) != 1 or ns.expert_model_parallel_size == 1):
        out.append("--moe-fb-overlap: alltoall dispatcher, etp 1, ep > 1")
    if ns.schedules_method == "dualpipev":
        pp = ns.pipeline_model_parallel_size
        if ns.overlap_grad_reduce or not ns.untie_embeddings_and_output_weights or ns.context_parallel_size > 1 \
                or ns.num_layers_per_virtual_pipeline_stage or pp == 1 or ns.num_layers < 2 * pp:
            out.append("dualpipev: no grad-reduce overlap, untied embeddings, cp 1, no vpp, pp > 1, layers >= 2 pp")
    return out


def _check(plan: LaunchPlan, row: Row, p: argparse.ArgumentParser) -> argparse.Namespace:
    c = row.cluster
    assert [cmd.node_rank for cmd in plan.commands] == list(range(c.num_nodes))
    for cmd in plan.commands:  # one torchrun line per node, the same script arguments everywhere
        argv = list(cmd.argv)
        assert argv[:2] == ["torchrun", "--nproc-per-node"] and int(argv[2]) == c.devices_per_node
        assert argv[argv.index("--nnodes") + 1] == str(c.num_nodes)
        assert argv[argv.index("--node-rank") + 1] == str(cmd.node_rank)
        assert script_args(plan, cmd.node_rank) == script_args(plan)
    ns = parse(p, script_args(plan))
    problems = megatron_problems(ns, c.num_devices, dict(plan.commands[0].env))
    if p is MINDSPEED:
        problems += mindspeed_problems(ns)
    assert problems == []
    return ns


NVIDIA_ROWS = [r for r in ROWS_BY_ID.values() if r.cluster.device.vendor == "nvidia"
               and r.dims.schedule in (Schedule.ONE_F_ONE_B, Schedule.INTERLEAVED)
               and not r.workload.recompute.op_sac]  # torchtitan's per-op checkpointing: refused below


@pytest.mark.parametrize("row", NVIDIA_ROWS, ids=lambda r: r.id)
def test_megatron_lines_parse_and_pass_megatrons_checks(row: Row):
    plan = megatron.emit(row.model, row.workload, row.dims, row.cluster)
    ns = _check(plan, row, MEGATRON)
    d = row.dims
    assert (ns.tensor_model_parallel_size, ns.pipeline_model_parallel_size, ns.context_parallel_size) == \
        (d.tp, d.pp, d.cp)
    assert _vpp(ns) == (d.vpp if d.schedule is Schedule.INTERLEAVED and d.vpp > 1 else None)
    assert ns.global_batch_size == row.workload.global_batch_sequences
    assert ns.micro_batch_size == d.micro_batch_sequences
    assert ns.use_distributed_optimizer == (d.sharding is OptimizerSharding.ZERO1)


@pytest.mark.parametrize("row_id", ["TR-Q30-A2", "TR-MIX-A2"])
def test_mindspeed_lines_parse_and_pass_the_checks(row_id):
    row = ROWS_BY_ID[row_id]
    ns = _check(mindspeed.emit(row.model, row.workload, row.dims, row.cluster), row, MINDSPEED)
    assert ns.expert_model_parallel_size == row.dims.ep


def test_qwen3_30b_on_ascend_matches_the_published_script():
    # pretrain_qwen3_30b_a3b_4K_ptd.sh @d55190f7: TP1 PP2 EP8, alltoall_seq + async permutation, full uniform
    # recompute of 1 layer, distributed optimizer, MBS 1 GBS 256, 48 layers, 128 experts top-8, expert width 768
    row = ROWS_BY_ID["TR-Q30-A2"]
    ns = parse(MINDSPEED, script_args(mindspeed.emit(row.model, row.workload, row.dims, row.cluster)))
    assert (ns.tensor_model_parallel_size, ns.pipeline_model_parallel_size, ns.expert_model_parallel_size) == \
        (1, 2, 8)
    assert (ns.moe_token_dispatcher_type, ns.moe_permutation_async_comm) == ("alltoall_seq", True)
    assert (ns.recompute_granularity, ns.recompute_method, ns.recompute_num_layers) == ("full", "uniform", 1)
    assert (ns.num_layers, ns.num_experts, ns.moe_router_topk, ns.moe_ffn_hidden_size) == (48, 128, 8, 768)
    assert ns.use_distributed_optimizer and (ns.micro_batch_size, ns.global_batch_size) == (1, 256)
    env = dict(mindspeed.emit(row.model, row.workload, row.dims, row.cluster).commands[0].env)
    assert env["CUDA_DEVICE_MAX_CONNECTIONS"] == "1" and env["HCCL_CONNECT_TIMEOUT"] == "3600"


def test_deepseek_v3_layout_spells_the_cost_models_chunks():
    # 61 layers on PP8 x VPP4 = 32 chunks: 61 = 32 + 29, so 29 chunks get 2 layers and 3 get 1 (chunk_layers
    # gives the extras to the middle chunks first); the MTP layer rides with the loss on the last chunk
    row = ROWS_BY_ID["TR-DSV3-H100"]
    ns = parse(MEGATRON, script_args(megatron.emit(row.model, row.workload, row.dims, row.cluster)))
    stages = _layout_stages(ns.pipeline_model_parallel_layout)
    assert len(stages) == 32
    assert stages[0] == "Et" and stages[-1] == "tmL"
    assert [s.count("t") for s in stages].count(2) == 29
    assert ns.mtp_num_layers == 1 and ns.multi_latent_attention
    assert (ns.qk_head_dim, ns.qk_pos_emb_head_dim, ns.kv_lora_rank, ns.q_lora_rank) == (128, 64, 512, 1536)
    assert ns.moe_layer_freq == "([0]*3+[1]*58)"
    assert (ns.fp8, ns.fp8_recipe) == ("e4m3", "blockwise")
    assert (ns.moe_token_dispatcher_type, ns.moe_flex_dispatcher_backend) == ("flex", "deepep")


def test_the_all_to_all_overlap_row_gets_megatrons_flag():
    row = ROWS_BY_ID["TR-Q235-H100-BF16-A2A"]
    ns = parse(MEGATRON, script_args(megatron.emit(row.model, row.workload, row.dims, row.cluster)))
    assert ns.overlap_moe_expert_parallel_comm
    assert ns.recompute_modules == ["layernorm", "moe_act"]
    off = ROWS_BY_ID["TR-Q235-H100-BF16"]
    assert not parse(MEGATRON, script_args(megatron.emit(off.model, off.workload, off.dims, off.cluster))
                     ).overlap_moe_expert_parallel_comm


def test_exposed_pipeline_sends_get_megatrons_flag():
    # plan.pp_comm_overlap false (the 2022 rows) -> --no-overlap-p2p-communication; Megatron-LM's default overlaps
    row = ROWS_BY_ID["TR-KOR22-175B-seqsel"]
    assert not parse(MEGATRON, script_args(megatron.emit(row.model, row.workload, row.dims, row.cluster))
                     ).overlap_p2p_comm
    on = replace(row.dims, pp_comm_overlap=True)
    assert parse(MEGATRON, script_args(megatron.emit(row.model, row.workload, on, row.cluster))).overlap_p2p_comm


def test_fsdp_rows_use_megatron_fsdp_without_the_single_queue():
    row = ROWS_BY_ID["TR-TT-70B"]
    plan = megatron.emit(row.model, row.workload, row.dims, row.cluster)
    ns = parse(MEGATRON, script_args(plan))
    assert ns.use_megatron_fsdp and ns.data_parallel_sharding_strategy == "optim_grads_params"
    assert "CUDA_DEVICE_MAX_CONNECTIONS" not in plan.commands[0].env


def test_dualpipev_on_ascend():
    row = ROWS_BY_ID["TR-Q30-A2"]
    dims = replace(row.dims, schedule=Schedule.DUALPIPE_V, overlap_grad_reduce=False)
    w = replace(row.workload, recompute=Recompute.none())
    ns = _check(mindspeed.emit(row.model, w, dims, row.cluster), replace(row, dims=dims, workload=w), MINDSPEED)
    assert ns.schedules_method == "dualpipev" and ns.moe_fb_overlap and ns.moe_token_dispatcher_type == "alltoall"


@pytest.mark.parametrize("case, field", [
    ("dualpipe", "plan.schedule"), ("muon", "workload.optimizer"), ("ascend", "cluster.device"),
    ("overlap_full_recompute", "plan.a2a_overlap"), ("world", "plan"), ("op_sac", "workload.recompute"),
])
def test_megatron_refuses_what_it_cannot_express(case, field):
    row = ROWS_BY_ID["TR-DSV3-H800" if case == "dualpipe" else "TR-Q235-H100-BF16-A2A"]
    model, w, d, c = row.model, row.workload, row.dims, row.cluster
    if case == "muon":
        w = replace(w, optimizer=Optimizer.MUON)
    if case == "ascend":
        c = ROWS_BY_ID["TR-Q30-A2"].cluster
    if case == "overlap_full_recompute":
        w = replace(w, recompute=Recompute.full_layers())
    if case == "world":
        d = replace(d, dp=d.dp // 2)
    if case == "op_sac":
        w = replace(w, recompute=Recompute.op_selective())
    with pytest.raises(EmitError) as e:
        megatron.emit(model, w, d, c)
    assert e.value.field == field


@pytest.mark.parametrize("case, field", [("fp8", "workload.precision"), ("gpu", "cluster.device"),
                                         ("zero3", "plan.sharding"), ("mla_up_proj", "workload.recompute")])
def test_mindspeed_refuses_what_it_cannot_express(case, field):
    row = ROWS_BY_ID["TR-Q30-A2"]
    model, w, d, c = row.model, row.workload, row.dims, row.cluster
    if case == "fp8":
        w = replace(w, recipe=PrecisionRecipe.FP8_TENSORWISE)
    if case == "gpu":
        c = ROWS_BY_ID["TR-Q235-H100-BF16"].cluster
    if case == "zero3":
        d = replace(d, sharding=OptimizerSharding.ZERO3)
    if case == "mla_up_proj":
        w = replace(w, recompute=Recompute.selective(RecomputeModule.MLA_UP_PROJ))
    with pytest.raises(EmitError) as e:
        mindspeed.emit(model, w, d, c)
    assert e.value.field == field


def test_shell_output_lists_the_variables_and_quotes_the_layout():
    row = ROWS_BY_ID["TR-DSV3-H100"]
    text = render_shell(megatron.emit(row.model, row.workload, row.dims, row.cluster))
    assert "# set MASTER_ADDR:" in text and "# set DATA_PATH:" in text and "# set TOKENIZER_PATH:" in text
    assert re.search(r"--pipeline-model-parallel-layout 'Et\|", text)  # '|' quoted, not a shell pipe
    assert "--moe-layer-freq '([0]*3+[1]*58)'" in text
