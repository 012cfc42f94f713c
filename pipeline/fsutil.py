"""File-system habits used wherever the pipeline writes: fsync a path, take a lock that fails
at once rather than waits, and a lock shared by threads and processes (Dask workers)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

__all__ = ["SharedLock", "fsync_path", "lock_or_fail"]


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


class SharedLock:
    """A re-entrant lock held across the threads of this process (an RLock) and across
    processes on the same files (an flock on ``lock_file``, taken by the outermost holder)."""

    def __init__(self, lock_file: Path):
        self.lock_file = Path(lock_file)
        self._thread = threading.RLock()
        self._depth = 0
        self._handle = None

    def __enter__(self) -> Self:
        self._thread.acquire()
        if self._depth == 0:
            try:
                self.lock_file.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.lock_file, "a")
                fcntl.flock(self._handle, fcntl.LOCK_EX)
            except BaseException:
                if self._handle is not None:
                    self._handle.close()
                    self._handle = None
                self._thread.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
        self._thread.release()
