"""Retention on three years of deliveries, with the clock moved to 2029-06-01.

The synthetic population has activity from April 2023 to March 2026 (plus GP diagnoses going
back twenty years), ingested, linked and stratified. Moving the clock makes the first year of
five-year feeds and every GP diagnosis older than ten years due. The tests count what is due
the obvious way (SQL on a copy of the old warehouse), then check the run against it: the rows
are gone from every readable file, the old keys are destroyed, a copy of the old warehouse file
kept aside can no longer be opened, and the certificate matches the counts.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from pipeline.audit import AuditLog
from pipeline.errors import KeystoreError
from pipeline.ingest.staging import read_staged
from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.linkage import open_warehouse
from pipeline.linkage.warehouse import connect
from pipeline.retention.certificate import certificates_dir
from pipeline.retention.plan import make_plan
from pipeline.retention.run import journal_path, run_retention
from pipeline.retention.verify import verify_certificates
from pipeline.settings import Settings
from tests.conftest import stratified_copy
from tests.leakscan import Needles

AS_OF = dt.date(2029, 6, 1)
#: The activity date and record id of every five-year feed table, and GP diagnoses (ten years).
DATED = {"stg_sus_apc_spells": ("admission_date", "spell_id", 5), "stg_sus_op_attendances": (
    "appointment_date", "attendance_id", 5), "stg_ecds_attendances": ("arrival_date", "attendance_id", 5),
    "stg_csds_contacts": ("contact_date", "contact_id", 5), "stg_mhsds_contacts": ("contact_date", "contact_id", 5),
    "stg_asc_services": ("start_date", "service_id", 5), "stg_gp_ltc_diagnoses": ("diagnosis_date", None, 10)}


def _copy(linked, tmp_path: Path, contracts: Path | None = None) -> tuple[Settings, object]:
    settings0, _, _ = linked
    root = tmp_path / "data"
    shutil.copytree(settings0.data_root, root)
    settings = Settings(data_root=root, contracts_dir=contracts or settings0.contracts_dir, as_of=AS_OF,
                        allow_synthetic_nhs_numbers=True)
    return settings, open_keystore(settings, create_demo=True, roles=ALL_ROLES)


def _due_the_obvious_way(settings, keystore) -> tuple[dict[str, int], set[str]]:
    """Rows due per table and the record ids of the due rows, straight from the warehouse."""
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        counts, ids = {}, set()
        for table, (column, record_id, years) in DATED.items():
            cutoff = AS_OF.replace(year=AS_OF.year - years)
            counts[table] = con.execute(f"SELECT count(*) FROM {table} WHERE {column} < ?", [cutoff]).fetchone()[0]
            if record_id:
                ids |= {r[0] for r in con.execute(f"SELECT {record_id} FROM {table} WHERE {column} < ?",
                                                  [cutoff]).fetchall()}
        return counts, ids
    finally:
        con.close()


def _readable_texts(settings, keystore):
    """(file, text) for everything a person with this keystore can read under the data root:
    every file's bytes, and every table and staged file whose key still exists, decrypted."""
    for path in sorted(p for p in settings.data_root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(settings.data_root))
        yield rel, path.read_bytes().decode("latin-1")
        if path.suffix == ".duckdb":
            name = path.stem if path.parent == settings.warehouse_dir else \
                f"mart-{path.parent.name}-{path.stem.removeprefix(path.parent.name + '-')}"
            try:
                key = keystore.data_key(name)
            except KeystoreError:
                continue
            con = connect()
            con.execute(f"ATTACH '{path}' AS f (ENCRYPTION_KEY $k, READ_ONLY)", {"k": key.hex()})
            for (table,) in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_catalog = 'f'").fetchall():
                rows = con.execute(f'SELECT COLUMNS(*)::VARCHAR FROM f."{table}"').fetchall()
                yield f"{rel}:{table}", "\n".join("\t".join(map(str, r)) for r in rows)
            con.close()
        elif path.suffix == ".parquet" and settings.staging in path.parents:
            try:
                table = read_staged(settings.staging, path, keystore)
            except KeystoreError:
                continue
            yield f"{rel}:decrypted", "\n".join(str(v) for c in table.columns for v in c.to_pylist())


@pytest.fixture(scope="module")
def retained(linked, stratified, tmp_path_factory):
    """A stratified copy, its due counts taken the obvious way, then one retention run."""
    settings0, _, _ = linked
    _s, *_ = stratified_copy(stratified, tmp_path_factory, "retained")
    settings = Settings(data_root=_s.data_root, contracts_dir=settings0.contracts_dir, as_of=AS_OF,
                        allow_synthetic_nhs_numbers=True)
    keystore = open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    aside = tmp_path_factory.mktemp("aside")
    old = open_warehouse(settings, keystore).current()
    shutil.copy2(settings.warehouse_dir / old["file"], aside / "old-warehouse.duckdb")
    staged = min((settings.staging / "sus_apc").rglob("*.parquet"))
    shutil.copy2(staged, aside / "old-staged.parquet")
    counts, ids = _due_the_obvious_way(settings, keystore)
    quarantined = settings.quarantine / "sus_op" / "20261123T000000000000Z__sus_op_attendances_2026-03_v9.csv"
    quarantined.parent.mkdir(parents=True, exist_ok=True)  # a rejected delivery, identifiable, kept whole
    shutil.copy2(min((settings0.data_root / "landing" / "sus_op").glob("*.csv")), quarantined)
    quarantined.with_name(quarantined.name + ".reason.json").write_text(json.dumps(
        {"validated_at": "2026-11-23T00:00:00+00:00", "reasons": ["an undeclared column"]}))
    marts_before = sorted(str(p.relative_to(settings.data_root)) for p in settings.marts_dir.rglob("*.duckdb"))
    cert = run_retention(settings, keystore, AuditLog(settings.audit_log), AS_OF)
    return {"settings": settings, "keystore": keystore, "cert": cert, "counts": counts, "ids": ids,
            "aside": aside, "old": old, "staged": staged, "marts_before": marts_before, "quarantined": quarantined}


def test_the_certificate_matches_the_counts(retained):
    cert, counts = retained["cert"], retained["counts"]
    assert cert["verification"]["passed"], cert["verification"]
    assert sum(counts.values()) > 1000 and all(counts.values())  # every dated table had rows due
    rebuild = cert["warehouse"]
    for table, due in counts.items():
        assert rebuild["rows_before"][table] - rebuild["rows_after"][table] == due, table
    by_feed = {d["feed"]: d["rows"] for d in cert["destroyed"] if d["what"] == "warehouse records"}
    assert sum(by_feed.values()) == sum(counts.values()) == cert["totals"]["records"]
    assert by_feed["gp"] == counts["stg_gp_ltc_diagnoses"]
    assert cert["totals"]["record_ids"] == len(retained["ids"])
    line = next(d for d in cert["destroyed"] if d["feed"] == "sus_apc" and d["what"] == "warehouse records")
    assert (line["approved_by"], line["approval_reference"]) == ("Information Governance Lead, Essex CSU",
                                                                 "IGA-2026-850")
    assert line["period_to"] < "2024-06-01" and line["policy"].startswith("records 5 years")


def test_due_rows_are_gone_from_every_readable_file(retained):
    settings, keystore, ids = retained["settings"], retained["keystore"], retained["ids"]
    assert len(ids) > 1000
    texts, needles = 0, Needles(ids)
    for where, text in _readable_texts(settings, keystore):
        texts += 1
        found = needles.found_in(text)
        assert not found, f"{where} still holds {len(found)} destroyed record id(s)"
    assert texts > 50
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        for table, (column, _, years) in DATED.items():
            cutoff = AS_OF.replace(year=AS_OF.year - years)
            assert con.execute(f"SELECT count(*) FROM {table} WHERE {column} < ?", [cutoff]).fetchone()[0] == 0
            assert con.execute(f"SELECT count(*) FROM {table} WHERE {column} >= ?", [cutoff]).fetchone()[0] > 0
    finally:
        con.close()


def test_the_scan_would_have_found_a_copy(retained, tmp_path):
    """The test's own search is not vacuous: a record id written into any file is found."""
    settings = retained["settings"]
    planted = tmp_path / "data"
    shutil.copytree(settings.data_root, planted)
    (planted / "reports" / "note.txt").write_text(f"see {min(retained['ids'])}\n")
    copy = Settings(data_root=planted, contracts_dir=settings.contracts_dir, allow_synthetic_nhs_numbers=True)
    hits = [w for w, text in _readable_texts(copy, open_keystore(copy, create_demo=True, roles=ALL_ROLES)) if min(retained["ids"]) in text]
    assert hits == ["reports/note.txt"]


def test_a_quarantined_delivery_goes_after_its_landing_period_and_its_reason_stays(retained):
    quarantined, cert = retained["quarantined"], retained["cert"]
    assert not quarantined.exists()
    reason = json.loads(quarantined.with_name(quarantined.name + ".reason.json").read_text())
    assert reason["destroyed"] == cert["certificate"]
    assert str(quarantined.relative_to(retained["settings"].data_root)) in cert["files_removed"]


def test_expired_case_finding_packs_are_destroyed_under_the_person_mart_contract(retained):
    settings, cert = retained["settings"], retained["cert"]
    line = next(d for d in cert["destroyed"] if d["what"] == "case-finding packs")
    assert line["files"] > 0 and line["policy"].startswith("case-finding packs kept after they expire: 30 days")
    assert line["approved_by"] == "ig-lead"
    assert not list(settings.case_finding_dir.rglob("*.csv"))


def test_old_keys_are_destroyed_and_a_copy_kept_aside_cannot_be_opened(retained):
    settings, keystore, aside, old = retained["settings"], retained["keystore"], retained["aside"], retained["old"]
    old_key = f"warehouse-g{old['generation']}"
    assert old_key in retained["cert"]["keys_destroyed"]
    with pytest.raises(KeystoreError):
        keystore.data_key(old_key)
    assert not (settings.warehouse_dir / old["file"]).exists()
    store = json.loads(settings.keystore_path.read_text())["data_keys"][old_key]
    assert store["status"] == "destroyed" and "ciphertext" not in store
    con = connect()
    with pytest.raises(duckdb.Error):  # without its key, the copy is ciphertext
        con.execute(f"ATTACH '{aside / 'old-warehouse.duckdb'}' AS old (READ_ONLY)")
    con.close()
    with pytest.raises(KeystoreError):
        read_staged(settings.staging, retained["staged"], keystore)  # its key went with the file
    assert not retained["staged"].exists()
    new = open_warehouse(settings, keystore).current()
    assert new["generation"] > old["generation"] and new["rebuilt_from"] == old["generation"]


def test_the_marts_are_rebuilt_and_superseded_ones_shredded(retained):
    settings, keystore, cert = retained["settings"], retained["keystore"], retained["cert"]
    now = sorted(str(p.relative_to(settings.data_root)) for p in settings.marts_dir.rglob("*.duckdb"))
    assert len(now) == 3 and not set(now) & set(retained["marts_before"])
    assert set(retained["marts_before"]) <= set(cert["files_removed"])
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        people = con.execute("SELECT count(*) FROM spine").fetchone()[0]
        scored_off_spine = con.execute("SELECT count(*) FROM risk_scores WHERE person_pid NOT IN "
                                       "(SELECT person_pid FROM spine)").fetchone()[0]
    finally:
        con.close()
    assert people == cert["warehouse"]["people_after"] and scored_off_spine == 0


def test_the_certificate_is_signed_audited_and_readable(retained):
    settings, keystore, cert = retained["settings"], retained["keystore"], retained["cert"]
    folder = certificates_dir(settings)
    page = (folder / f"{cert['certificate']}.html").read_text()
    assert "Certificate of destruction" in page and "IGA-2026-850" in page
    audit = AuditLog(settings.audit_log)
    assert audit.verify().ok
    entry = next(e for e in audit.entries() if e.event == "retention.destroyed")
    assert entry.details["certificate"] == cert["certificate"] and entry.details["verification"] == "passed"
    assert [r["problems"] for r in verify_certificates(settings, keystore, audit)] == [[]]
    assert not journal_path(settings).exists()
    assert f"retention-{cert['certificate']}" in json.loads(settings.keystore_path.read_text())["data_keys"]
    with pytest.raises(KeystoreError):
        keystore.data_key(f"retention-{cert['certificate']}")  # the run's own list of ids: destroyed too


def test_the_certificate_page_opens_in_a_browser(retained, tmp_path):
    import re

    from tests.browser import render

    settings, cert = retained["settings"], retained["cert"]
    page = certificates_dir(settings) / f"{cert['certificate']}.html"
    assert "<script" not in page.read_text() and not re.search(r"(src|href)=[\"']?(https?:)?//", page.read_text())
    dom, png = render(page, tmp_path)
    assert "Certificate of destruction" in dom and "What was destroyed" in dom and "Keys destroyed" in dom
    assert f"{cert['totals']['records']:,}" in dom and "passed" in dom and "IGA-2026-850" in dom
    assert not [i for i in retained["ids"] if i in dom]
    assert len(png) > 20_000


def test_an_edited_certificate_is_caught(retained, tmp_path):
    settings = retained["settings"]
    copy = tmp_path / "data"
    shutil.copytree(settings.data_root, copy)
    moved = Settings(data_root=copy, contracts_dir=settings.contracts_dir, allow_synthetic_nhs_numbers=True)
    path = certificates_dir(moved) / f"{retained['cert']['certificate']}.json"
    doc = json.loads(path.read_text())
    doc["totals"]["records"] -= 1
    path.write_text(json.dumps(doc))
    problems = verify_certificates(moved, open_keystore(moved, create_demo=True, roles=ALL_ROLES), AuditLog(moved.audit_log))[0]["problems"]
    assert any("signature" in p for p in problems) and any("SHA-256" in p for p in problems)


def test_a_second_run_finds_nothing_due(retained):
    settings, keystore = retained["settings"], retained["keystore"]
    plan = make_plan(settings, keystore, AS_OF)
    assert plan.due() == []


def _contracts_with(tmp_path: Path, source: Path, changes: dict) -> Path:
    folder = tmp_path / "contracts"
    shutil.copytree(source, folder)
    for feed, change in changes.items():
        path = folder / f"{feed}.odcs.yaml"
        doc = yaml.safe_load(path.read_text())
        change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def _hold(doc: dict) -> None:
    prop = next(p for p in doc["customProperties"] if p["property"] == "retentionPolicy")
    prop["value"]["legalHolds"] = [{"reference": "LH-2029-001", "reason": "Coroner's inquest: preserve all records",
                                    "placedBy": "Caldicott Guardian", "placed": "2029-01-10"},
                                   {"reference": "LH-2027-004", "reason": "Complaint investigation, now closed",
                                    "placedBy": "Caldicott Guardian", "placed": "2027-01-10", "lifted": "2027-06-01"}]


def _draft(doc: dict) -> None:
    doc["status"] = "draft"


def test_a_legal_hold_and_an_unapproved_feed_stop_destruction_and_are_reported(linked, tmp_path):
    settings0, _, _ = linked
    contracts = _contracts_with(tmp_path, settings0.contracts_dir, {"sus_apc": _hold, "ecds": _draft})
    settings, keystore = _copy(linked, tmp_path, contracts)
    staged = sorted(str(p) for p in settings.staging.rglob("*.parquet"))
    held = {feed: sorted(p for p in staged if f"/staging/{feed}/" in p) for feed in ("sus_apc", "ecds")}
    raw = {feed: sorted(p.name for p in (settings.landing / feed).glob("*.csv")) for feed in ("sus_apc", "ecds")}
    counts, _ = _due_the_obvious_way(settings, keystore)

    plan = make_plan(settings, keystore, AS_OF)
    status = {(i.feed, i.kind): i.status for i in plan.items}
    assert status[("sus_apc", "warehouse-rows")] == "held" and status[("ecds", "warehouse-rows")] == "not-approved"
    reason = next(i.reason for i in plan.items if i.feed == "sus_apc")
    assert "LH-2029-001" in reason and "LH-2027-004" not in reason  # a lifted hold holds nothing
    assert "status" in next(i.reason for i in plan.items if i.feed == "ecds")

    cert = run_retention(settings, keystore, AuditLog(settings.audit_log), AS_OF)
    assert cert["verification"]["passed"]
    assert {d["feed"] for d in cert["destroyed"]}.isdisjoint({"sus_apc", "ecds"})
    reported = {(r["feed"], r["status"]) for r in cert["reported"]}
    assert ("sus_apc", "held") in reported and ("ecds", "not-approved") in reported
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        after = {t: con.execute(f"SELECT count(*) FROM {t} WHERE {c} < ?",
                                [AS_OF.replace(year=AS_OF.year - y)]).fetchone()[0] for t, (c, _, y) in DATED.items()}
    finally:
        con.close()
    assert after["stg_sus_apc_spells"] == counts["stg_sus_apc_spells"] > 0
    assert after["stg_ecds_attendances"] == counts["stg_ecds_attendances"] > 0
    assert after["stg_csds_contacts"] == 0  # the others went
    for feed in ("sus_apc", "ecds"):  # files and keys untouched
        assert sorted(str(p) for p in settings.staging.rglob("*.parquet") if f"/staging/{feed}/" in str(p)) == held[feed]
        assert sorted(p.name for p in (settings.landing / feed).glob("*.csv")) == raw[feed]
        read_staged(settings.staging, Path(held[feed][0]), keystore)


def test_the_library_scan_finds_every_form_of_a_destroyed_pseudonym(retained):
    """Pretend someone still in the data was destroyed: the scan must find their warehouse
    pseudonym (decrypted warehouse), mart pseudonym (decrypted person mart), pack display form
    (plaintext pack CSV) and a record id, and fail."""
    from pipeline.retention.verify import scan

    settings, keystore = retained["settings"], retained["keystore"]
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        pid, spell = con.execute("SELECT s.person_pid, s.spell_id FROM stg_sus_apc_spells s JOIN risk_scores r "
                                 "USING (person_pid) WHERE r.tier IN ('very-high', 'high') LIMIT 1").fetchone()
    finally:
        con.close()
    from pipeline.risk.packs import pack_pseudonyms

    shown = pack_pseudonyms(pl.Series([pid]), keystore)[0]
    note = settings.reports_dir / "call-list.csv"  # a pack-like list someone saved
    note.write_text(f"pseudonym,tier\n{shown},high\n")
    try:
        result = scan(settings, keystore, {"pseudonym": [pid], "record id": [spell]}, [], [], [])
    finally:
        note.unlink()
    assert not result["passed"] and result["forms_sought"] == 4
    where = {(m["file"].split("/")[0], m["how"]) for m in result["matches"]}
    assert {("warehouse", "decrypted"), ("marts", "decrypted"), ("reports", "plaintext")} <= where


def test_a_warehouse_written_between_rebuild_and_switch_is_rebuilt_again(linked, tmp_path, monkeypatch):
    """A crash after the rebuild and before the switch, then a link run writing the old
    generation: the resumed run must not switch to a rebuild that lacks the new rows."""
    from pipeline.retention import run

    settings, keystore = _copy(linked, tmp_path)
    warehouse = open_warehouse(settings, keystore)
    real = run.write_json_atomic

    def crash_at_switch(path, doc):
        if Path(path) == warehouse.pointer:
            raise KeyboardInterrupt("killed at the switch")
        real(path, doc)

    monkeypatch.setattr(run, "write_json_atomic", crash_at_switch)
    with pytest.raises(KeyboardInterrupt):
        run_retention(settings, keystore, AuditLog(settings.audit_log), AS_OF)
    monkeypatch.setattr(run, "write_json_atomic", real)
    assert "rebuilt" in json.loads(journal_path(settings).read_text())["phases"]
    con = warehouse.open(create=False)  # meanwhile a link run loads a late record into the old generation
    try:
        con.execute("INSERT INTO stg_sus_apc_spells SELECT * REPLACE ('LATE000000001' AS spell_id, "
                    "DATE '2026-03-31' AS admission_date) FROM stg_sus_apc_spells LIMIT 1")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    cert = run_retention(settings, keystore, AuditLog(settings.audit_log), AS_OF)
    assert cert["verification"]["passed"]
    con = warehouse.open(create=False)
    try:
        assert con.execute("SELECT count(*) FROM stg_sus_apc_spells WHERE spell_id = 'LATE000000001'").fetchone()[0] == 1
    finally:
        con.close()
