"""One forked helper process, so that a search uses the second core of the machine it runs on.

``start(produce)`` forks; the child iterates ``produce()`` and sends each value, pickled and length-prefixed,
through a pipe as soon as it has it, then leaves with ``os._exit`` (no atexit handlers, no second flush of the
parent's buffered output; its own output goes to the null device, so it never waits on a stream lock another
thread of the parent held at the fork). The parent goes on with its own share and reads the values with
:meth:`Helper.messages` while the child still computes the next ones. Nothing the child sends is trusted beyond
what arrived whole: a failure (an exception in the child, a signal, a truncated frame, no frame within the idle
timeout) ends the messages early, and the caller computes whatever did not arrive itself, so a helper can make a
search faster but never change or lose its answer, and never make it wait for ever. Off Linux (no ``os.fork`` on
Windows; on macOS system frameworks may abort in a forked child), where only one CPU is usable or where no pipe
can be made, ``start`` returns None and the caller computes everything itself. Ctrl-C reaches the parent only
(the child ignores SIGINT); the parent's cleanup kills and reaps the child.
:func:`split_map` applies a function to a list with every second group of items computed by a helper.

Importing this module registers a pickle reducer for ``types.MappingProxyType`` (the read-only ``detail`` maps
of kernel costs), so that costed results can travel back; it rebuilds an equal proxy over a copy of the dict.
"""

from __future__ import annotations

import copyreg
import gc
import os
import pickle
import select
import signal
import struct
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_LENGTH = struct.Struct("<Q")

IDLE_TIMEOUT_S = 60.0
"""Longest wait for the child's next frame before the parent gives up on it (kills it and computes the rest
itself). Far above any one family's costing (well under a second) or one layer schedule (a few seconds)."""


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
        self._pid: int | None = pid
        self._fd = read_fd

    def _read(self, n: int, deadline_s: float) -> bytes | None:
        chunks, left = [], n
        while left:
            ready, _, _ = select.select([self._fd], [], [], deadline_s)
            if not ready:
                return None  # nothing within the idle timeout: the child is given up on
            chunk = os.read(self._fd, min(left, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def ready(self) -> bool:
        """Whether the child has written something (a frame, or its exit) that :meth:`messages` can read now."""
        if self._pid is None:
            return False
        return bool(select.select([self._fd], [], [], 0.0)[0])

    def messages(self, idle_timeout_s: float = IDLE_TIMEOUT_S) -> Iterator[Any]:
        """The values the child sent whole, in order; ends at the child's exit, at the first broken frame or when
        no frame arrives within ``idle_timeout_s``; then the child is stopped and reaped."""
        try:
            while (head := self._read(_LENGTH.size, idle_timeout_s)) is not None:
                body = self._read(_LENGTH.unpack(head)[0], idle_timeout_s)
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
        """Stop the child if it still runs, reap it and close the pipe (again: nothing)."""
        if self._pid is None:
            return
        try:
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self._pid, 0)  # interrupted (Ctrl-C): the state stays, a later close() reaps
        self._pid = None
        os.close(self._fd)


def _child(produce: Callable[[], Iterable[Any]], write_fd: int) -> None:
    """The child's whole life: compute, write, leave without running the parent's exit path."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - fresh streams, no inherited locks
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


def start(produce: Callable[[], Iterable[Any]]) -> Helper | None:
    """Fork a child that sends every value of ``produce()``; None off Linux, without a second CPU or a pipe."""
    if not sys.platform.startswith("linux") or usable_cpus() < 2:
        return None  # fork without exec is only dependable on Linux (macOS frameworks abort in a forked child)
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:  # room for a search's answers (a few hundred KiB) while the parent computes its own share
        import fcntl
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError:  # a lower /proc/sys/fs/pipe-max-size: the default, the child waits for the reader
        pass
    freeze = gc.get_freeze_count() == 0  # a caller's own frozen objects stay as they are
    if freeze:
        gc.freeze()  # the objects both share stay out of the collector's scans, whose writes would copy every page
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # no Ctrl-C between the fork and the handlers
    try:
        pid = os.fork()
        if pid == 0:
            _child(produce, write_fd)  # never returns
    except OSError:
        pid = -1
    finally:
        if freeze:
            gc.unfreeze()
    os.close(write_fd)
    if pid < 0:
        os.close(read_fd)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return None
    helper = Helper(pid, read_fd)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a Ctrl-C held back arrives here
    except BaseException:
        helper.close()
        raise
    return helper


def split_map(fn: Callable[[T], R], items: Sequence[T], key: Callable[[T], Any] = id) -> list[R]:
    """``[fn(x) for x in items]``, every second group of items (items of one ``key`` form a group, groups in the
    order they first appear) computed by a helper (:func:`start`) meanwhile, so that items whose work ``fn``
    memoises stay in one process; what the helper does not deliver is computed here. ``fn`` must be pure (the
    same value in either process) and its values picklable. Where any item raises, the list is computed again
    in order, so the exception is the one the plain comprehension raises."""
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
        return [out[i] if i in out else fn(items[i]) for i in range(len(items))]
    except Exception:
        pending.close()
        return [fn(x) for x in items]  # raises what the comprehension raises, at the same item
    finally:
        pending.close()
