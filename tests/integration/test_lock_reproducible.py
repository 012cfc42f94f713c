"""The committed locks are a resolution of pyproject.toml (and the datacontract tool's
requirements) as of the Makefile's LOCK_CUTOFF: `make lock LOCK_UPGRADE=` over copies of them
keeps every pin and hash. That holds whatever the index gains later, even releases dated before
the cutoff (a full re-resolve, `make lock`, picks those up: the old test failed three times that way on
a fresh clone with no change here). A pin that is missing, newer than the cutoff or not what
pyproject.toml asks for, or a hash the index does not have, changes the output. Needs the
package index, as `make install` does."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.unit.test_lock import LOCK, locked

TOOLS_LOCK = REPO / "tools" / "datacontract" / "requirements.lock"


def _relock(tmp_path: Path, lock: str, tools_lock: str) -> tuple[Path, Path]:
    """`make lock` keeping the pins of ``lock`` and ``tools_lock`` (texts), into files under ``tmp_path``."""
    out, tools_out = tmp_path / "requirements.lock", tmp_path / "tools-requirements.lock"
    out.write_text(lock)
    tools_out.write_text(tools_lock)
    uv = Path(sys.executable).parent / "uv"
    run = subprocess.run(["make", "-s", "-C", str(REPO), "lock", f"UV={uv}", f"LOCK_OUT={out}",
                          f"TOOLS_LOCK_OUT={tools_out}", "LOCK_UPGRADE="],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return out, tools_out


def _pins(path: Path) -> dict[str, tuple[str, set[str]]]:
    return {name: (version, set(hashes)) for name, (version, hashes) in locked(path).items()}


def test_make_lock_keeps_the_committed_locks(tmp_path):
    out, tools_out = _relock(tmp_path, LOCK.read_text(), TOOLS_LOCK.read_text())
    assert _pins(out) == _pins(LOCK)
    assert _pins(tools_out) == _pins(TOOLS_LOCK)


def test_make_lock_mends_a_lock_that_is_not_a_resolution(tmp_path):
    """The check can fail: a lock without one of its pins (h2, wanted only through an extra) and
    with a version the index has never had (polars 0.0.1) comes back with both resolved."""
    version = locked(LOCK)["polars"][0]
    lines, skip = [], False
    for line in LOCK.read_text().splitlines(keepends=True):
        if line[:1].isalpha():
            skip = line.startswith("h2==")
            line = line.replace(f"polars=={version}", "polars==0.0.1")
        if not skip:
            lines.append(line)
    broken = tmp_path / "broken.lock"
    broken.write_text("".join(lines))
    assert "h2" not in locked(broken) and locked(broken)["polars"][0] == "0.0.1"
    out, _ = _relock(tmp_path, broken.read_text(), TOOLS_LOCK.read_text())
    fresh = _pins(out)
    assert "h2" in fresh and fresh["polars"][0] != "0.0.1"
    assert fresh != _pins(broken)
