"""Running ``safehaven`` as a user does (a subprocess), against one Prefect server per session.

Every flow command talks to Prefect. Started ephemerally, each command spends seconds starting
a server of its own; tests that do not test that start-up share one real ``prefect server``,
started on first use and stopped when the session ends (``tests/conftest.py``). The demo test
keeps the ephemeral start-up, as ``make demo`` runs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pipeline.failpoints import CRASH_AT

__all__ = ["SYNTHETIC", "prefect_db", "run_cli", "run_until_crash", "shared_prefect_api", "stop_shared_prefect"]

#: What `safehaven demo` sets for itself, for commands run on a synthetic root afterwards.
SYNTHETIC = {"SAFEHAVEN_AS_OF": "2026-04-15", "SAFEHAVEN_ALLOW_SYNTHETIC_NHS_NUMBERS": "true"}

_server: dict = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def shared_prefect_api() -> str:
    """The API URL of this session's Prefect server (started on first use)."""
    if "api" in _server:
        return _server["api"]
    home = Path(tempfile.mkdtemp(prefix="safehaven-prefect-"))
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed in stop_shared_prefect
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    _server.update(api=api, proc=proc, home=home, log=log)
    deadline = time.monotonic() + 180
    while not _healthy(api):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_shared_prefect()
            raise RuntimeError(f"the session's Prefect server did not start:\n{(home / 'server.log').read_text()[-3000:]}")
        time.sleep(0.3)
    return api


def prefect_db() -> Path:
    """The shared server's SQLite database (every shared run of the session is in it)."""
    shared_prefect_api()
    return _server["home"] / "prefect.db"


def stop_shared_prefect() -> None:
    proc = _server.get("proc")
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    _server["log"].close()
    shutil.rmtree(_server["home"], ignore_errors=True)
    _server.clear()


def _environment(root: Path, env: dict | None, prefect: str) -> dict:
    full = {k: v for k, v in os.environ.items() if k != CRASH_AT}  # armed only where a test asks
    full |= {"SAFEHAVEN_DATA_ROOT": str(root), "GX_ANALYTICS_ENABLED": "false", **(env or {})}
    if prefect == "shared":
        full["PREFECT_API_URL"] = shared_prefect_api()
    else:  # its own ephemeral server and database under <root>/prefect, as `make demo` runs
        full.pop("PREFECT_API_URL", None)
    return full


def run_cli(*args, root: Path, env: dict | None = None, timeout: int = 900,
            prefect: str = "shared") -> subprocess.CompletedProcess:
    """``safehaven ARGS`` on ``root``; ``prefect="ephemeral"`` gives it a server of its own."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], check=False, capture_output=True,
                          text=True, env=_environment(root, env, prefect), timeout=timeout)


def run_until_crash(*args, root: Path, crash_at: str, env: dict | None = None,
                    timeout: int = 900) -> subprocess.CompletedProcess:
    """``safehaven ARGS`` with a crash point armed (``pipeline.failpoints``): returns once the
    process has killed itself there, and fails if it ended any other way."""
    out = run_cli(*args, root=root, env={**(env or {}), CRASH_AT: crash_at}, timeout=timeout)
    point = crash_at.partition(":")[0]
    assert out.returncode == -signal.SIGKILL and f"crash point {point} reached" in out.stderr, (
        f"`safehaven {' '.join(args)}` did not die at {crash_at} (exit {out.returncode}):\n"
        + out.stdout[-2000:] + out.stderr[-3000:])
    return out
