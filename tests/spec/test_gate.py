"""The validation gate, one change at a time: small deliveries in, a decision out."""

import json

import pytest

from pipeline.audit import AuditLog
from pipeline.errors import ContractExpired, DeliveryQuarantined
from pipeline.ingest.gate import ValidationGate
from tests.conftest import ECDS_ROW

NAME = "ecds_attendances_2025-06_v1.csv"


def rows(n=20, **change):
    out = []
    for i in range(n):
        row = dict(ECDS_ROW, attendance_id=f"AE{i:09d}")
        row.update(change)
        out.append(row)
    return out


def test_clean_delivery_passes_with_a_receipt_and_an_audit_entry(settings, make_delivery):
    path = make_delivery("ecds", NAME, rows())
    result = ValidationGate(settings).validate(path, "ecds")
    assert result.passed and result.rows == 20 and path.exists()
    with open(result.receipt) as fh:
        receipt = json.load(fh)
    assert receipt["rows"] == 20 and len(receipt["sha256"]) == 64
    events = [e.event for e in AuditLog(settings.audit_log).entries()]
    assert events == ["contract.checked", "contract.version_registered", "delivery.validated"]


def test_extra_column_quarantines_the_whole_delivery_naming_it(settings, make_delivery):
    data = rows()
    for r in data:
        r["patient_name"] = "Jean Smith"
    path = make_delivery("ecds", NAME, data)
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed and result.rows == 0  # nothing read past the header
    assert "undeclared column(s) 'patient_name'" in result.reasons[0]
    assert not path.exists()
    quarantined = settings.quarantine / "ecds"
    files = sorted(p.name for p in quarantined.iterdir())
    assert len(files) == 2 and files[0].endswith(NAME) and files[1].endswith(".reason.json")
    reason = (quarantined / files[1]).read_text()
    assert "patient_name" in reason and "Jean Smith" not in reason
    with pytest.raises(DeliveryQuarantined) as exc:
        result.raise_if_quarantined()
    assert "patient_name" in str(exc.value)
    assert [e.event for e in AuditLog(settings.audit_log).entries()][-1] == "delivery.quarantined"


def test_missing_required_column_is_named(settings, make_delivery):
    columns = [c for c in ECDS_ROW if c != "arrival_date"]
    path = make_delivery("ecds", NAME, rows(), columns)
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed
    assert "missing required column(s) 'arrival_date'" in result.reasons[0]


def test_a_header_that_looks_like_data_is_never_echoed(settings, make_delivery):
    path = settings.landing / "ecds" / NAME
    path.parent.mkdir(parents=True)
    path.write_text("AE1,R9Z,943 476 5919,1956-03-12,SS1 2AB,2\n")
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed
    text = json.dumps(result.reasons) + AuditLog(settings.audit_log).path.read_text()
    assert "943 476 5919" not in text and "SS1 2AB" not in text and "1956-03-12" not in text


def test_blocking_rule_failure_names_column_rule_and_counts(settings, make_delivery):
    data = rows(20)
    data[3]["gender"] = "Q"
    path = make_delivery("ecds", NAME, data)
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed
    (reason,) = result.reasons
    assert "column 'gender'" in reason and "rule 'gender_code'" in reason and "1 of 20" in reason
    assert "'Q'" not in reason


def test_percent_threshold_on_malformed_nhs_numbers(settings, make_delivery):
    data = rows(20)
    data[0]["nhs_number"] = "12345"  # 5% malformed: allowed (mustBeLessOrEqualTo 5)
    assert ValidationGate(settings).validate(make_delivery("ecds", NAME, data), "ecds").passed
    data[1]["nhs_number"] = "NOT KNOWN"  # 10%: blocks
    result = ValidationGate(settings).validate(make_delivery("ecds", NAME, data), "ecds")
    assert not result.passed and "rule 'nhs_number_format'" in result.reasons[0]


def test_warning_rule_is_recorded_but_does_not_block(settings, make_delivery):
    data = rows(20)
    data[0]["postcode"] = "NOWHERE"
    result = ValidationGate(settings).validate(make_delivery("ecds", NAME, data), "ecds")
    assert result.passed
    assert any("rule 'postcode_format'" in w for w in result.warnings)


def test_ragged_csv_is_quarantined_without_echoing_the_row(settings, make_delivery):
    path = make_delivery("ecds", NAME, rows(5))
    with open(path, "a") as fh:
        fh.write("AE9,R9Z,943 476 5919,1956-03-12,SS1 2AB,2,2025-06-01,01,3,N,notes,S90001,extra,extra\n")
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed and "could not be parsed" in result.reasons[0]
    assert "943 476 5919" not in json.dumps(result.reasons)


def test_rerun_after_a_fix_passes_and_earlier_good_data_is_untouched(settings, make_delivery):
    good = make_delivery("ecds", "ecds_attendances_2025-05_v1.csv", rows())
    gate = ValidationGate(settings)
    assert gate.validate(good, "ecds").passed
    bad_rows = rows()
    bad_rows[0]["acuity"] = "1"
    bad_rows[0]["admitted"] = "MAYBE"
    bad = make_delivery("ecds", NAME, bad_rows)
    assert not gate.validate(bad, "ecds").passed
    fixed = make_delivery("ecds", NAME, rows())  # the supplier re-sends it
    assert gate.validate(fixed, "ecds").passed
    assert good.exists() and fixed.exists()
    assert AuditLog(settings.audit_log).verify().ok


@pytest.mark.parametrize("engine", ["polars", "gx"])
def test_batches_sum_to_the_same_verdict_as_one_batch(settings, make_delivery, engine):
    data = rows(6000)
    for i in range(0, 6000, 97):
        data[i]["postcode"] = "NOWHERE"
    path = make_delivery("ecds", NAME, data)
    small = ValidationGate(settings.model_copy(update={"validation_batch_bytes": 64 * 1024,
                                                       "validation_engine": engine})).validate(path, "ecds")
    path = make_delivery("ecds", NAME, data)
    whole = ValidationGate(settings.model_copy(update={"validation_engine": engine})).validate(path, "ecds")
    assert small.batches > 5 and whole.batches == 1
    assert small.rows == whole.rows == 6000
    assert [(o.rule, o.failing, o.considered) for o in small.outcomes] == [
        (o.rule, o.failing, o.considered) for o in whole.outcomes
    ]


def test_expired_contract_reads_nothing_and_quarantines_nothing(settings, make_delivery):
    path = make_delivery("ecds", NAME, rows())
    late = settings.model_copy(update={"as_of": __import__("datetime").date(2027, 10, 1)})
    with pytest.raises(ContractExpired):
        ValidationGate(late).validate(path, "ecds")
    assert path.exists() and not settings.quarantine.exists()


def test_unknown_table_for_the_feed_is_quarantined(settings, make_delivery):
    path = make_delivery("ecds", "ecds_something_2025-06_v1.csv", rows())
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed and "not declared in contract 'ecds'" in result.reasons[0]


def test_a_misnamed_file_is_quarantined_and_does_not_block_the_others(settings, make_delivery):
    from pipeline.ingest.deliveries import find_delivery_files

    make_delivery("ecds", NAME, rows())
    odd = make_delivery("ecds", "A&E extract June.csv", rows())
    gate = ValidationGate(settings)
    results = {p.name: gate.validate(p, feed) for p, feed in find_delivery_files(settings.landing)}
    assert results[NAME].passed
    bad = results["A&E extract June.csv"]
    assert not bad.passed and "cannot identify delivery" in bad.reasons[0]
    assert not odd.exists() and bad.quarantined_to


# --- issue 18: every message names the file, column, rule, the accepted forms and the fix -------------
def _reasons(settings, path) -> str:
    result = ValidationGate(settings).validate(path, "ecds")
    assert not result.passed
    return "\n".join(result.reasons)


def test_a_date_failure_lists_the_accepted_formats_and_the_fix(settings, make_delivery):
    path = make_delivery("ecds", NAME, rows(arrival_date="01/06/2025"))
    text = _reasons(settings, path)
    assert "column 'arrival_date', rule 'arrival_date_format'" in text
    assert "Accepted: dates as YYYY-MM-DD (%Y-%m-%d)" in text
    assert "dateFormats" in text and "01/06/2025" not in text  # the fix, never the value


def test_a_code_failure_lists_the_codes_and_a_blank_required_column_says_so(settings, make_delivery):
    text = _reasons(settings, make_delivery("ecds", NAME, rows(department_type="7")))
    assert "Accepted: one of '01', '02', '03', '04'" in text and "enum" in text
    required = _reasons(settings, make_delivery("ecds", NAME, rows(arrival_date="")))
    assert "Accepted: a value in every row" in required


def test_a_range_failure_states_its_bounds():
    from pipeline.contracts import require_contract
    from pipeline.ingest.gate import RuleOutcome
    from tests.conftest import CONTRACTS

    rule = next(r for r in require_contract(CONTRACTS, "sus_apc").table("sus_apc_spells").rules
                if r.name == "spell_cost_range")
    text = RuleOutcome.of(rule, considered=10, failing=1, passed=False).describe()
    assert "Accepted: numbers from 0 to 500,000" in text and "logicalTypeOptions" in text


def test_a_semicolon_file_is_named_as_a_delimiter_mismatch(settings, make_delivery):
    path = settings.landing / "ecds" / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(";".join(ECDS_ROW) + "\n" + ";".join(ECDS_ROW.values()) + "\n")
    text = _reasons(settings, path)
    assert "delimiter" in text and "';'" in text and "looks like data" not in text
    assert "delivery" in text  # the fix: declare the delimiter in the table's delivery layout


def test_a_windows_1252_file_is_named_as_an_encoding_mismatch_with_the_fix(settings, make_delivery):
    path = settings.landing / "ecds" / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    row = dict(ECDS_ROW, triage_notes="Caf\u00e9 \u2013 fell")
    path.write_bytes((",".join(ECDS_ROW) + "\n" + ",".join(row.values()) + "\n").encode("cp1252"))
    text = _reasons(settings, path)
    assert "encoding" in text and "Windows-1252" in text
    assert "encoding: cp1252" in text and "Caf" not in text
