"""The evidence pack on a fresh data root, and its refusal to show anything identifier-shaped."""

import json

import pytest

from pipeline.errors import ReportRefused
from pipeline.report.evidence import build_evidence_pack


def test_a_fresh_root_gets_a_pack_that_says_nothing_has_happened_yet(settings):
    paths = build_evidence_pack(settings)
    pack = paths["pack"]
    assert pack.audit["ok"] and pack.audit["entries"] == 0
    assert len(pack.contracts) == 11 and all(c["ok"] for c in pack.contracts)
    assert not pack.deliveries and not pack.releases and not pack.certificates
    page = paths["evidence"].read_text()
    assert "No linkage has run yet." in page and "Nothing has been published." in page
    assert "Nothing has been destroyed yet." in page
    checks = {c["control"]: c["passed"] for c in pack.checklist}
    assert checks["Legal basis recorded and current"] and checks["Destruction policy approved and proven"]
    assert paths["notice"].exists()


def test_an_identifier_shaped_value_stops_the_pack_before_anything_is_written(settings):
    reason = settings.quarantine / "gp" / "gp_registrations_2026-04-15_v1.csv.reason.json"
    reason.parent.mkdir(parents=True)
    # A reason that (wrongly) quotes a value: a valid-checksum NHS number shape.
    reason.write_text(json.dumps({"delivery": "gp/gp_registrations/2026-04-15/v1", "validated_at": "2026-04-15T00:00:00",
                                  "reasons": ["column 'nhs_number': bad value 943 476 5919"]}))
    with pytest.raises(ReportRefused, match="evidence pack"):
        build_evidence_pack(settings)
    assert not (settings.reports_dir / "evidence" / "index.html").exists()
    assert not (settings.reports_dir / "notice" / "index.html").exists()
