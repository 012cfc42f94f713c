"""The ``publish`` flow as ``safehaven publish`` runs it (and as the demo ran it): the package is
there and verifies; run again it changes nothing; killed mid-run it leaves nothing and a re-run
equals one clean run; Prefect holds counts only; the published CSV passes the independent
``safehaven disclosure check``."""

import hashlib
import json
import sqlite3

from pipeline.disclosure.publish import verify_package
from tests.cli import run_cli, run_until_crash
from tests.conftest import SMALL_PACKAGE, copy_root, small_package_contracts
from tests.flows.test_link_flow import ENV

TABLES = ("people_by_ward_age_gender_tier", "long_term_conditions_by_ward", "emergency_admissions_by_practice_tier",
          "social_care_cost_by_tier")


def _package(root):
    packages = [p for p in (root / "outputs" / "published").iterdir() if p.is_dir()]
    assert len(packages) == 1, packages
    return packages[0]


def _digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_demo_published_a_package_that_verifies_and_a_rerun_changes_nothing(demo_root, tmp_path):
    demo_root = copy_root(demo_root, tmp_path / "demo")  # the re-run is audited
    package = _package(demo_root)
    assert verify_package(package) == []
    assert {f"{t}.csv" for t in TABLES} <= {p.name for p in package.iterdir()}
    before = _digests(package)
    again = run_cli("publish", root=demo_root, env=ENV)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "already published" in again.stdout and package.name in again.stdout
    assert _digests(package) == before


def test_prefect_holds_the_runs_with_paths_and_counts_only(demo_root):
    con = sqlite3.connect(next((demo_root / "prefect").glob("*.db")))
    try:
        runs = con.execute("select r.parameters, r.state_type from flow_run r join flow f on f.id = r.flow_id "
                           "where f.name = 'publish'").fetchall()
        artifacts = [json.loads(d) for (d,) in con.execute("select data from artifact where key = 'published-package'")]
    finally:
        con.close()
    assert runs and all(state == "COMPLETED" for _, state in runs)
    for parameters, _ in runs:
        assert set(json.loads(parameters)) == {"data_root", "contract", "method"}
    rows = artifacts[-1] if isinstance(artifacts[-1], list) else json.loads(artifacts[-1])
    assert {r["table"] for r in rows} == set(TABLES)
    assert all(set(r) == {"table", "kind", "cells", "hidden", "primary", "secondary", "audit", "warning"} for r in rows)
    # the warning on a table that hides most of its non-zero cells: shares, never a value
    warned = {r["table"]: r["warning"] for r in rows if r["warning"]}
    assert warned and all(w.startswith(f"{t} hides ") and w.count("%") in (1, 2) for t, w in warned.items())


def test_the_published_csv_passes_the_independent_check(demo_root):
    package = _package(demo_root)
    out = run_cli("disclosure", "check", str(package / f"{TABLES[0]}.csv"), "--dims",
                  "ward_code,age_band,gender,risk_tier", "--count", "people", root=demo_root, env=ENV)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "safe" in out.stdout


def test_an_unknown_output_contract_is_a_clear_error(demo_root):
    out = run_cli("publish", "--contract", "nope", root=demo_root, env=ENV)
    assert out.returncode == 10, out.stderr  # ContractError
    assert "no output contract" in out.stderr and "commissioning" in out.stderr and "Traceback" not in out.stderr


def test_kill_publish_mid_run_then_rerun_equals_one_clean_run(stratified, tmp_path):
    """On a package of the three smaller tables: the property does not depend on table size."""
    env = {**ENV, "SAFEHAVEN_CONTRACTS_DIR": str(small_package_contracts(tmp_path / "contracts"))}
    crashed, clean = (copy_root(stratified[0].data_root, tmp_path / name, without=("landing",))
                      for name in ("crashed", "clean"))
    # Killed with two of the package's tables protected and audited, nothing written yet.
    run_until_crash("publish", "--contract", SMALL_PACKAGE, root=crashed, crash_at="publish.table-protected:2",
                    env=env)
    assert [p.name for p in (crashed / "outputs" / "published").iterdir()] == [".publish.lock"]  # nothing partial
    for root in (crashed, clean):
        out = run_cli("publish", "--contract", SMALL_PACKAGE, root=root, env=env)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    a, b = _package(crashed), _package(clean)
    assert a.name == b.name and a.name.startswith(SMALL_PACKAGE)
    for name in TABLES[1:]:
        assert (a / f"{name}.csv").read_bytes() == (b / f"{name}.csv").read_bytes(), name
    assert verify_package(a) == []
