"""Atomic file output: write to a temporary file in the target's directory, then ``os.replace``.

``os.replace`` within one directory (one file system) is atomic on POSIX and Windows, so a reader
sees either the old file or the complete new one, never a half-written file; if writing fails, the
temporary file is removed and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager yielding a temporary path to write instead of ``path``.

    On normal exit the temporary file is flushed to disk and moved onto ``path`` (replacing any
    existing file); on an exception (including ``KeyboardInterrupt``) it is deleted and ``path`` is
    left untouched.

    Raises:
        FileNotFoundError: if the directory of ``path`` does not exist.
        IsADirectoryError: if ``path`` is an existing directory.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> out.read_text()
        'hello'
    """
    path = Path(path)
    check_writable(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: never clobber another writer's temporary file; mode 0o666 lets the umask decide the
    # final permissions, as for a file created directly (mkstemp would make it private, 0o600).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike) -> Path:
    """Check that ``path`` can be created: its directory exists and it is not a directory."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    return path
