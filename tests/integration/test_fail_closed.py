"""Deliveries fail closed (issue 17): stale opt-out lists whatever the as-of, duplicate content,
repeated primary keys, undecodable bytes, edited contracts and headerless files are each
quarantined or refused with a message that names the file, column and rule, never a value."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
import yaml

from pipeline.audit import AuditLog
from pipeline.errors import ContractError, OptOutListStale
from pipeline.ingest.gate import ValidationGate
from pipeline.ingest.ingest import Ingestor
from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.synth import EXTRACT_DATE
from tests.conftest import CONTRACTS, ECDS_ROW

LISTS = ["postcode_lookup", "ndoo", "type1_optout"]


def ingest(settings, feeds):
    return Ingestor(settings, open_keystore(settings, create_demo=True, roles=ALL_ROLES)).ingest_all(feeds)


def keep_only(landing, feed: str, names: tuple[str, ...]) -> None:
    """Leave only these deliveries of a feed in landing (the property does not need the rest)."""
    for path in (landing / feed).glob("*.csv"):
        if path.name not in names:
            path.unlink()


SPELLS = ("sus_apc_spells_2024-01_v1.csv", "sus_apc_spells_2024-02_v1.csv", "sus_apc_spells_2024-03_v1.csv")


def _date_the_ndoo_list(settings, day: dt.date) -> None:
    """Make the landing NDOO list one dated ``day`` (as if it were delivered then)."""
    folder = settings.landing / "ndoo"
    (path,) = folder.glob("ndoo_list_*.csv")
    path.rename(folder / f"ndoo_list_{day.isoformat()}_v1.csv")


def test_a_stale_opt_out_list_is_refused_whatever_the_as_of(population_copy):
    """Item 3: --as-of 2026-04-15 made a list 232 days old look 20 days old."""
    _date_the_ndoo_list(population_copy, EXTRACT_DATE)
    real_age = (dt.date.today() - EXTRACT_DATE).days
    assert real_age > 35, "this test needs the wall clock more than 35 days after the synthetic extract date"
    ingest(population_copy, LISTS)
    with pytest.raises(OptOutListStale) as exc:
        ingest(population_copy, ["sus_apc"])
    assert f"{real_age} days old" in str(exc.value) and "allows 35" in str(exc.value)
    assert "--accept-stale-opt-outs" in str(exc.value)
    assert not (population_copy.staging / "sus_apc").exists()


def test_an_ig_override_lets_a_stale_list_through_audited_and_shown(population_copy):
    from pipeline.report.evidence import collect_evidence

    _date_the_ndoo_list(population_copy, EXTRACT_DATE)
    keep_only(population_copy.landing, "sus_apc", SPELLS)
    ingest(population_copy, LISTS)
    reason = "IG lead J. Bloggs: list refresh delayed by supplier, ticket IG-42"
    settings = population_copy.model_copy(update={"stale_opt_out_override": reason})
    results = ingest(settings, ["sus_apc"])
    assert {r.status for r in results} == {"staged"}
    manifest = json.loads(next((settings.staging / "sus_apc").rglob("*.manifest.json")).read_text())
    ndoo = manifest["opt_out_lists"]["ndoo"]
    assert ndoo["age_days"] == (dt.date.today() - EXTRACT_DATE).days and ndoo["max_age_days"] == 35
    assert ndoo["override"] == reason and manifest["as_of"] == EXTRACT_DATE.isoformat()
    events = [e for e in AuditLog(settings.audit_log).entries() if e.event == "opt_out.stale_list_accepted"]
    assert len(events) == 1 and events[0].details["reason"] == reason
    assert events[0].details["as_of"] == EXTRACT_DATE.isoformat()
    pack = collect_evidence(settings)
    objections = next(c for c in pack.checklist if c["control"].startswith("Objections respected"))
    assert not objections["passed"] and "override" in objections["evidence"]


def test_the_as_of_is_recorded_in_the_audit_log_manifests_and_receipts(population_copy):
    ingest(population_copy, LISTS)
    entries = list(AuditLog(population_copy.audit_log).entries())
    assert entries and all(e.details.get("as_of") == EXTRACT_DATE.isoformat() for e in entries)
    manifest = json.loads(next((population_copy.staging / "ndoo").rglob("*.manifest.json")).read_text())
    assert manifest["as_of"] == EXTRACT_DATE.isoformat()
    receipt = json.loads(next((population_copy.validation_dir / "receipts" / "ndoo").glob("*.json")).read_text())
    assert receipt["as_of"] == EXTRACT_DATE.isoformat()


def test_the_same_content_under_a_new_name_is_quarantined_naming_the_earlier_delivery(population_copy):
    """Item 4: the same file under a new period name was staged and loaded twice."""
    keep_only(population_copy.landing, "sus_apc", SPELLS)
    ingest(population_copy, LISTS + ["sus_apc"])
    original = population_copy.landing / "sus_apc" / "sus_apc_spells_2024-01_v1.csv"
    copy = original.with_name("sus_apc_spells_2022-01_v1.csv")
    shutil.copy(original, copy)
    (result,) = [r for r in ingest(population_copy, ["sus_apc"]) if r.status != "skipped"]
    assert result.status == "quarantined" and result.file == copy.name
    (reason,) = result.reasons
    assert "sus_apc/sus_apc_spells/2024-01/v1" in reason and "same content" in reason
    assert not list((population_copy.staging / "sus_apc").rglob("*2022-01*"))
    assert list((population_copy.quarantine / "sus_apc").glob(f"*{copy.name}"))


def test_a_repeated_primary_key_is_quarantined_with_the_column_and_the_count(settings, make_delivery):
    """Item 4: a file whose primaryKey column repeats every value passed with exit 0."""
    rows = [dict(ECDS_ROW) for _ in range(5)]
    rows.append(dict(ECDS_ROW, attendance_id="AE000000002"))
    path = make_delivery("ecds", "ecds_attendances_2025-06_v1.csv", rows)
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed
    (reason,) = [r for r in result.reasons if "primary key" in r]
    assert "'attendance_id'" in reason and "4 row(s)" in reason and "AE000000001" not in reason
    record = json.loads(next((settings.quarantine / "ecds").glob("*.reason.json")).read_text())
    assert "AE000000001" not in json.dumps(record) and "AE000000001" not in settings.audit_log.read_text()


def test_an_undecodable_byte_quarantines_that_delivery_and_the_run_goes_on(population_copy):
    """Item 6: one latin-1 byte on row 4 aborted the whole run and quarantined nothing."""
    keep_only(population_copy.landing, "sus_apc", SPELLS)
    path = population_copy.landing / "sus_apc" / "sus_apc_spells_2024-01_v1.csv"
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b",", b",Caf\xe9 ", 1)  # row 4, a byte latin-1 has and UTF-8 refuses
    path.write_bytes(b"\n".join(lines))
    results = ingest(population_copy, LISTS + ["sus_apc"])
    bad = [r for r in results if r.status == "quarantined"]
    assert [r.file for r in bad] == [path.name]
    (reason,) = bad[0].reasons
    assert "row 4" in reason and "UTF-8" in reason and "latin-1" in reason.lower()
    assert "Caf" not in reason
    assert sum(r.status == "staged" for r in results) == len(results) - 1
    assert list((population_copy.quarantine / "sus_apc").glob(f"*{path.name}"))


def test_an_edited_contract_must_change_its_version_and_manifests_hold_its_hash(population_copy, tmp_path):
    """Item 7: an edited contract kept 'ecds@1.1.0'; nothing recorded which rules were applied."""
    import hashlib

    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, contracts)
    settings = population_copy.model_copy(update={"contracts_dir": contracts})
    ingest(settings, LISTS + ["ecds"])
    text = (contracts / "ecds.odcs.yaml").read_bytes()
    manifest = json.loads(next((settings.staging / "ecds").rglob("*.manifest.json")).read_text())
    assert manifest["contract"]["sha256"] == hashlib.sha256(text).hexdigest()
    receipt = json.loads(next((settings.validation_dir / "receipts" / "ecds").glob("*.json")).read_text())
    assert receipt["contract_sha256"] == manifest["contract"]["sha256"]
    doc = yaml.safe_load(text)
    doc["description"]["purpose"] = doc["description"]["purpose"] + " Edited."
    (contracts / "ecds.odcs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    extra = settings.landing / "ecds" / "ecds_attendances_2022-01_v1.csv"
    extra.write_text(",".join(ECDS_ROW) + "\n" + ",".join(ECDS_ROW.values()) + "\n")
    with pytest.raises(ContractError) as exc:
        ingest(settings, ["ecds"])
    message = str(exc.value)
    assert "ecds.odcs.yaml" in message and "1.1.0" in message and "bump" in message.lower()
    assert extra.exists() and not list((settings.staging / "ecds").rglob("*2022-01*"))
    doc["version"] = "1.1.1"
    (contracts / "ecds.odcs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    assert {r.status for r in ingest(settings, ["ecds"])} <= {"staged", "skipped", "quarantined"}


def test_a_headerless_delivery_never_echoes_its_first_row(settings, make_delivery):
    """Item 10: record ids and practice codes of row 1 went to the console, log, reason file
    and the audit log as 'undeclared columns'."""
    values = dict(ECDS_ROW, attendance_id="AE000777123", gp_practice_code="F81001", provider_code="RQ8")
    path = settings.landing / "ecds" / "ecds_attendances_2025-07_v1.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(values.values()) for _ in range(3)) + "\n")
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed
    text = " ".join(result.reasons)
    assert "no header" in text
    record = next((settings.quarantine / "ecds").glob("*.reason.json")).read_text()
    for value in ("AE000777123", "F81001", "RQ8", "fell at home", "2025-06-01"):
        assert value not in text and value not in record and value not in settings.audit_log.read_text()
