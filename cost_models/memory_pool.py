"""The static memory pool of an engine that sizes its KV cache as a fraction of device memory.

SGLang (sgl-project/sglang@v0.5.5 python/sglang/srt/model_executor/model_runner.py, ``profile_max_num_token``)
measures the free device memory ``M0`` right after its distributed init, loads the weights ``W``, measures the
free memory again (``M0 - W``) and gives the KV cache ``(M0 - W) - M0 (1 - f)`` bytes, ``f`` being
``--mem-fraction-static``: the static pool (weights + KV cache) is ``f M0`` and everything the engine allocates
afterwards (activations, the DeepEP buffers, CUDA graphs, sampling buffers) must fit in the other ``(1 - f) M0``.
The pool holds ``floor(bytes / cell)`` tokens, ``cell`` being the KV bytes of one token over all layers
(MLA: ``(kv_lora_rank + qk_rope_head_dim) x layers x element bytes``).

``M0`` is taken as the device capacity: the CUDA context and the collective libraries' init buffers that it
leaves out are not published (about 1 GiB, which would shrink the pool by ``f`` times that, under 1 % of a
GB200 pool).
"""

from __future__ import annotations

import math


def static_pool_kv_bytes(*, device_bytes: float, mem_fraction_static: float, weight_bytes: float) -> float:
    """KV-cache bytes of the static pool: ``f x device - weights`` (never below 0)."""
    return max(0.0, mem_fraction_static * device_bytes - weight_bytes)


def static_pool_kv_tokens(*, device_bytes: float, mem_fraction_static: float, weight_bytes: float,
                          kv_bytes_per_token: float) -> int:
    """Tokens the static pool's KV cache holds (the engine's ``max_total_num_tokens``)."""
    kv = static_pool_kv_bytes(device_bytes=device_bytes, mem_fraction_static=mem_fraction_static,
                              weight_bytes=weight_bytes)
    return math.floor(kv / kv_bytes_per_token)


def outside_pool_reserve_bytes(*, device_bytes: float, mem_fraction_static: float, activation_bytes: float,
                               comm_buffer_bytes: float) -> float:
    """What a memory breakdown books as runtime reserve under a static pool: the ``(1 - f)`` share outside the
    pool less the activations and EP buffers that the breakdown lists on their own lines, never below 0 (when
    they outgrow the share they are what the device holds beside the pool)."""
    return max(0.0, (1.0 - mem_fraction_static) * device_bytes - activation_bytes - comm_buffer_bytes)
