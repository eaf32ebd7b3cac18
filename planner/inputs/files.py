"""Files out: the one writer every file moeplan writes goes through (exports, load files, generated tables)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class FileWriteError(Exception):
    """A file could not be written; the message names the path and what would be accepted."""


def write_text_atomic(path: str | Path, text: str) -> Path:
    """The one writer: ``text`` to a temporary file in the target's folder, flushed, then renamed over ``path``;
    on any failure nothing half-written (and no temporary file) is left. Raises :class:`FileWriteError`."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise FileWriteError(f"got {str(path)!r}; accepted: a path in an existing, writable folder ({e.strerror})") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise FileWriteError(f"got {str(path)!r}; accepted: a writable path ({e.strerror})") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
