"""Two file-system habits used wherever the pipeline writes: fsync a path, and take a lock
that fails at once rather than waits."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["fsync_path", "lock_or_fail"]


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') writes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def lock_or_fail(lock_file: Path, error: Exception) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (the OS drops it if the process dies); raise
    ``error`` at once if another process holds it."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
