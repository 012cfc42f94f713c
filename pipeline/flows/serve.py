"""``safehaven serve``: a real Prefect server (local SQLite, telemetry off) unless one is
configured, every deployment registered with its schedule, and a runner that executes them.

Import this module only after ``prefect_environment(settings)``. ``server_environment`` is the
whole of the local server's configuration, so that the README, the test and the server agree:
its database is ``<data root>/prefect/server.db`` (apart from the ephemeral runs' database),
it listens on 127.0.0.1 only, and it keeps flow runs, their logs and artifacts, and events for
``run_retention_days`` (Prefect's database vacuum service), matched to the contracts: run logs
name staged deliveries, so they are kept as long as the longest staging retention and no longer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipeline.settings import Settings

__all__ = ["run_retention_days", "serve", "server_environment", "start_server", "stop_server", "wait_until_healthy"]


def run_retention_days(settings: Settings) -> int:
    """Prefect's run-metadata retention: the setting, or the longest staging retention."""
    if settings.prefect_run_retention_days:
        return settings.prefect_run_retention_days
    from pipeline.retention.policy import load_policies

    today = settings.today()
    spans = [(today - p.staging.before(today)).days for p in load_policies(settings.contracts_dir, today).values()
             if p.approved and p.staging is not None]
    return max(spans, default=90)


def server_environment(settings: Settings, days: int | None = None) -> dict[str, str]:
    days = days or run_retention_days(settings)
    home = settings.prefect_home.resolve()
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'server.db'}",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": json.dumps(["events", "flow_runs"]),
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": f"P{days}D",
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"P{days}D",
        "PREFECT_LOGGING_LOG_PRINTS": "false",
    }


def wait_until_healthy(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None,
                       log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {proc.returncode}; see {log or 'its log'}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
            if resp.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server at {url} did not become healthy within {timeout:.0f} s")


def start_server(settings: Settings, days: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``prefect server start`` in its own process group, logging to ``<prefect home>/server.log``."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    log = settings.prefect_home / "server.log"
    env = {**os.environ, **server_environment(settings, days)}
    env.pop("PREFECT_API_URL", None)
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(settings.prefect_port)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{settings.prefect_port}/api"
    try:
        wait_until_healthy(url, proc=proc, log=log)
    except BaseException:
        stop_server(proc)
        raise
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def serve(settings: Settings, say=print) -> None:
    """Start (or use) a server, register every deployment and run them until interrupted."""
    proc = None
    # A service manager stops us with SIGTERM: unwind (and stop our server) as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        days = run_retention_days(settings)
        say(f"starting a local Prefect server on 127.0.0.1:{settings.prefect_port} (database "
            f"{settings.prefect_home / 'server.db'}; run metadata kept {days} days)")
        proc, url = start_server(settings, days)
        os.environ["PREFECT_API_URL"] = url
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipeline.flows.deployments import all_deployments

    try:
        with temporary_settings({PREFECT_API_URL: url}):
            deployments = all_deployments(settings)
            for d in deployments:
                when = d.schedules[0].schedule.cron if d.schedules else "on its event trigger"
                say(f"  {d.flow_name}/{d.name}: {when} ({settings.schedule_timezone})")
            say(f"{len(deployments)} deployments registered at {url}; serving (Ctrl-C stops)"
                f" since {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
            prefect_serve(*deployments, print_starting_message=False)
    finally:
        if proc is not None:
            stop_server(proc)
