"""The audit log: append-only, hash-chained JSON lines, with no patient data.

Each line is one JSON object::

    {"seq": 7, "ts": "2026-11-22T10:00:00.123456+00:00", "event": "validation.passed",
     "actor": "alice@csu-host", "details": {...}, "prev": "<hash of line 6>", "hash": "<hash>"}

``hash`` is SHA-256 over the canonical JSON (sorted keys, no spaces) of every other field, so
editing any field of any line, removing a line, or swapping two lines breaks the chain at that
line; ``verify`` reports the first line that does not fit. The first line's ``prev`` is 64
zeros.

Appends take an exclusive lock on a sidecar lock file, so concurrent writers (two flows at
once) each see the other's last line. ``append`` refuses details that look like patient data
(an NHS-number-shaped or postcode-shaped value): the audit log is read by IG leads and kept
longer than the data, so it must never hold identifiers.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import AuditError, AuditTampered
from pipeline.logs import contains_identifier

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "VerifyReport"]

GENESIS = "0" * 64


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _entry_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(fields)).hexdigest()


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    event: str
    actor: str
    details: dict[str, Any]
    prev: str
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    head: str
    first_bad_line: int | None = None
    problem: str | None = None


class AuditLog:
    """An append-only, hash-chained audit log in one JSON-lines file."""

    def __init__(self, path: Path | str, as_of: dt.date | None = None):
        self.path = Path(path)
        self.as_of = as_of  # a run "as of" a date records it in every entry it writes

    # Writing ---------------------------------------------------------------------------
    def append(self, event: str, details: dict[str, Any] | None = None, actor: str | None = None):
        """Append one entry and return it. Raises ``AuditError`` for identifier-shaped details."""
        details = dict(details or {})
        if self.as_of is not None:
            details.setdefault("as_of", self.as_of.isoformat())
        for text in _strings(details):
            if contains_identifier(text):
                raise AuditError(
                    f"refused to write audit event '{event}': a detail looks like an NHS number "
                    "or a postcode; the audit log must hold no patient data"
                )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(self.path.suffix + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                seq, prev = self._tail()
                fields = {
                    "seq": seq + 1,
                    "ts": dt.datetime.now(dt.UTC).isoformat(),
                    "event": event,
                    "actor": actor or _default_actor(),
                    "details": details,
                    "prev": prev,
                }
                fields["hash"] = _entry_hash(fields)
                line = json.dumps(fields, sort_keys=True, ensure_ascii=True) + "\n"
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    os.write(fd, line.encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return AuditEntry(**fields)

    def _tail(self) -> tuple[int, str]:
        """The last entry's sequence number and hash (0 and GENESIS for an empty log)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, GENESIS
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block = min(size, 65536)
            while True:
                fh.seek(size - block)
                chunk = fh.read(block)
                lines = chunk.rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or block == size:
                    break
                block = min(size, block * 2)
        try:
            last = json.loads(lines[-1])
            return int(last["seq"]), str(last["hash"])
        except (ValueError, KeyError) as exc:
            raise AuditError(
                f"the last line of {self.path} is not a valid audit entry; "
                "run 'safehaven audit verify' to find the damage"
            ) from exc

    # Reading ---------------------------------------------------------------------------
    def entries(self) -> Iterator[AuditEntry]:
        """Every entry, in file order (no verification; use ``verify`` for that)."""
        if not self.path.exists():
            return
        with open(self.path, encoding="ascii") as fh:
            for line in fh:
                if line.strip():
                    yield AuditEntry(**json.loads(line))

    def verify(self) -> VerifyReport:
        """Walk the chain; report the first line that was edited, removed or reordered."""
        prev, expected_seq, count = GENESIS, 1, 0
        if not self.path.exists():
            return VerifyReport(ok=True, entries=0, head=GENESIS)
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    return self._bad(lineno, count, prev, "blank line inside the log")
                try:
                    fields = json.loads(line)
                    stored = fields.pop("hash")
                    seq = int(fields["seq"])
                except (ValueError, KeyError, TypeError):
                    return self._bad(lineno, count, prev, "line is not a valid audit entry")
                if _entry_hash(fields) != stored:
                    return self._bad(lineno, count, prev, "entry was edited (its hash does not match)")
                if fields.get("prev") != prev:
                    what = "an entry before it was removed or the entries were reordered"
                    if seq < expected_seq:
                        what = "entries were reordered or duplicated"
                    return self._bad(lineno, count, prev, what)
                if seq != expected_seq:
                    return self._bad(lineno, count, prev, f"sequence jumps to {seq}, expected {expected_seq}")
                prev, expected_seq, count = stored, seq + 1, count + 1
        return VerifyReport(ok=True, entries=count, head=prev)

    @staticmethod
    def _bad(line: int, count: int, head: str, problem: str) -> VerifyReport:
        return VerifyReport(ok=False, entries=count, head=head, first_bad_line=line, problem=problem)

    def verify_or_raise(self) -> VerifyReport:
        report = self.verify()
        if not report.ok:
            raise AuditTampered(
                f"audit log {self.path} is broken at line {report.first_bad_line}: {report.problem}",
                line=report.first_bad_line or 0,
            )
        return report
