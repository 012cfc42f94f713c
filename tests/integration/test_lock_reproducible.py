"""`make lock` re-creates the committed lock: same pins, same hashes, whatever the index has gained
since (uv resolves as of the Makefile's LOCK_CUTOFF and ignores the pins already in the file).
Needs the package index, as `make install` does."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.unit.test_lock import LOCK, locked


def test_make_lock_recreates_the_committed_lock(tmp_path):
    out = tmp_path / "requirements.lock"
    uv = Path(sys.executable).parent / "uv"
    run = subprocess.run(["make", "-s", "-C", str(REPO), "lock", f"UV={uv}", f"LOCK_OUT={out}"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    fresh, committed = locked(out), locked(LOCK)
    assert {n: v for n, (v, _) in fresh.items()} == {n: v for n, (v, _) in committed.items()}
    assert {n: set(h) for n, (_, h) in fresh.items()} == {n: set(h) for n, (_, h) in committed.items()}
