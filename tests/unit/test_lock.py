"""The committed lock is the environment: every line pinned and hashed, the venv holds exactly what
it lists, and it is closed (every requirement of every locked package, extras included, is met by
another locked package), so an install that resolves nothing cannot miss a dependency."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

LOCK = REPO / "requirements.lock"
PROJECT = "safehaven-pipeline"
#: Installed beside the lock by `python -m venv` itself (pip) and by `pip install -e .` (the project).
NOT_LOCKED = {"pip", PROJECT}


def locked(path: Path = LOCK) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from a lock file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)==([^ \\;]+)", line):
            name = canonicalize_name(m.group(1))
            pins[name] = (m.group(2), [])
        elif name and (h := re.search(r"--hash=(sha256:[0-9a-f]{64})", line)):
            pins[name][1].append(h.group(1))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{path.name}: a line that is not a pin, hash or comment: {line!r}")
    return pins


def installed() -> dict[str, metadata.Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}


def unmet(dists: dict[str, metadata.Distribution], root: str, extras: set[str]) -> list[str]:
    """What resolving ``root[extras]`` against ``dists`` alone would have to fetch: each requirement
    (markers evaluated with the extras that dependents ask for) that no installed version meets."""
    env = default_environment()
    missing: list[str] = []
    seen: set[tuple[str, str]] = set()
    todo = [(root, extra, root) for extra in sorted(extras | {""})]
    while todo:
        name, extra, via = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for text in dists[name].requires or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate({**env, "extra": extra}):
                continue
            dep = canonicalize_name(req.name)
            have = dists.get(dep)
            if have is None or not req.specifier.contains(have.version, prereleases=True):
                missing.append(f"{req} (wanted by {name}{f'[{extra}]' if extra else ''}, via {via})")
                continue
            todo += [(dep, e, f"{via} -> {name}") for e in sorted(req.extras | {""})]
    return missing


def test_every_lock_line_is_an_exact_pin_with_hashes():
    pins = locked()
    assert len(pins) > 100
    assert all(hashes for _, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]


def test_the_venv_holds_exactly_the_lock():
    pins = {name: version for name, (version, _) in locked().items()}
    have = {name: d.version for name, d in installed().items() if name not in NOT_LOCKED}
    assert have == pins


def test_the_lock_is_closed_under_every_requirement_and_extra():
    assert unmet(installed(), PROJECT, {"dev"}) == []


def test_the_closure_check_sees_a_dependency_wanted_only_through_an_extra():
    """pip check misses this one (prefect asks for httpx[http2]; h2 comes only with that extra)."""
    dists = {name: d for name, d in installed().items() if name != "h2"}
    found = unmet(dists, PROJECT, {"dev"})
    assert any(line.startswith("h2") and "httpx[http2]" in line for line in found), found
