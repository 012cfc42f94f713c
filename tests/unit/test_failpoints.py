"""Crash points: a no-op unless armed; armed, the n-th hit kills the process with SIGKILL."""

import signal
import subprocess
import sys

import pytest

from pipeline.failpoints import CRASH_AT, POINTS, crash_point

SCRIPT = """
import sys
from pipeline.failpoints import crash_point
for i in range(1, 4):
    print(f"before {i}", flush=True)
    crash_point("mart.written")
print("after", flush=True)
"""


def _run(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


def test_an_unarmed_point_does_nothing(monkeypatch):
    monkeypatch.delenv(CRASH_AT, raising=False)
    for name in POINTS:
        crash_point(name)
    out = _run({})
    assert out.returncode == 0 and out.stdout.split() == ["before", "1", "before", "2", "before", "3", "after"]


def test_the_nth_hit_kills_the_process_there_and_says_where():
    out = _run({CRASH_AT: "mart.written:2"})
    assert out.returncode == -signal.SIGKILL
    assert out.stdout.split() == ["before", "1", "before", "2"]  # died at the second hit, nothing after
    assert "crash point mart.written reached (hit 2)" in out.stderr


def test_another_point_armed_leaves_this_one_alone():
    assert _run({CRASH_AT: "packs.written"}).returncode == 0


def test_an_unknown_point_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(CRASH_AT, "mart.writen")
    with pytest.raises(ValueError, match="no crash point called 'mart.writen'"):
        crash_point("mart.written")
