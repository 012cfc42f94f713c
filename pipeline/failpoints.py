"""Named crash points: kill the process at a chosen step, to prove a re-run recovers.

Every step that leaves something on disk another run must cope with (a staged file without its
manifest, a warehouse generation not yet switched in, a mart file without its pointer, a
package half protected) calls ``crash_point("<name>")``. Normally that is one dictionary lookup
and nothing happens. With ``SAFEHAVEN_CRASH_AT=<name>[:<n>]`` in the environment, the n-th time
(default the first) the process reaches that point it writes one line naming the point to
stderr and kills itself with SIGKILL: no ``finally``, no ``atexit``, no flush, exactly as the
kernel's OOM killer or a pulled plug would stop it. Locks held through the OS (flocks) are
released by the kernel; everything else stays as it was at that instant.

The recovery tests use this instead of killing from outside at a moment guessed by polling,
which lands somewhere different on a loaded machine. The points, in the order a run meets them:

- ``ingest.committed``: a delivery's encrypted Parquet is in place; its manifest is not.
- ``warehouse.delivery-inserted``: one more staged delivery is inserted, inside its table's
  open transaction (earlier tables are committed).
- ``mart.written``: a mart's new file is written and closed; its pointer still names the old one.
- ``risk.model-saved``: the chosen model is saved; its card page, the current pointer and the
  scores are not.
- ``packs.written``: one more practice's case-finding pack is in the unpublished folder.
- ``publish.table-protected``: one more table of a package is protected and audited; nothing of
  the package is written.
- ``retention.table-copied``: one more table is copied into the new warehouse generation, which
  is not complete.
- ``retention.switched``: the pointer names the new generation; the old one is not destroyed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections import Counter

__all__ = ["CRASH_AT", "POINTS", "crash_point"]

#: The environment variable that arms a crash point: ``name`` or ``name:n``.
CRASH_AT = "SAFEHAVEN_CRASH_AT"
POINTS = ("ingest.committed", "warehouse.delivery-inserted", "mart.written", "risk.model-saved", "packs.written",
          "publish.table-protected", "retention.table-copied", "retention.switched")

_hits: Counter[str] = Counter()
_lock = threading.Lock()


def _armed() -> tuple[str, int] | None:
    spec = os.environ.get(CRASH_AT)
    if not spec:
        return None
    name, _, nth = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"{CRASH_AT}={spec!r}: no crash point called {name!r} (points: {', '.join(POINTS)})")
    return name, int(nth or 1)


def crash_point(name: str) -> None:
    """Kill this process here if ``SAFEHAVEN_CRASH_AT`` names this point and this is its n-th hit."""
    assert name in POINTS, name
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    with _lock:  # held while dying: no other thread gets past this point meanwhile
        _hits[name] += 1
        if _hits[name] < armed[1]:
            return
        sys.stderr.write(f"crash point {name} reached (hit {_hits[name]}): killing the process\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
