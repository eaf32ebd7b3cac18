"""Stand-ins for the heavy compiled modules SGLang 0.5.5 and vLLM 0.11.0 import while building their argument
parsers and config objects, so the engines' own parsers and config checks run on a machine without a GPU.

Replaced (and only these): :data:`REPLACED`. Everything else those engines import is the real, pinned package
(tests/engine_parsers/requirements-deps.txt). A stand-in answers every attribute with an inert placeholder class;
``torch`` additionally carries the few real facts the parsers branch on: no CUDA / ROCm runtime is visible
(``torch.cuda.is_available() is False``, ``torch.version.cuda is None``) except to vLLM's NVML device count,
which answers the devices of the node the checked line runs on (``MOEPLAN_STANDIN_DEVICES``, from the scenario:
vLLM decides by it whether an instance needs Ray), a compute capability of 9.0 (Hopper, the
devices the shipped NVIDIA scenarios plan) where a config asks for one, real ``torch.dtype`` values (the names
and element sizes of torch's dtypes) and a plain ``torch.nn.Module`` base class.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
import typing

REPLACED = (
    "torch", "functorch", "triton", "triton_kernels",  # PyTorch and Triton (CUDA/C++ extensions, compilers)
    "vllm._C", "vllm._moe_C", "vllm._flashmla_C", "vllm.vllm_flash_attn",  # vLLM's own compiled kernels
    "sgl_kernel", "common_ops",  # SGLang's compiled kernels
    "flashinfer", "deep_ep", "deep_gemm", "pplx_kernels", "xformers", "flash_attn", "flash_attn_origin",
    "mscclpp",  # attention / MoE / communication kernel libraries
)
_NO_ATTR = {"name", "npu", "xpu", "hpu", "musa", "mlu"}
"""Attributes a stand-in does not have: the accelerator back ends the engines probe with ``hasattr`` (absent on
a CUDA build) and ``name`` (probed to find an already-registered custom-op library)."""


def _same(cls, *_):  # noqa: ANN001, ANN202
    return cls


class _Meta(type(typing.Protocol)):
    """Metaclass of placeholder classes: attribute access, calls, arithmetic and comparisons give placeholders
    (a Protocol metaclass, so engine classes may mix a placeholder base with typing Protocols)."""

    def __getattr__(cls, k: str):  # noqa: ANN204
        if k.startswith("__") or k in _NO_ATTR:
            raise AttributeError(k)
        return _Meta(k, (_Any,), {})

    def __call__(cls, *a, **k):  # noqa: ANN002, ANN003, ANN204
        if len(a) == 1 and callable(a[0]) and not k:  # used as a decorator
            return a[0]
        return super().__call__()

    def __getitem__(cls, k):  # noqa: ANN001, ANN204
        return cls

    def __iter__(cls):  # noqa: ANN204
        return iter(())

    def __bool__(cls) -> bool:
        return False

    def __int__(cls) -> int:
        return 0

    __index__ = __int__

    def __float__(cls) -> float:
        return 1.0

    def __lt__(cls, o) -> bool:  # noqa: ANN001
        return False

    __gt__ = __lt__

    def __le__(cls, o) -> bool:  # noqa: ANN001
        return True

    __ge__ = __le__
    __neg__ = _same


for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "matmul", "lshift",
            "rshift"):
    setattr(_Meta, f"__{_op}__", _same)
    setattr(_Meta, f"__r{_op}__", _same)


class _Any(metaclass=_Meta):
    """A placeholder instance (what calling a placeholder returns)."""

    def __init__(self, *a, **k) -> None:  # noqa: ANN002, ANN003
        pass

    def __getattr__(self, k: str):  # noqa: ANN204
        if k.startswith("__"):
            raise AttributeError(k)
        return _Meta(k, (_Any,), {})

    def __call__(self, *a, **k):  # noqa: ANN002, ANN003, ANN204
        return self

    def __add__(self, o):  # noqa: ANN001, ANN204
        return o

    __radd__ = __add__

    def __iter__(self):  # noqa: ANN204
        return iter(())

    def __int__(self) -> int:
        return 0

    __index__ = __int__

    def __float__(self) -> float:
        return 1.0


class _StandIn(types.ModuleType):
    def __getattr__(self, k: str):  # noqa: ANN204
        if k.startswith("__") or k in _NO_ATTR:
            raise AttributeError(k)
        return _Meta(k, (_Any,), {})


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of :data:`REPLACED` (and their submodules) with stand-in modules."""

    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201
        if any(name == p or name.startswith(p + ".") for p in REPLACED):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):  # noqa: ANN001, ANN201
        m = _StandIn(spec.name)
        m.__path__ = []
        m.__version__ = "2.8.0"  # the torch release vLLM 0.11.0 and SGLang 0.5.5 pin
        return m

    def exec_module(self, module) -> None:  # noqa: ANN001
        pass


class _Dtype:
    """``torch.dtype``: a name and an element size."""

    is_floating_point = True

    def __init__(self, name: str, itemsize: int) -> None:
        self.name, self.itemsize = name, itemsize

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Module:
    """``torch.nn.Module``: a plain base class (no attribute magic, so ``getattr(cls, x, default)`` works)."""

    def __init__(self, *a, **k) -> None:  # noqa: ANN002, ANN003
        pass


def _chain(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
    return self


_MODULE_METHODS = ("cuda", "cpu", "to", "float", "half", "bfloat16", "double", "type", "xpu", "ipu", "forward",
                   "train", "eval", "apply", "register_buffer", "register_parameter", "register_module",
                   "add_module", "parameters", "named_parameters", "modules", "named_modules", "children",
                   "named_children", "buffers", "named_buffers", "state_dict", "load_state_dict", "zero_grad",
                   "requires_grad_", "extra_repr", "get_submodule", "__call__")
_DTYPES = (("float32", 4), ("float", 4), ("float16", 2), ("half", 2), ("bfloat16", 2), ("float64", 8),
           ("double", 8), ("float8_e4m3fn", 1), ("float8_e5m2", 1), ("float8_e4m3fnuz", 1), ("float8_e5m2fnuz", 1),
           ("float8_e8m0fnu", 1), ("float4_e2m1fn_x2", 1), ("int8", 1), ("uint8", 1), ("int16", 2), ("uint16", 2),
           ("int32", 4), ("uint32", 4), ("int64", 8), ("uint64", 8), ("long", 8), ("int", 4), ("bool", 1),
           ("int4", 1), ("uint4", 1), ("complex64", 8))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` and give ``torch`` its facts (idempotent)."""
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
    import torch  # the stand-in
    import torch.cuda
    import torch.nn
    import torch.version
    torch.__version__ = "2.8.0"
    torch.version.hip = None
    torch.version.cuda = None
    torch.cuda.is_available = lambda: False
    torch.cuda.device_count = lambda: 0
    torch.cuda.get_device_capability = lambda *a: (9, 0)
    torch.cuda.get_device_name = lambda *a: "stand-in"
    torch.cuda._is_compiled = lambda: True
    # devices NVML would count on the node a line runs on (set per line by check_lines.py)
    torch.cuda._device_count_nvml = lambda: int(os.environ.get("MOEPLAN_STANDIN_DEVICES", "0"))
    torch.dtype = _Dtype
    for name, size in _DTYPES:
        setattr(torch, name, _Dtype(name, size))
    for m in _MODULE_METHODS:
        setattr(_Module, m, _chain)
    torch.nn.Module = _Module
