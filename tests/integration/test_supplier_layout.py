"""A supplier's own layout, declared in the feed contract (issue 18, first step): file names,
header names in any case, aliases, a trailing empty column, another delimiter and day-first
dates get in without editing the extract, and stage the same rows as the native layout."""

from __future__ import annotations

import csv
import io
import shutil

import polars as pl
import yaml

from pipeline.contracts import require_contract
from pipeline.ingest.ingest import Ingestor
from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.synth import EXTRACT_DATE
from tests.conftest import CONTRACTS
from tests.staged import staged_frames

LAYOUT = {
    "filenames": [{"regex": r"ECDS_Extract_(?P<site>[A-Za-z]+)_(?P<period>\d{6})\.csv", "periodFormat": "%Y%m"}],
    "headerAliases": {"attendance_id": ["ATTENDANCE REF"]},
    "delimiter": ";",
    "dateFormats": {"arrival_date": ["%d/%m/%Y"]},
    "ignoreColumns": [""],
}


def _contracts_with_layout(target):
    shutil.copytree(CONTRACTS, target)
    path = target / "ecds.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["schema"][0].setdefault("customProperties", []).append(
        {"property": "delivery", "vendor": "nhs-ig", "value": LAYOUT,
         "description": "the supplier's layout: file names, header aliases, delimiter, day-first dates"})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def _supplier_copy(native, target) -> None:
    """The native delivery as the supplier sends it: upper-case headers, an alias, ';', a
    trailing empty column, arrival dates as dd/mm/yyyy."""
    rows = list(csv.DictReader(native.open(newline="")))
    header = ["ATTENDANCE REF" if c == "attendance_id" else c.upper() for c in rows[0]] + [""]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        day = row["arrival_date"]
        row["arrival_date"] = f"{day[8:10]}/{day[5:7]}/{day[0:4]}" if len(day) == 10 else day
        writer.writerow([*row.values(), ""])
    target.write_text(out.getvalue())


def test_a_supplier_layout_stages_the_same_rows_as_the_native_one(population_copy, tmp_path):
    contracts = _contracts_with_layout(tmp_path / "contracts")
    table = require_contract(contracts, "ecds").table("ecds_attendances")
    assert table.delivery is not None and "%d/%m/%Y" in table.column("arrival_date").formats

    native = population_copy.model_copy(update={"contracts_dir": contracts})
    landing = native.landing / "ecds"
    keep = landing / "ecds_attendances_2024-01_v1.csv"
    for other in landing.glob("*.csv"):
        if other != keep:
            other.unlink()
    open_keystore(native, create_demo=True, roles=ALL_ROLES)  # one keystore for both roots: the same pseudonyms
    supplier_root = tmp_path / "supplier"
    shutil.copytree(native.data_root, supplier_root)
    supplier = native.model_copy(update={"data_root": supplier_root})
    (supplier.landing / "ecds" / keep.name).unlink()
    _supplier_copy(keep, supplier.landing / "ecds" / "ECDS_Extract_Southend_202401.csv")

    feeds = ["postcode_lookup", "ndoo", "type1_optout", "ecds"]
    staged = {}
    for settings in (native, supplier):
        results = Ingestor(settings, open_keystore(settings, create_demo=True, roles=ALL_ROLES)).ingest_all(feeds)
        ecds = [r for r in results if r.feed == "ecds"]
        assert [r.status for r in ecds] == ["staged"], [r.reasons for r in ecds]
        assert ecds[0].delivery_id == "ecds/ecds_attendances/2024-01/v1"
        staged[settings.data_root] = staged_frames(settings, settings.staging / "ecds").sort("source_row")
    a, b = staged.values()
    assert a.height > 50
    assert a.columns == b.columns
    assert [c for c in a.columns if not a[c].equals(b[c])] == []


def test_a_layout_that_names_an_unknown_column_is_a_contract_problem(tmp_path):
    from pipeline.contracts import check_contract

    contracts = _contracts_with_layout(tmp_path / "contracts")
    path = contracts / "ecds.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["schema"][0]["customProperties"][-1]["value"]["headerAliases"] = {"no_such_column": ["X"]}
    doc["schema"][0]["customProperties"][-1]["value"]["filenames"] = [{"regex": r"ECDS_(\d{6})\.csv"}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    problems = [str(p) for p in check_contract(path, EXTRACT_DATE).problems]
    assert any("'no_such_column' is not a column of this table" in p for p in problems)
    assert any("needs a named group 'period'" in p for p in problems)


def test_header_names_match_ignoring_case_and_spaces(settings, make_delivery):
    from pipeline.ingest.gate import ValidationGate
    from tests.conftest import ECDS_ROW

    path = make_delivery("ecds", "ecds_attendances_2025-06_v1.csv", [ECDS_ROW],
                         columns=list(ECDS_ROW))
    text = path.read_text().split("\n", 1)
    path.write_text(",".join(f" {c.upper()} " for c in ECDS_ROW) + "\n" + text[1])
    result = ValidationGate(settings).validate(path, "ecds")
    assert result.passed, result.reasons
    assert pl.DataFrame([ECDS_ROW]).height == result.rows
