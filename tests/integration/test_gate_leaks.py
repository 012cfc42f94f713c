"""Security property 1 for the validation gate: no value from a delivery reaches validation
results, Data Docs, receipts, reason files or the audit log, even for failing deliveries."""

import csv
import re

import pytest

from pipeline.ingest.deliveries import find_deliveries
from pipeline.ingest.gate import ValidationGate

NHS_LIKE = re.compile(r"\d{3}[ -]?\d{3}[ -]?\d{4}")


def _identifiers(landing):
    """Every NHS number (digits only), postcode, date of birth and name in the deliveries."""
    nhs, postcodes, dobs, names = set(), set(), set(), set()
    for path in landing.rglob("*.csv"):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("nhs_number"):
                    nhs.add(re.sub(r"\D", "", row["nhs_number"]))
                if row.get("postcode"):
                    postcodes.add(row["postcode"].upper().replace(" ", ""))
                if row.get("date_of_birth"):
                    dobs.add(row["date_of_birth"])
                for col in ("patient_name", "client_name"):
                    if row.get(col):
                        names.add(row[col])
    # Placeholders (repdigits) are not identifiers, and a date that is also a delivery period
    # (a baby born on 2024-03-31) legitimately appears in delivery ids: leave both out.
    nhs = {n for n in nhs if len(set(n)) > 1}
    periods = {p.stem.split("_")[-2] for p in landing.rglob("*.csv")}
    dobs -= periods
    return nhs, postcodes, dobs, names


def _scan(folder, nhs, postcodes, dobs, names):
    """Every identifier from the deliveries found in a file under ``folder``, with context."""
    leaks = []
    for path in folder.rglob("*"):
        if not path.is_file() or path.suffix in {".otf", ".png", ".gif", ".ico", ".ttf", ".woff", ".woff2"}:
            continue
        leaks += [(path.name, hit) for hit in _scan_file_text(path.read_text(errors="ignore"), nhs, postcodes, dobs, names)]
    return leaks


def _context(text, start, end):
    return text[max(0, start - 40) : end + 10]


@pytest.mark.slow
def test_validation_results_data_docs_receipts_reasons_and_audit_hold_no_identifiers(population_copy):
    settings = population_copy
    landing = settings.landing
    # Make some deliveries fail on identifier columns so failing values exist to leak.
    spells = sorted((landing / "sus_apc").glob("*.csv"))
    for path in spells[:2]:
        text = path.read_text().splitlines()
        header = text[0].split(",")
        g = header.index("gender")
        rows = [line.split(",") for line in text[1:]]
        for r in rows[::3]:
            r[g] = r[header.index("nhs_number")]  # an NHS number where a gender code belongs
        path.write_text("\n".join([text[0]] + [",".join(r) for r in rows]) + "\n")
    with open(landing / "ecds" / min(p.name for p in (landing / "ecds").glob("*.csv")), "a") as fh:
        fh.write("AE9,R9Z,943 476 5919,1956-03-12,SS1 2AB,2,2025-06-01,01,3,N,x,S90001,spare\n")
    nhs, postcodes, dobs, names = _identifiers(landing)
    assert len(nhs) > 1000 and len(names) > 500

    gate = ValidationGate(settings)
    deliveries = find_deliveries(landing, ["sus_apc", "ecds", "asc", "gp", "ndoo"])
    # The three made to fail (the first deliveries by name) and the two after them in each feed.
    deliveries = [d for d in deliveries if d.path.name in {p.name for p in sorted(d.path.parent.glob("*.csv"))[:3]}]
    assert 10 <= len(deliveries) <= 15
    results = [gate.validate(d.path, d.feed) for d in deliveries]
    assert sum(not r.passed for r in results) == 3
    docs = gate.build_data_docs()
    assert docs.exists()
    assert any(settings.validation_dir.rglob("*.json"))
    for folder in (settings.validation_dir, settings.audit_dir):
        assert _scan(folder, nhs, postcodes, dobs, names) == []
    reason_files = list(settings.quarantine.rglob("*.reason.json"))
    assert len(reason_files) == 3
    for reason in reason_files:
        assert _scan_file_text(reason.read_text(), nhs, postcodes, dobs, names) == []


def _scan_file_text(text, nhs, postcodes, dobs, names):
    hits = []
    for m in NHS_LIKE.finditer(text):
        if re.sub(r"\D", "", m.group()) in nhs:
            hits.append(("nhs_number", _context(text, m.start(), m.end())))
    squashed = text.upper().replace(" ", "")
    hits += [("postcode", p) for p in postcodes if len(p) >= 5 and p in squashed]
    for value in dobs | names:
        i = text.find(value)
        if i >= 0:
            hits.append(("value", _context(text, i, i + len(value))))
    return hits
