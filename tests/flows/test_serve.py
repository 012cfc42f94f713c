"""`safehaven serve` starts a real Prefect server, registers every deployment with its
schedule (as `prefect deployment ls` shows), and a triggered run completes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from pipeline.contracts import feed_names
from tests.conftest import CONTRACTS

ENV = {"SAFEHAVEN_AS_OF": "2026-04-15", "SAFEHAVEN_ALLOW_SYNTHETIC_NHS_NUMBERS": "true", "GX_ANALYTICS_ENABLED": "false"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect(api: str, *args, timeout=240):
    env = {**os.environ, "PREFECT_API_URL": api}
    return subprocess.run([sys.executable, "-m", "prefect", *args], capture_output=True, text=True, env=env,
                           timeout=timeout, check=False)


def _registered(api: str) -> int:
    """Deployments the server holds (0 while it is not answering yet)."""
    request = urllib.request.Request(f"{api}/deployments/count", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(json.loads(resp.read()))
    except OSError:
        return 0


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_registers_every_deployment_and_a_triggered_run_completes(tmp_path):
    root, port = tmp_path / "data", _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, **ENV, "SAFEHAVEN_DATA_ROOT": str(root), "SAFEHAVEN_PREFECT_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wanted = {f"ingest/ingest-{f.replace('_', '-')}" for f in feed_names(CONTRACTS)} | {
            "link/link-daily", "stratify/stratify-after-link", "publish/publish-monthly", "retain/retain-daily",
            "report/report-weekly"}
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and _registered(api) < len(wanted):  # the API, not a CLI start per poll
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        out = _prefect(api, "deployment", "ls", "-o", "json", timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        listed = json.loads(out.stdout)
        names = {f"{d['entrypoint'].split(':')[1].removesuffix('_flow')}/{d['name']}" for d in listed}
        assert names >= wanted, f"registered: {sorted(names)}\n" + (tmp_path / "serve.log").read_text()[-3000:]

        table = _prefect(api, "deployment", "ls")  # the operator's view, as the README says
        assert table.returncode == 0 and "retain/retain-daily" in table.stdout, table.stderr[-2000:]
        by_name = {d["name"]: d for d in listed}
        crons = {name: [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in d["schedules"]]
                 for name, d in by_name.items()}
        assert crons["retain-daily"] == [("30 2 * * *", "Europe/London")]
        assert crons["report-weekly"] == [("0 7 * * 1", "Europe/London")]
        assert crons["publish-monthly"] == [("0 9 12 * *", "Europe/London")]
        assert crons["ingest-gp"] == [("0 6 1-10 * *", "Europe/London")]
        assert crons["stratify-after-link"] == []  # an event trigger on completed link runs instead
        assert all(d["global_concurrency_limit"]["limit"] == 1 for d in listed)  # never overlaps itself
        assert all(set(d["parameters"]) <= {"data_root", "feeds"} for d in listed)  # paths and names only

        # Prefect keeps run metadata as long as the longest staging retention (400 days here).
        with urllib.request.urlopen(f"{api}/admin/settings", timeout=30) as resp:
            server = json.loads(resp.read())["server"]
        assert set(server["services"]["db_vacuum"]["enabled"]) >= {"flow_runs", "events"}
        assert server["services"]["db_vacuum"]["retention_period"] == server["events"]["retention_period"] == "P1Y35D"
        assert server["analytics_enabled"] is False

        run = _prefect(api, "deployment", "run", "report/report-weekly", "--watch")
        assert run.returncode == 0 and "Completed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
        assert (root / "reports" / "evidence" / "index.html").exists()
        assert (root / "reports" / "notice" / "index.html").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    deadline = time.monotonic() + 30
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _listening(port), "the Prefect server outlived `safehaven serve`"
