"""``moeplan cost gemm|attention``: the predicted time of one kernel on one device (no solver is imported)."""

from __future__ import annotations

from typing import Any

import click

from cost_models import compute
from cost_models.specs import DeviceSpec, Precision, WeightFormat
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
_WEIGHT_DTYPES = click.Choice([f.label for f in WeightFormat])
_ATTENTION_DTYPES = click.Choice(["bf16", "fp8"])
_KV_DTYPES = click.Choice(["bf16", "fp8", "int8"])


def _native_or_abort(dev: DeviceSpec, dtype: str, option: str, weight_only_hint: str) -> Precision:
    """The math precision ``dtype`` if the device has tensor cores for it; otherwise exit 2 rather than silently
    pricing it at the BF16 rate (the cost models' fallback for weight-only formats)."""
    p = Precision.from_label(dtype)
    if not dev.supports(p):
        app.abort(app.EXIT_BAD_INPUT, f"{option}: got {dtype!r}; accepted: a precision {dev.name} has tensor cores "
                  f"for: {', '.join(q.label for q in dev.peak_flop_per_s)} ({weight_only_hint})")
    return p


@cost.command("gemm")
@click.option("--device", "device_id", required=True, help="Catalog device id (moeplan catalog devices).")
@click.option("--m", type=click.IntRange(min=1, max=2**24), required=True, help="Rows of A (tokens).")
@click.option("--k", type=click.IntRange(min=1, max=2**24), required=True,
              help="Inner dimension (A columns = B rows).")
@click.option("--n", type=click.IntRange(min=1, max=2**24), required=True, help="Columns of B (output features).")
@click.option("--batch", type=click.IntRange(min=1, max=2**24), default=1, show_default=True,
              help="Independent GEMMs of this shape (experts).")
@click.option("--dtype", type=_DTYPES, default="bf16", show_default=True,
              help="Math (tensor-core) precision and activation storage; must be native on the device.")
@click.option("--weight-dtype", type=_WEIGHT_DTYPES, default=None,
              help="Weight storage with its scales (default: --dtype's); e.g. --dtype bf16 --weight-dtype mxfp4 "
                   "prices a weight-only kernel that de-quantises FP4 weights to BF16.")
@click.option("--json", "as_json", is_flag=True, help="Print the cost document (schema moeplan.cost/1) as JSON.")
def cost_gemm(device_id: str, m: int, k: int, n: int, batch: int, dtype: str, weight_dtype: str | None,
              as_json: bool) -> None:
    """[batch, M, K] x [batch, K, N] GEMM."""
    dev = _device_or_abort(device_id)
    p = _native_or_abort(dev, dtype, "--dtype", f"weight-only {dtype} weights: --dtype bf16 --weight-dtype "
                         f"{WeightFormat.for_precision(Precision.from_label(dtype)).label}")
    fmt = WeightFormat.from_label(weight_dtype) if weight_dtype else WeightFormat.for_precision(p)
    c = compute.gemm_cost(dev, m=m, k=k, n=n, batch=batch, precision=p, weight_bytes_per_element=fmt.bytes_per_element)
    from planner.documents.cost import GemmArgs, cost_document
    args = GemmArgs(m=m, k=k, n=n, batch=batch, dtype=dtype, weight_dtype=fmt.label)
    _print_kernel(cost_document("gemm", device_id, args, c), as_json)


@cost.command("attention")
@click.option("--device", "device_id", required=True, help="Catalog device id (moeplan catalog devices).")
@click.option("--phase", type=click.Choice(["prefill", "decode"]), required=True,
              help="prefill: causal attention over the prompt; decode: one query token over the KV cache.")
@click.option("--batch", type=click.IntRange(min=1, max=2**24), required=True, help="Sequences.")
@click.option("--q-heads", type=click.IntRange(min=1, max=2**24), required=True, help="Query heads (per device).")
@click.option("--kv-heads", type=click.IntRange(min=1, max=2**24), required=True,
              help="Key/value heads (per device; fewer than --q-heads: grouped-query attention).")
@click.option("--head-dim", type=click.IntRange(min=1, max=2**24), required=True, help="Elements per head.")
@click.option("--context", type=click.IntRange(min=1, max=2**24), required=True, help="Prompt length (prefill) or KV length.")
@click.option("--dtype", type=_ATTENTION_DTYPES, default="bf16", show_default=True,
              help="Attention math (fp8: FlashAttention-3 / FlashMLA FP8) and, unless --kv-dtype, the KV / Q storage.")
@click.option("--kv-dtype", type=_KV_DTYPES, default=None, help="Decode KV-cache storage (default: --dtype).")
@click.option("--json", "as_json", is_flag=True, help="Print the cost document (schema moeplan.cost/1) as JSON.")
def cost_attention(device_id: str, phase: str, batch: int, q_heads: int, kv_heads: int, head_dim: int, context: int,
                   dtype: str, kv_dtype: str | None, as_json: bool) -> None:
    """Causal prefill or one-token decode attention."""
    dev = _device_or_abort(device_id)
    if q_heads % kv_heads:
        app.abort(app.EXIT_BAD_INPUT, f"--kv-heads: got {kv_heads}; accepted: a divisor of --q-heads {q_heads}")
    p = _native_or_abort(dev, dtype, "--dtype", f"an {dtype} KV cache read by BF16 math: --dtype bf16 --kv-dtype {dtype}")
    kv = Precision.from_label(kv_dtype) if kv_dtype else p
    if phase == "prefill":
        c = compute.attention_prefill_cost(dev, batch=batch, q_heads=q_heads, kv_heads=kv_heads, qk_head_dim=head_dim,
                                           v_head_dim=head_dim, seq_tokens=context, causal=True, precision=p)
    else:
        c = compute.attention_decode_cost(dev, batch=batch, q_heads=q_heads, kv_heads=kv_heads, qk_head_dim=head_dim,
                                          v_head_dim=head_dim, context_tokens=context, kv_precision=kv,
                                          math_precision=p)
    from planner.documents.cost import AttentionArgs, cost_document
    args = AttentionArgs(phase=phase, batch=batch, q_heads=q_heads, kv_heads=kv_heads, head_dim=head_dim,
                         context=context, dtype=dtype, kv_dtype=kv.label)
    _print_kernel(cost_document("attention", device_id, args, c), as_json)
