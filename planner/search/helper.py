"""One forked helper process, so that a search uses the second core of the machine it runs on.

``start(produce)`` forks; the child iterates ``produce()`` and sends each value, pickled and length-prefixed,
through a pipe as soon as it has it, then leaves with ``os._exit`` (no atexit handlers, no second flush of the
parent's buffered output). The parent goes on with its own share and reads the values with
:meth:`Helper.messages` while the child still computes the next ones. Nothing the child sends is trusted beyond
what arrived whole: a failure (an exception in the child, a signal, a truncated frame) ends the messages early,
and the caller computes whatever did not arrive itself, so a helper can make a search faster but never change or
lose its answer. Where ``os.fork`` is missing (Windows) or only one CPU is usable, ``start`` returns None.
:func:`split_map` applies a function to a list with the odd-numbered items computed by a helper.

Importing this module registers a pickle reducer for ``types.MappingProxyType`` (the read-only ``detail`` maps
of kernel costs), so that costed results can travel back; it rebuilds an equal proxy over a copy of the dict.
"""

from __future__ import annotations

import copyreg
import gc
import os
import pickle
import signal
import struct
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_LENGTH = struct.Struct("<Q")


def _mapping_proxy(mapping: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(mapping)


copyreg.pickle(types.MappingProxyType, lambda m: (_mapping_proxy, (dict(m),)))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Helper:
    """A forked child sending values (:func:`start`)."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self._pid, self._fd, self._open = pid, read_fd, True

    def _read(self, n: int) -> bytes | None:
        chunks, left = [], n
        while left:
            chunk = os.read(self._fd, min(left, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def messages(self) -> Iterator[Any]:
        """The values the child sent whole, in order; ends at the child's exit (or at the first broken frame)."""
        try:
            while (head := self._read(_LENGTH.size)) is not None:
                body = self._read(_LENGTH.unpack(head)[0])
                if body is None:
                    return
                try:
                    value = pickle.loads(body)
                except Exception:  # noqa: BLE001 - an unreadable frame ends the answer; the caller recomputes
                    return
                yield value
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child if it still runs and reap it."""
        if not self._open:
            return
        self._open = False
        try:
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(self._fd)
        os.waitpid(self._pid, 0)


def start(produce: Callable[[], Iterable[Any]]) -> Helper | None:
    """Fork a child that sends every value of ``produce()``; None where no second CPU or no ``fork`` is
    available."""
    if not hasattr(os, "fork") or usable_cpus() < 2:
        return None
    read_fd, write_fd = os.pipe()
    gc.freeze()  # the objects both share stay out of the collector's scans, whose writes would copy every page
    try:
        pid = os.fork()
    except OSError:
        gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid != 0:
        gc.unfreeze()
    if pid == 0:  # the child: compute, write, leave without running the parent's exit path
        code = 1
        try:
            os.close(read_fd)
            for value in produce():
                body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                view = memoryview(_LENGTH.pack(len(body)) + body)
                while view:
                    view = view[os.write(write_fd, view):]
            code = 0
        except BaseException:  # noqa: BLE001 - any failure ends the messages; never raised in the child
            pass
        finally:
            os._exit(code)
    os.close(write_fd)
    return Helper(pid, read_fd)


def split_map(fn: Callable[[T], R], items: Sequence[T], key: Callable[[T], Any] = id) -> list[R]:
    """``[fn(x) for x in items]``, every second group of items (items of one ``key`` form a group, groups in the
    order they first appear) computed by a helper (:func:`start`) meanwhile, so that items whose work ``fn``
    memoises stay in one process; what the helper does not deliver is computed here. ``fn`` must be pure (the
    same value in either process) and its values picklable."""
    groups: dict[Any, list[int]] = {}
    for i, x in enumerate(items):
        groups.setdefault(key(x), []).append(i)
    theirs = sorted(i for g in list(groups.values())[1::2] for i in g)
    pending = start(lambda: ((i, fn(items[i])) for i in theirs)) if theirs else None
    if pending is None:
        return [fn(x) for x in items]
    out: dict[int, R] = {}
    try:
        for i in sorted(set(range(len(items))) - set(theirs)):
            out[i] = fn(items[i])
        for i, value in pending.messages():
            out[i] = value
    finally:
        pending.close()
    return [out[i] if i in out else fn(items[i]) for i in range(len(items))]
