"""The ``retain`` flow as `safehaven retain run` runs it: killed in the middle of destruction it
leaves the old state or the new state (never a warehouse missing rows that were not due), and a
re-run completes it to the same result as one clean run. Nothing identifying reaches the
certificates, the audit log or Prefect."""

import datetime as dt
import json
import sqlite3

import pytest

from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.linkage import open_warehouse
from pipeline.settings import Settings
from tests.cli import prefect_db, run_cli, run_until_crash
from tests.conftest import CONTRACTS, copy_root
from tests.integration.test_retention import DATED
from tests.leakscan import collect, scan, scan_file

AS_OF = dt.date(2029, 6, 1)
ENV = {"SAFEHAVEN_AS_OF": AS_OF.isoformat(), "SAFEHAVEN_ALLOW_SYNTHETIC_NHS_NUMBERS": "true"}


def _settings(root):
    return Settings(data_root=root, contracts_dir=CONTRACTS, as_of=AS_OF, allow_synthetic_nhs_numbers=True)


def _pointer(root) -> int:
    return json.loads((root / "warehouse" / "warehouse.current.json").read_text())["generation"]


def _split(root) -> dict[str, tuple[int, int]]:
    """Per dated table: (rows past retention, rows not past retention), from the current warehouse."""
    settings = _settings(root)
    con = open_warehouse(settings, open_keystore(settings, create_demo=True, roles=ALL_ROLES)).open(create=False)
    try:
        out = {}
        for table, (column, _, years) in DATED.items():
            cutoff = AS_OF.replace(year=AS_OF.year - years)
            out[table] = con.execute(f"SELECT count(*) FILTER ({column} < ?), count(*) FILTER ({column} >= ?) "
                                     f"FROM {table}", [cutoff, cutoff]).fetchone()
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def retained(demo_root, tmp_path_factory):
    """One clean `retain plan` then `retain run` on a copy of the demo's root: (root, plan's output)."""
    root = copy_root(demo_root, tmp_path_factory.mktemp("retained") / "data")
    plan = run_cli("retain", "plan", root=root, env=ENV)
    assert plan.returncode == 0, plan.stderr[-2000:]
    once = run_cli("retain", "run", root=root, env=ENV)
    assert once.returncode == 0, once.stdout[-2000:] + once.stderr[-3000:]
    return root, plan.stdout


def _certificate(root) -> dict:
    return json.loads(max((root / "retention" / "certificates").glob("*.json")).read_text())


def test_kill_retain_mid_destruction_then_rerun_equals_one_clean_run(demo_root, retained, tmp_path):
    ids = collect(demo_root / "landing")
    crashed, clean = copy_root(demo_root, tmp_path / "crashed"), retained[0]
    before = _split(crashed)
    old = _pointer(crashed)
    assert all(due and kept for due, kept in before.values())

    # 1. killed with three tables copied into the new generation: the old state, whole
    run_until_crash("retain", "run", root=crashed, crash_at="retention.table-copied:3", env=ENV)
    assert (crashed / "warehouse" / f"warehouse-g{old + 1}.duckdb").exists()  # really mid-rebuild
    assert _pointer(crashed) == old
    assert _split(crashed) == before
    # 2. killed again just after the switch: the new state, no row that was not due missing
    run_until_crash("retain", "run", root=crashed, crash_at="retention.switched", env=ENV)
    assert _pointer(crashed) > old
    assert (crashed / "warehouse" / f"warehouse-g{old}.duckdb").exists()  # the old one not yet destroyed
    assert _split(crashed) == {t: (0, kept) for t, (_, kept) in before.items()}
    # 3. a re-run completes it
    again = run_cli("retain", "run", root=crashed, env=ENV)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert _split(crashed) == _split(clean) == {t: (0, kept) for t, (_, kept) in before.items()}
    a, b = _certificate(crashed), _certificate(clean)
    assert a["verification"]["passed"] and b["verification"]["passed"]
    assert a["totals"]["records"] == b["totals"]["records"] == sum(due for due, _ in before.values())
    assert [(d["feed"], d["what"], d["rows"]) for d in a["destroyed"]] == \
        [(d["feed"], d["what"], d["rows"]) for d in b["destroyed"]]
    assert {f"warehouse-g{old}", f"warehouse-g{old + 1}"} <= set(a["keys_destroyed"])  # the abandoned one too
    assert not (crashed / "retention" / "journal.json").exists()
    assert sorted(p.name for p in (crashed / "warehouse").glob("*.duckdb")) == \
        [f"warehouse-g{_pointer(crashed)}.duckdb"]

    verified = run_cli("retain", "verify", root=crashed, env=ENV)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    assert "1 certificate(s) check out" in verified.stdout

    # Nothing identifying in the certificates, the journal's traces, the audit log or Prefect.
    settings = _settings(crashed)
    assert scan(crashed, ids, keystore=open_keystore(settings, create_demo=True, roles=ALL_ROLES)) == []
    assert scan_file(prefect_db(), ids) == []
    con = sqlite3.connect(f"file:{prefect_db()}?mode=ro", uri=True)
    params = [json.loads(p) for (p,) in con.execute(
        "SELECT parameters FROM flow_run WHERE flow_id IN (SELECT id FROM flow WHERE name = 'retain')").fetchall()]
    con.close()
    assert params and all(set(p) == {"data_root", "as_of"} for p in params)


def test_a_tampered_certificate_fails_verify_with_its_exit_code(retained, tmp_path):
    root, plan = copy_root(retained[0], tmp_path / "data"), retained[1]
    assert "Retention policies" in plan and "IGA-2026-850" in plan and "due" in plan
    path = max((root / "retention" / "certificates").glob("*.json"))
    doc = json.loads(path.read_text())
    doc["operator"] = "someone else"
    path.write_text(json.dumps(doc))
    out = run_cli("retain", "verify", root=root, env=ENV)
    assert out.returncode == 72, out.stdout[-2000:] + out.stderr[-2000:]
    assert "signature" in out.stdout + out.stderr
    nothing = run_cli("retain", "run", root=root, env=ENV)
    assert nothing.returncode == 0 and "Nothing is due" in nothing.stdout


def test_the_daily_deployment_carries_its_schedule(tmp_path):
    from pipeline.flows.deployments import retain_deployment

    deployment = retain_deployment(Settings(data_root=tmp_path))
    (schedule,) = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("30 2 * * *", "Europe/London")
    assert deployment.concurrency_limit == 1 and set(deployment.parameters) == {"data_root"}

