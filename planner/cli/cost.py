"""``moeplan cost gemm|attention``: the predicted time of one kernel on one device (no solver is imported)."""

from __future__ import annotations

from typing import Any

import click

from cost_models import compute
from cost_models.specs import Precision
from planner.catalog import devices
from planner.catalog.errors import UnknownName
from planner.cli import app


@click.group()
def cost() -> None:
    """Predicted time of one kernel on one device."""


def _device_or_abort(device_id: str):  # noqa: ANN202
    try:
        return devices.get_device(device_id)
    except UnknownName as e:
        app.abort(app.EXIT_BAD_INPUT, f"--device: got {device_id!r}; accepted: a catalog id; closest: "
               f"{', '.join(e.suggestions) or '-'} (all: moeplan catalog devices)")


def _print_kernel(doc: Any, as_json: bool) -> None:
    """``doc``: a :class:`planner.documents.cost.CostDocument` (imported by the commands, not by ``--help``)."""
    if as_json:
        app.emit_json(doc)
        return
    app.out.print(f"{doc.kernel} on {doc.device}: {doc.seconds * 1e6:.2f} us, bound by {doc.bound}; "
                  f"{doc.achieved_flop_per_s / 1e12:.1f} TFLOP/s, {doc.achieved_bytes_per_s / 1e9:.0f} GB/s")


_DTYPES = click.Choice(["bf16", "fp8", "int8", "fp4"])


@cost.command("gemm")
@click.option("--device", "device_id", required=True)
@click.option("--m", type=click.IntRange(min=1), required=True)
@click.option("--k", type=click.IntRange(min=1), required=True)
@click.option("--n", type=click.IntRange(min=1), required=True)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Independent GEMMs of this shape (experts).")
@click.option("--dtype", type=_DTYPES, default="bf16", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cost_gemm(device_id: str, m: int, k: int, n: int, batch: int, dtype: str, as_json: bool) -> None:
    """[batch, M, K] x [batch, K, N] GEMM."""
    dev = _device_or_abort(device_id)
    c = compute.gemm_cost(dev, m=m, k=k, n=n, batch=batch, precision=Precision.from_label(dtype))
    from planner.documents.cost import GemmArgs, cost_document
    args = GemmArgs(m=m, k=k, n=n, batch=batch, dtype=dtype)
    _print_kernel(cost_document("gemm", device_id, args, c), as_json)


@cost.command("attention")
@click.option("--device", "device_id", required=True)
@click.option("--phase", type=click.Choice(["prefill", "decode"]), required=True)
@click.option("--batch", type=click.IntRange(min=1), required=True)
@click.option("--q-heads", type=click.IntRange(min=1), required=True)
@click.option("--kv-heads", type=click.IntRange(min=1), required=True)
@click.option("--head-dim", type=click.IntRange(min=1), required=True)
@click.option("--context", type=click.IntRange(min=1), required=True, help="Prompt length (prefill) or KV length.")
@click.option("--dtype", type=_DTYPES, default="bf16", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cost_attention(device_id: str, phase: str, batch: int, q_heads: int, kv_heads: int, head_dim: int, context: int,
                   dtype: str, as_json: bool) -> None:
    """Causal prefill or one-token decode attention."""
    dev = _device_or_abort(device_id)
    if q_heads % kv_heads:
        app.abort(app.EXIT_BAD_INPUT, f"--kv-heads: got {kv_heads}; accepted: a divisor of --q-heads {q_heads}")
    p = Precision.from_label(dtype)
    if phase == "prefill":
        c = compute.attention_prefill_cost(dev, batch=batch, q_heads=q_heads, kv_heads=kv_heads, qk_head_dim=head_dim,
                                           v_head_dim=head_dim, seq_tokens=context, causal=True, precision=p)
    else:
        c = compute.attention_decode_cost(dev, batch=batch, q_heads=q_heads, kv_heads=kv_heads, qk_head_dim=head_dim,
                                          v_head_dim=head_dim, context_tokens=context, kv_precision=p)
    from planner.documents.cost import AttentionArgs, cost_document
    args = AttentionArgs(phase=phase, batch=batch, q_heads=q_heads, kv_heads=kv_heads, head_dim=head_dim,
                         context=context, dtype=dtype)
    _print_kernel(cost_document("attention", device_id, args, c), as_json)
