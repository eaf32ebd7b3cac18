"""Files out: the one writer every file moeplan writes goes through (exports, load files, generated tables).

Rules (README 'Robustness'): only regular files are written; a symlink, device node, pipe or folder at the
target is refused; an existing file is replaced only with ``force=True`` (the ``--force`` option); the text goes
to a temporary file in the target's folder, is flushed and synced, then renamed over the target, so a failure at
any step (missing folder, full disk, no permission) leaves neither a half-written file nor a temporary file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class FileWriteError(Exception):
    """A file could not be written; the message names the path and what would be accepted."""


def check_target(path: str | Path, *, force: bool = False) -> Path:
    """Refuse a target that is not writable as a regular file (called before any work, and again on write)."""
    target = Path(path)
    shown = str(path) if len(str(path)) <= 200 else str(path)[:197] + "..."
    if "\0" in str(path):  # no file system takes one (os.lstat raises ValueError)
        raise FileWriteError(f"got {shown!r}; accepted: a path without NUL characters")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise FileWriteError(f"got {shown!r}; accepted: a writable path ({e.strerror})") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise FileWriteError(f"got {shown!r} (a symbolic link); accepted: a regular file path, not a link")
        if not stat.S_ISREG(st.st_mode):
            raise FileWriteError(f"got {shown!r} (not a regular file: a folder, device node or pipe); accepted: "
                                 "a regular file path")
        if not force:
            raise FileWriteError(f"got {shown!r} (the file exists); accepted: a new file, or --force to replace it")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileWriteError(f"got {shown!r} (folder {str(folder)!r} does not exist); accepted: a path in an "
                             "existing, writable folder")
    return target


def write_text_atomic(path: str | Path, text: str, *, force: bool = False) -> Path:
    """The one writer: ``text`` to a temporary file in the target's folder, flushed, then renamed over ``path``;
    on any failure nothing half-written (and no temporary file) is left. Raises :class:`FileWriteError`."""
    target = check_target(path, force=force)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise FileWriteError(f"got {str(path)!r}; accepted: a path in an existing, writable folder ({e.strerror})") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        check_target(target, force=force)  # nothing replaced the target by a link or device meanwhile
        os.replace(tmp, target)
    except (OSError, FileWriteError) as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, FileWriteError):
            raise
        raise FileWriteError(f"got {str(path)!r}; accepted: a writable path with free space ({e.strerror})") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
