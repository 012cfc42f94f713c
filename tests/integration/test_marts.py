"""Marts: encrypted, read-only, matching their contracts, under their own pseudonyms, switched
atomically; analyst access by role, read-only, locked down and audited."""

import json
import shutil

import duckdb
import pytest

from pipeline.audit import AuditLog
from pipeline.errors import ContractError, KeystoreError, QueryRefused, UserError
from pipeline.linkage import open_warehouse, publish
from pipeline.linkage.warehouse import connect
from pipeline.marts import current_mart, load_mart_contracts, open_marts, run_query


def _mart_path(settings, name):
    return settings.marts_dir / current_mart(settings.marts_dir, name)["file"]


def test_marts_are_encrypted_read_only_files_matching_their_contracts(linked):
    settings, keystore, _ = linked
    contracts = load_mart_contracts(settings.contracts_dir)
    assert set(contracts) == {"person", "linkage", "governance"}
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        pids = [r[0] for r in con.execute("SELECT person_pid FROM spine LIMIT 200").fetchall()]
        people = con.execute("SELECT count(*) FROM spine").fetchone()[0]
    finally:
        con.close()
    for name, contract in contracts.items():
        pointer = current_mart(settings.marts_dir, name)
        path = settings.marts_dir / pointer["file"]
        assert path.stat().st_mode & 0o222 == 0  # read-only on disk
        raw = path.read_bytes()
        for needle in [*pids[:50], "S90001", "person_id", "record_linkage", "warehouse.linked"]:
            assert needle.encode() not in raw, (name, needle)
        with pytest.raises(duckdb.Error):
            duckdb.connect().execute(f"ATTACH '{path}' AS m (READ_ONLY)")  # no key, no data
        db = connect()
        db.execute(f"ATTACH '{path}' AS m (ENCRYPTION_KEY $k, READ_ONLY)", {"k": keystore.data_key(pointer["key"]).hex()})
        for table in contract.tables:
            columns = [r[0] for r in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'm' AND table_name = ? "
                "ORDER BY ordinal_position", [table]).fetchall()]
            assert tuple(columns) == contract.columns(table)
        if name == "person":
            mart_ids = {r[0] for r in db.execute("SELECT person_id FROM m.people").fetchall()}
            assert len(mart_ids) == people  # one row per person on the spine
            assert not mart_ids & set(pids)  # its own pseudonyms: cannot be joined to the warehouse
        db.close()


@pytest.mark.parametrize(("role", "marts"), [("analyst", ("person",)), ("super-user", ("linkage", "person")),
                                             ("ig-lead", ("governance", "linkage"))])
def test_each_role_reads_exactly_the_marts_its_contracts_allow(linked, role, marts):
    settings, keystore, _ = linked
    audit = AuditLog(settings.audit_log)
    result = run_query(settings, keystore, role, "SELECT database_name FROM duckdb_databases() WHERE NOT internal "
                       "AND database_name <> 'memory' ORDER BY 1", audit)
    assert tuple(result.table.column("database_name").to_pylist()) == marts == result.marts
    if "person" not in marts:
        with pytest.raises(UserError, match="people"):
            run_query(settings, keystore, role, "SELECT count(*) FROM people", audit)


def test_an_unknown_role_reads_nothing(linked):
    settings, keystore, _ = linked
    with pytest.raises(UserError, match="unknown role 'admin'"):
        run_query(settings, keystore, "admin", "SELECT 1", AuditLog(settings.audit_log))


def test_an_analyst_reads_the_person_mart_and_the_query_is_audited(linked):
    settings, keystore, summary = linked
    audit = AuditLog(settings.audit_log)
    result = run_query(settings, keystore, "analyst",
                       "SELECT age_band, count(*) AS people FROM people GROUP BY ALL ORDER BY 1", audit, actor="alice")
    assert sum(result.table.column("people").to_pylist()) == summary.people
    entry = json.loads(settings.audit_log.read_text().splitlines()[-1])
    assert entry["event"] == "query.run" and entry["details"]["user"] == "alice"
    assert entry["details"]["role"] == "analyst" and entry["details"]["rows"] == result.rows
    assert entry["details"]["marts"] == ["person"] and "GROUP BY" in entry["details"]["sql"]


@pytest.mark.parametrize("sql", [
    "CREATE TABLE person.main.x AS SELECT 1",
    "INSERT INTO people SELECT * FROM people",
    "DELETE FROM people",
    "UPDATE people SET age = 1",
    "DROP TABLE people",
    "COPY people TO 'people.csv'",
    "ATTACH 'other.duckdb' AS o",
    "SET enable_external_access = true",
    "PRAGMA enable_profiling",
    "EXPLAIN ANALYZE CREATE TABLE person.main.x AS SELECT 1",
    "INSTALL httpfs",
    "SELECT 1; DELETE FROM people",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('staging/**/*.parquet')",
])
def test_writes_attaches_and_file_access_are_refused_and_audited(linked, sql):
    settings, keystore, _ = linked
    audit = AuditLog(settings.audit_log)
    before = settings.audit_log.read_text().count("\n")
    with pytest.raises(QueryRefused):
        run_query(settings, keystore, "analyst", sql, audit, actor="mallory")
    lines = settings.audit_log.read_text().splitlines()
    assert len(lines) == before + 1
    entry = json.loads(lines[-1])
    assert entry["event"] == "query.refused" and entry["details"]["user"] == "mallory"
    assert entry["details"]["role"] == "analyst"
    assert audit.verify().ok
    result = run_query(settings, keystore, "analyst", "SELECT count(*) AS n FROM people", audit)
    assert result.table.column("n")[0].as_py() == linked[2].people  # nothing changed


def test_no_key_material_reaches_the_query_session_or_the_audit_log(linked):
    settings, keystore, _ = linked
    audit = AuditLog(settings.audit_log)
    keys = [keystore.data_key(current_mart(settings.marts_dir, m)["key"]).hex() for m in ("person", "linkage")]
    mart_key = keystore.domain_key("riskstrat/mart").material.decode()
    seen = ""
    for sql in ("SELECT * FROM duckdb_databases()", "SELECT * FROM duckdb_settings()",
                "SHOW ALL TABLES", "SELECT * FROM duckdb_tables()"):
        seen += str(run_query(settings, keystore, "super-user", sql, audit).table.to_pylist())
    seen += settings.audit_log.read_text()
    for key in [*keys, mart_key]:
        assert key not in seen and key.upper() not in seen


def test_publishing_switches_atomically_and_shreds_old_generations(linked):
    settings, keystore, _ = linked
    audit = AuditLog(settings.audit_log)
    reader, _ = open_marts(settings, keystore, "analyst")  # a reader on the current generation
    first = current_mart(settings.marts_dir, "person")
    publish(settings, keystore, audit)
    publish(settings, keystore, audit)
    third = current_mart(settings.marts_dir, "person")
    assert third["file"] != first["file"]
    assert reader.execute("SELECT count(*) FROM people").fetchone()[0] == third["tables"]["people"]
    reader.close()
    files = sorted((settings.marts_dir / "person").glob("*.duckdb"))
    assert len(files) == 2 and files[-1].name == third["file"].split("/")[-1]
    assert not (settings.marts_dir / first["file"]).exists()
    with pytest.raises(KeystoreError):
        keystore.data_key(first["key"])  # the old generation is crypto-shredded


def test_a_mart_that_breaks_its_contract_is_not_published(linked, tmp_path):
    settings, keystore, _ = linked
    contracts = tmp_path / "contracts"
    shutil.copytree(settings.contracts_dir, contracts)
    person = contracts / "marts" / "person.odcs.yaml"
    person.write_text(person.read_text().replace(
        "  - {name: bnf_chapters,", "  - {name: frailty_index, logicalType: number, physicalType: DOUBLE, "
        "classification: attribute, description: Not built.}\n  - {name: bnf_chapters,"))
    broken = settings.model_copy(update={"contracts_dir": contracts})
    before = current_mart(settings.marts_dir, "person")
    with pytest.raises(ContractError, match="frailty_index"):
        publish(broken, keystore, AuditLog(settings.audit_log))
    assert current_mart(settings.marts_dir, "person") == before  # readers still get the last good mart
    publish(settings, keystore, AuditLog(settings.audit_log))  # the next good run cleans up the orphan
    assert len(list((settings.marts_dir / "person").glob("*.duckdb"))) == 2
    person.write_text(person.read_text().replace("access: read", "access: write"))
    with pytest.raises(ContractError, match="access: read"):
        load_mart_contracts(contracts)
