"""The ``link`` flow as ``safehaven link`` runs it: killed mid-run (at fixed crash points, see
``pipeline.failpoints``) and run again, it gives the same warehouse tables and marts as one
clean run; and ``safehaven query`` refuses a write and audits it."""

import json

import polars as pl

from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.linkage import open_warehouse
from pipeline.linkage.warehouse import connect
from pipeline.marts import current_mart
from tests.cli import SYNTHETIC, run_cli, run_until_crash
from tests.conftest import copy_root, synthetic_settings

ENV = SYNTHETIC
TABLES = ("spine", "apc_spells", "person_events", "rescue_candidates", "rescue_outcomes", "rescued_links", "record_linkage")


def _settings(root):
    return synthetic_settings(root)


def _rows(frame: pl.DataFrame) -> list[dict]:
    frame = frame.with_columns(pl.col(c).list.join(",") for c, t in frame.schema.items() if isinstance(t, pl.List))
    return frame.sort(frame.columns, nulls_last=True).to_dicts()


def _state(root) -> dict:
    settings = _settings(root)
    keystore = open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_catalog = 'w'").fetchall()}
        state = {t: _rows(con.execute(f"SELECT * FROM {t}").pl()) for t in TABLES}
        state |= {t: _rows(con.execute(f"SELECT * FROM {t}").pl()) for t in present if t.startswith("stg_")}
        state["_loads"] = _rows(con.execute("SELECT * EXCLUDE (loaded_at) FROM _loads").pl())
    finally:
        con.close()
    for name in ("person", "linkage"):
        pointer = current_mart(settings.marts_dir, name)
        db = connect()
        db.execute(f"ATTACH '{settings.marts_dir / pointer['file']}' AS m (ENCRYPTION_KEY $k, READ_ONLY)",
                   {"k": keystore.data_key(pointer["key"]).hex()})
        for table in pointer["tables"]:
            frame = db.execute(f"SELECT * FROM m.{table}").pl()
            state[f"{name}.{table}"] = _rows(frame.drop("loaded_at", strict=False))  # when, not what
        db.close()
    return state


def _loads_by_table(root) -> dict[str, int]:
    settings = _settings(root)
    con = open_warehouse(settings, open_keystore(settings, create_demo=True, roles=ALL_ROLES)).open(create=False)
    try:
        return dict(con.execute("SELECT tbl, count(*) FROM _loads GROUP BY ALL").fetchall())
    finally:
        con.close()


def test_kill_link_mid_run_then_rerun_equals_one_clean_run(staged_root, linked, tmp_path):
    crashed = copy_root(staged_root, tmp_path / "crashed", without=("landing",))
    staged = {}
    for manifest in (crashed / "staging").rglob("*.manifest.json"):
        table = json.loads(manifest.read_text())["table"]
        staged[table] = staged.get(table, 0) + 1

    # 1. killed inside a table's load transaction, 60 deliveries in: the tables committed before
    #    it are whole, the one being loaded is not there at all
    run_until_crash("link", root=crashed, crash_at="warehouse.delivery-inserted:60", env=ENV)
    assert not (crashed / "reports" / "linkage" / "latest.json").exists()
    loaded = _loads_by_table(crashed)
    assert 0 < sum(loaded.values()) < 60 and all(n == staged[t] for t, n in loaded.items()), (loaded, staged)
    # 2. killed again with the first mart's new file written and its pointer not yet switched
    run_until_crash("link", root=crashed, crash_at="mart.written", env=ENV)
    assert list((crashed / "marts").glob("*/*.duckdb")) and not list((crashed / "marts").glob("*.current.json"))
    # 3. run to the end
    again = run_cli("link", root=crashed, env=ENV)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]

    a, b = _state(crashed), _state(linked[0].data_root)  # the session's one clean run
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    assert len(a["spine"]) > 1000 and len(a["person.people"]) == len(a["spine"])
    # No orphans: two files at most per mart, and a key for each file and no other.
    keystore = open_keystore(_settings(crashed), create_demo=True, roles=ALL_ROLES)
    for name in ("person", "linkage", "governance"):
        files = sorted((crashed / "marts" / name).glob("*.duckdb"))
        assert 1 <= len(files) <= 2
        assert keystore.data_key_names(f"mart-{name}-") == [f"mart-{f.stem}" for f in files]


def test_query_refuses_a_write_and_audits_it(demo_root, tmp_path):
    demo_root = copy_root(demo_root, tmp_path / "demo")  # the audit log grows
    out = run_cli("query", "--role", "analyst", "DELETE FROM people WHERE age > 80", root=demo_root, env=ENV)
    assert out.returncode == 50, out.stdout + out.stderr
    assert "refused" in out.stderr and "Traceback" not in out.stderr
    entry = json.loads((demo_root / "audit" / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["event"] == "query.refused" and entry["details"]["role"] == "analyst"
    assert entry["details"]["sql"].startswith("DELETE FROM people")

    # Exports (issue 20): owner-only whatever the umask, even over a world-readable file that was
    # there, and audited with where they went and how many rows.
    target, parquet = tmp_path / "bands.csv", tmp_path / "bands.data"
    target.write_text("old\n")
    target.chmod(0o644)
    ok = run_cli("query", "--role", "analyst", "SELECT age_band, count(*) AS n FROM people GROUP BY ALL",
                 "--csv", str(target), "--parquet", str(parquet), root=demo_root, env=ENV)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert pl.read_csv(target)["n"].sum() > 1000 and pl.read_parquet(parquet).equals(pl.read_csv(target))
    assert (target.stat().st_mode & 0o777, parquet.stat().st_mode & 0o777) == (0o600, 0o600)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bands")]  # no scratch file left
    run, *exported = [json.loads(line) for line in (demo_root / "audit" / "audit.jsonl").read_text().splitlines()[-3:]]
    assert run["event"] == "query.run" and run["details"]["rows"] == pl.read_csv(target).height
    assert [(e["event"], e["details"]["path"], e["details"]["format"], e["details"]["rows"]) for e in exported] == [
        ("query.exported", str(target.resolve()), "csv", run["details"]["rows"]),
        ("query.exported", str(parquet.resolve()), "parquet", run["details"]["rows"])]

    shown = run_cli("query", "--role", "analyst", "SELECT * FROM people", root=demo_root, env=ENV)
    assert shown.returncode == 0 and "rows (marts: person)" in shown.stdout and "showing 50 of" in shown.stdout
    denied = run_cli("query", "--role", "analyst", "SELECT * FROM linkage.record_linkage", root=demo_root, env=ENV)
    assert denied.returncode == 2 and "record_linkage" in denied.stderr


def test_the_link_run_leaves_count_artifacts_in_prefect(demo_root):
    import sqlite3

    con = sqlite3.connect(next((demo_root / "prefect").glob("*.db")))
    try:
        rows = dict(con.execute("SELECT key, data FROM artifact WHERE key LIKE 'linkage-%'").fetchall())
        runs = [r[0] for r in con.execute("SELECT state_type FROM flow_run WHERE name IS NOT NULL AND "
                                          "flow_id IN (SELECT id FROM flow WHERE name = 'link')").fetchall()]
    finally:
        con.close()
    assert runs and set(runs) == {"COMPLETED"}
    assert {"linkage-by-feed", "linkage-summary"} <= set(rows)
    assert "people on the spine" in rows["linkage-summary"] and "asc_clients" in rows["linkage-by-feed"]
