"""Publishing the commissioning package from the real person mart of the small stratified
population: the files, their agreement with counts made the obvious way, joint protection across
the package's tables, the page in Chromium, the workbook, and security property 3 (nothing leaves
without a passing audit; a crash or a failed audit leaves nothing partial; a re-run is one clean run)."""

import hashlib
import json
import re
import shutil
import zipfile

import polars as pl
import pytest

from pipeline.audit import AuditLog
from pipeline.disclosure import TOTAL
from pipeline.disclosure import publish as publish_module
from pipeline.disclosure.ledger import ReleaseLedger
from pipeline.disclosure.outputs import LABELS, load_output_contract
from pipeline.disclosure.publish import ledger_dir, publish, published_dir, verify_package
from pipeline.errors import ContractError, DisclosureFailed, OutputTampered
from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.marts.query import open_marts
from tests.browser import render
from tests.conftest import (
    SMALL_PACKAGE,
    copy_root,
    small_package_contracts,
    stratified_copy,
    synthetic_settings,
)
from tests.leakscan import collect, scan

TABLES = ("people_by_ward_age_gender_tier", "long_term_conditions_by_ward", "emergency_admissions_by_practice_tier",
          "social_care_cost_by_tier")


@pytest.fixture(scope="module")
def ready(stratified, tmp_path_factory):
    """A stratified copy (marts with tiers), nothing published yet."""
    return stratified_copy(stratified, tmp_path_factory, "publish")


def _files(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _scored(settings, keystore) -> pl.DataFrame:
    con, _ = open_marts(settings, keystore, "analyst")
    try:
        return con.execute("SELECT p.*, r.tier, r.registered_practice AS practice FROM people p "
                           "JOIN risk_scores r USING (person_id) WHERE r.tier IS NOT NULL").pl()
    finally:
        con.close()


def test_the_package_holds_every_table_and_verifies(published):
    settings, _, audit, result, steps = published
    assert steps == ["read-mart", *TABLES, "write-package"]
    folder = result.folder
    assert folder.parent == published_dir(settings) and not result.already_published
    contract = load_output_contract(settings.contracts_dir, "commissioning")
    for table in contract.tables:
        frame = pl.read_csv(folder / f"{table.name}.csv", infer_schema=False)
        assert tuple(frame.columns) == table.published_columns  # the contract's columns, in order, names beside codes
        record = json.loads((folder / "records" / f"{table.name}.json").read_text())
        assert record["audit"]["passed"] and record["profile"]["name"] == "safehaven"
        assert {f["name"] for f in record["files"]} == {f"{table.name}.csv", f"{result.package}.xlsx"}
    assert {"index.html", "manifest.json", f"{result.package}.xlsx"} <= set(_files(folder))
    assert verify_package(folder) == []
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".pending")]
    events = [e for e in audit.entries() if e.event == "disclosure.published"]
    assert len(events) == 1 and events[0].details["package"] == result.package
    assert set(events[0].details["tables"]) == set(TABLES)


def test_shown_numbers_are_the_true_counts_and_hidden_cells_are_the_small_ones(published):
    """The fast path (tables, lattice, engines) against counts made the obvious way from the mart."""
    settings, keystore, _, result, _ = published
    people = _scored(settings, keystore)
    shown = pl.read_csv(result.folder / "people_by_ward_age_gender_tier.csv", infer_schema=False)
    truth = {}
    for ward, age, gender, tier in people.select(pl.col("ward_code").fill_null("unknown"), "age_band",
                                                 pl.col("gender").fill_null("unknown"), "tier").iter_rows():
        for key in {(w, a, g, t) for w in (ward, TOTAL) for a in (age, TOTAL) for g in (gender, TOTAL)
                    for t in (tier, TOTAL)}:
            truth[key] = truth.get(key, 0) + 1
    codes = {label: code for code, label in LABELS["gender"].items() if code != "unknown"}
    hidden = 0
    listed = set()
    for ward, _, age, gender, tier, value in shown.iter_rows():
        gender = codes.get(gender, gender)  # published as labels: Male, Female, ...
        listed.add((ward, age, gender))
        true = truth.get((ward, age, gender, tier), 0)
        if value == "*":
            hidden += 1
        else:
            assert int(value) == true, (ward, age, gender, tier)
        if 1 <= true <= 7:
            assert value == "*", (ward, age, gender, tier)  # every small count is hidden
    assert shown.filter(pl.col("ward_code") == TOTAL, pl.col("age_band") == TOTAL, pl.col("gender") == TOTAL,
                        pl.col("risk_tier") == TOTAL)["people"].item() == str(people.height)
    assert 0 < hidden < shown.height
    # Rows are left out (a gender no one of that age in that ward has), but only rows with no one in them.
    every = {(w, a, g) for w in shown["ward_code"].unique() for a in shown["age_band"].unique()
             for g in {codes.get(g, g) for g in shown["gender"].unique()}}
    assert {key[:3] for key in truth} <= listed < every

    cost = pl.read_csv(result.folder / "social_care_cost_by_tier.csv", infer_schema=False)
    total = cost.filter(pl.col("risk_tier") == TOTAL, pl.col("age_band") == TOTAL)["social_care_cost_gbp"].item()
    assert total == "*" or abs(int(total) - people["social_care_cost_12m"].sum()) <= people.height  # whole pounds
    admissions = pl.read_csv(result.folder / "emergency_admissions_by_practice_tier.csv", infer_schema=False)
    grand = admissions.filter(pl.col("practice") == TOTAL, pl.col("risk_tier") == TOTAL)["emergency_admissions"]
    assert grand.item() in {"*", str(people["emergency_spells_12m"].sum())}


def _check_percent(frame: pl.DataFrame) -> int:
    """Every percent_of_ward is the shown count over the shown ward total; returns how many were checked."""
    totals = dict(frame.filter(pl.col("long_term_conditions") == TOTAL).select("ward_code", "people").iter_rows())
    checked = 0
    for ward, _, people, percent in frame.select("ward_code", "long_term_conditions", "people",
                                                 "percent_of_ward").iter_rows():
        if people == "*":
            assert percent == "*"
        elif totals[ward] in {"*", "0"}:
            assert percent == ""
        else:
            assert float(percent) == round(100 * int(people) / int(totals[ward]), 1)
            checked += 1
    return checked


def test_percent_of_ward_is_derived_from_published_numbers_only(published):
    _, _, _, result, _ = published
    _check_percent(pl.read_csv(result.folder / "long_term_conditions_by_ward.csv", infer_schema=False))
    # On a table where most cells are shown: the same rule, over many cells.
    from pipeline.disclosure import (
        PROFILES,
        Dimension,
        apply_primary,
        build_table,
        count_people,
        protect,
    )
    from pipeline.disclosure.outputs import OutputTable

    sizes = {("W1", "0"): 120, ("W1", "1"): 40, ("W1", "2"): 3, ("W2", "0"): 90, ("W2", "1"): 55, ("W2", "2"): 12,
             ("W3", "0"): 70, ("W3", "1"): 30, ("W3", "2"): 25}
    people = pl.DataFrame([(f"p{w}{b}{i}", w, b) for (w, b), n in sizes.items() for i in range(n)],
                          schema=["person_id", "ward_code", "long_term_conditions"], orient="row")
    dims = [Dimension.flat("ward_code", ["W1", "W2", "W3"]), Dimension.flat("long_term_conditions", ["0", "1", "2"])]
    release = protect(apply_primary(build_table(count_people(people, dims), dims), PROFILES["safehaven"]))
    table = OutputTable("ltc", "", ("ward_code", "long_term_conditions"), "people", "people", ("percent_of_ward",))
    frame = publish_module._shown(table, release, dims)
    assert frame.columns == ["ward_code", "ward_name", "long_term_conditions", "people", "percent_of_ward"]
    assert frame.filter(pl.col("ward_code") == "W2", pl.col("long_term_conditions") == "1")["percent_of_ward"] \
        .item() == "35.0"  # 55 of W2's 157
    assert _check_percent(frame) >= 6
    assert frame["ward_code"].to_list()[-4:] == [TOTAL] * 4  # each dimension's Total comes last


def test_tables_of_one_population_are_protected_together(published):
    """The LTC table shares the ward margins with the first table: it is audited jointly with it
    (recorded in the ledger), so no ward total hidden in one can be read from the other."""
    settings, _, _, result, _ = published
    by_name = {t.name: t for t in result.tables}
    first = by_name["people_by_ward_age_gender_tier"]
    assert first.audited_with == []
    assert by_name["long_term_conditions_by_ward"].audited_with == [f"{result.package}/{first.name}"]
    entries = ReleaseLedger(ledger_dir(settings)).entries()
    assert [e.name.split("/")[1] for e in entries] == list(TABLES)
    one = pl.read_csv(result.folder / "people_by_ward_age_gender_tier.csv", infer_schema=False).filter(
        pl.col("age_band") == TOTAL, pl.col("gender") == TOTAL, pl.col("risk_tier") == TOTAL)
    two = pl.read_csv(result.folder / "long_term_conditions_by_ward.csv", infer_schema=False).filter(
        pl.col("long_term_conditions") == TOTAL)
    # A ward total shown by one is shown (the same number) by the other; hidden by one, hidden by both.
    assert sorted(one.select("ward_code", "people").rows()) == sorted(two.select("ward_code", "people").rows())


def test_a_rerun_changes_nothing_and_records_nothing_twice(published):
    settings, keystore, audit, result, _ = published
    before = _files(result.folder)
    ledger = len(ReleaseLedger(ledger_dir(settings)).entries())
    again = publish(settings, keystore, audit)
    assert again.already_published and again.package == result.package
    assert [t.name for t in again.tables] == list(TABLES)
    assert _files(result.folder) == before
    assert len(ReleaseLedger(ledger_dir(settings)).entries()) == ledger


def test_the_page_opens_in_a_browser_with_a_chart_per_table(published, tmp_path):
    _, _, _, result, _ = published
    page = result.folder / "index.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text) and "<script" not in text
    dom, png = render(page, tmp_path)
    for name in TABLES:
        assert f'id="{name}"' in dom
    assert dom.count("<svg") == len(TABLES) and "passed" in dom and "OFFICIAL" in dom
    assert len(png) > 20_000
    record, _ = render(result.folder / "records" / f"{TABLES[0]}.html", tmp_path)
    assert "passed" in record and "safehaven" in record


def test_the_workbook_has_a_sheet_per_table_and_numbers_as_numbers(published):
    _, _, _, result, _ = published
    with zipfile.ZipFile(result.folder / f"{result.package}.xlsx") as book:
        workbook = book.read("xl/workbook.xml").decode()
        sheets = re.findall(r'<sheet name="([^"]+)"', workbook)
        assert sheets == ["About", *(t[:31] for t in TABLES)]
        first = book.read("xl/worksheets/sheet2.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
    # the counts (column F, after the ward's code and name and three more dimensions) are numbers
    assert re.search(r'<c r="F\d+" s="\d+"?><v>\d+</v></c>|<c r="F\d+"><v>\d+</v></c>', first)
    assert "<t>*</t>" in strings and "<t>Total</t>" in strings and "<t>Female</t>" in strings


def test_nothing_in_the_package_or_the_ledger_holds_an_identifier(published):
    settings, _, _, result, _ = published
    ids = collect(settings.landing)
    assert scan(result.folder, ids, skip=()) == []
    assert scan(ledger_dir(settings), ids, skip=()) == []


def test_a_failed_audit_publishes_nothing(ready, tmp_path_factory, monkeypatch, stratified):
    """Security property 3: with secondary suppression switched off, the audit finds the hidden
    cells recoverable from the margins; nothing is written, the refusal is audited."""
    settings, keystore, audit, *_ = stratified_copy(stratified, tmp_path_factory, "publish-fail")
    monkeypatch.setattr(publish_module, "protect", lambda release, method="cube": release)
    with pytest.raises(DisclosureFailed, match="people_by_ward_age_gender_tier: .* hidden cell"):
        publish(settings, keystore, audit)
    folder = published_dir(settings)
    assert not [p for p in folder.iterdir() if not p.name.startswith(".publish.lock")]
    events = [e.event for e in audit.entries()]
    assert "disclosure.refused" in events and "disclosure.published" not in events
    assert not ReleaseLedger(ledger_dir(settings)).entries()


def test_a_crash_while_writing_leaves_nothing_and_a_rerun_is_one_clean_run(stratified, tmp_path_factory, tmp_path,
                                                                            monkeypatch):
    contracts = small_package_contracts(tmp_path / "contracts")  # the property does not need the big table
    roots = {}
    for name in ("crash", "clean"):
        copied, keystore, audit, *_ = stratified_copy(stratified, tmp_path_factory, f"publish-{name}")
        roots[name] = synthetic_settings(copied.data_root, contracts), keystore, audit
    (settings, keystore, audit), (clean_settings, clean_keystore, clean_audit) = roots["crash"], roots["clean"]
    tables = [t.name for t in load_output_contract(contracts, SMALL_PACKAGE).tables]
    real = publish_module._write_workbook

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(publish_module, "_write_workbook", crash)
    with pytest.raises(OSError, match="disk full"):
        publish(settings, keystore, audit, contract=SMALL_PACKAGE)
    assert not [p for p in published_dir(settings).iterdir() if p.name != ".publish.lock"]
    assert "disclosure.published" not in [e.event for e in audit.entries()]
    monkeypatch.setattr(publish_module, "_write_workbook", real)
    clean = publish(clean_settings, clean_keystore, clean_audit, contract=SMALL_PACKAGE).folder  # one clean run
    killed = published_dir(settings) / f".pending-{clean.name}-0badc0de"  # a run killed mid-write
    (killed / "records").mkdir(parents=True)
    (killed / "records" / "half.json").write_text("{")
    result = publish(settings, keystore, audit, contract=SMALL_PACKAGE)
    assert not killed.exists()
    assert verify_package(result.folder) == []
    assert len(ReleaseLedger(ledger_dir(settings)).entries()) == len(tables) == 3  # the crashed run's, once
    # Same people, same mart contents: the same tables as the clean run on the other copy.
    assert result.folder.name == clean.name
    for name in tables:
        assert (result.folder / f"{name}.csv").read_bytes() == (clean / f"{name}.csv").read_bytes(), name


def test_a_changed_file_is_found_and_the_package_is_not_silently_rebuilt(published, tmp_path):
    settings0, _, _, result, _ = published
    settings = synthetic_settings(copy_root(settings0.data_root, tmp_path / "data"))
    keystore, audit = open_keystore(settings, create_demo=True, roles=ALL_ROLES), AuditLog(settings.audit_log)
    folder = published_dir(settings) / result.package
    path = folder / f"{TABLES[1]}.csv"
    path.write_text(path.read_text().replace("*", "3", 1))
    assert verify_package(folder) == [f"{TABLES[1]}.csv: checksum differs from the manifest"]
    with pytest.raises(OutputTampered, match="does not match its manifest"):
        publish(settings, keystore, audit)


def test_an_output_contract_with_a_record_level_column_is_refused(ready, tmp_path):
    settings = ready[0]
    contracts = tmp_path / "contracts"
    shutil.copytree(settings.contracts_dir, contracts)
    path = contracts / "outputs" / "commissioning.odcs.yaml"
    path.write_text(path.read_text().replace("  - {name: ward_code, logicalType: string, physicalType: VARCHAR, "
                                             "description: Electoral ward (unknown when not known).}",
                                             "  - {name: person_id, logicalType: string, physicalType: VARCHAR}"))
    with pytest.raises(ContractError, match="'person_id' is record-level"):
        load_output_contract(contracts, "commissioning")


def test_a_custom_profile_comes_from_the_output_contract(ready, tmp_path):
    settings = ready[0]
    contracts = tmp_path / "contracts"
    shutil.copytree(settings.contracts_dir, contracts)
    path = contracts / "outputs" / "commissioning.odcs.yaml"
    path.write_text(path.read_text().replace("- {property: disclosureProfile, value: safehaven}",
                                             "- {property: disclosureProfile, value: acro}\n"
                                             "- {property: threshold, value: 12}"))
    profile = load_output_contract(contracts, "commissioning").profile
    assert profile.name == "commissioning-custom" and profile.threshold == 12 and profile.protection_width == 10
    assert "acro@1.0.1" in profile.version and "commissioning@1.0.0" in profile.version
    path.write_text(path.read_text().replace("value: acro", "value: nhs-hes-2018"))
    with pytest.raises(ContractError, match="magnitude table under profile"):
        load_output_contract(contracts, "commissioning")


def test_the_recorded_release_reaudits_from_the_ledger(published):
    """The ledger's copy of what was shown is what the package shows."""
    settings, _, _, result, _ = published
    entry = ReleaseLedger(ledger_dir(settings)).entries()[0]
    kept = pl.read_parquet(ledger_dir(settings) / "releases" / entry.file)
    codes = {label: code for code, label in LABELS["gender"].items() if code != "unknown"}
    csv = pl.read_csv(result.folder / f"{TABLES[0]}.csv", infer_schema=False).drop("ward_name") \
        .with_columns(pl.col("gender").replace(codes))
    ledger = kept.select(*csv.columns[:4], pl.col("shown").alias("people"))
    assert set(csv.rows()) <= set(ledger.rows())
    left_out = ledger.join(csv, on=csv.columns[:4], how="anti")  # rows with no one in them
    assert left_out.height and set(left_out["people"]) == {"0"}


def test_publishing_before_stratify_is_a_clear_error(linked, tmp_path):
    from pipeline.audit import AuditLog
    from pipeline.errors import UserError

    settings, keystore, _ = linked
    with pytest.raises(UserError, match="run `safehaven stratify` before `safehaven publish`"):
        publish(settings, keystore, AuditLog(tmp_path / "audit.jsonl"))
    assert not [p for p in published_dir(settings).iterdir() if p.is_dir()]


def test_records_state_the_rules_and_widths_each_table_was_held_to(published):
    """Issue 17 item 9: magnitude records said dominance and p% were null while cells were
    suppressed under release.py's defaults, and the page said every hidden cell "could not be
    narrowed below 8" while a magnitude cell's own record required width 2."""
    _, _, _, result, _ = published
    magnitude = ("emergency_admissions_by_practice_tier", "social_care_cost_by_tier")
    for name in TABLES:
        record = json.loads((result.folder / "records" / f"{name}.json").read_text())
        parameters = record["profile"]["parameters"]
        if name in magnitude:
            assert parameters["dominance"] == [2, 90.0] and parameters["p_percent"] == 10.0, name
            reasons = {r.split("(")[0] for c in record["audit"]["narrowest"] for r in c["reasons"]}
            assert reasons <= {"PRIMARY_FREQ", "PRIMARY_DOMINANCE", "PRIMARY_P", "SECONDARY"}
    page = (result.folder / "index.html").read_text()
    assert "could not be narrowed below 8." not in page
    assert "narrowed to fewer than 8 people" in page and "its own protection level" in page


def test_the_package_reads_as_a_commissioner_expects(published, tmp_path):
    """Ward and practice names beside codes, gender as labels, and a table that hides more than half of its
    non-zero cells carries a warning (summary, manifest and page) naming the coarser table."""
    settings, keystore, _, result, _ = published
    people = _scored(settings, keystore)
    names = dict(people.select("ward_code", "ward_name").unique().iter_rows()) | {"unknown": "unknown", TOTAL: TOTAL}
    frame = pl.read_csv(result.folder / "long_term_conditions_by_ward.csv", infer_schema=False)
    for code, name in frame.select("ward_code", "ward_name").unique().iter_rows():
        assert name == names[code] and name
    # Practice names beside codes, as the ODS practices file in landing names them (an independent
    # source: the package reaches them through staging and the person mart).
    ods = pl.concat([pl.read_csv(f, infer_schema=False) for f in (settings.landing / "ods_practices").glob("*.csv")])
    practices = dict(ods.select("practice_code", "practice_name").iter_rows()) | {TOTAL: TOTAL}
    frame = pl.read_csv(result.folder / "emergency_admissions_by_practice_tier.csv", infer_schema=False)
    assert frame.columns[:2] == ["practice", "practice_name"]
    shown = frame.select("practice", "practice_name").unique()
    assert shown.height > 2 and all(name == practices[code] for code, name in shown.iter_rows())
    genders = set(pl.read_csv(result.folder / "people_by_ward_age_gender_tier.csv", infer_schema=False)["gender"])
    assert {"Male", "Female", TOTAL} <= genders <= {*LABELS["gender"].values(), TOTAL}
    manifest = json.loads((result.folder / "manifest.json").read_text())
    warned = {t["name"]: t["warning"] for t in manifest["tables"] if t["warning"]}
    assert {t.name: t.warning for t in result.tables if t.warning} == warned
    assert "people_by_ward_age_gender_tier" in warned  # small population, four-way table: most cells hidden
    assert re.fullmatch(r"people_by_ward_age_gender_tier hides (5[1-9]|[6-9]\d|100)% of its non-zero cells: .*; "
                        r"without \w+ it would hide about \d+%", warned["people_by_ward_age_gender_tier"])
    dom, _ = render(result.folder / "index.html", tmp_path)
    assert 'id="warnings"' in dom and "people_by_ward_age_gender_tier hides" in dom


def test_the_warning_names_the_coarser_table_that_hides_less():
    """Made the obvious way: each one-dimension-fewer table protected on its own, the least hidden
    named; a table hiding half or less of its non-zero cells has no warning."""
    from pipeline.disclosure import (
        PROFILES,
        Dimension,
        apply_primary,
        build_table,
        count_people,
        protect,
    )
    from pipeline.disclosure.outputs import OutputTable

    sizes = {("W1", "1"): 30, ("W1", "2"): 28, ("W1", "9"): 1, ("W2", "1"): 33, ("W2", "2"): 31, ("W2", "9"): 2,
             ("W3", "1"): 2, ("W3", "2"): 3, ("W3", "9"): 0}
    rows = [(f"p{w}{g}{i}", w, g, "low" if i % 2 else "high") for (w, g), n in sizes.items() for i in range(n)]
    people = pl.DataFrame(rows, schema=["person_id", "ward_code", "gender", "risk_tier"], orient="row")
    dims = [Dimension.flat("ward_code", ["W1", "W2", "W3"]), Dimension.flat("gender", ["1", "2", "9"]),
            Dimension.flat("risk_tier", ["high", "low"])]
    profile = PROFILES["safehaven"]
    table = OutputTable("t", "", ("ward_code", "gender", "risk_tier"), "people", "people")
    release = protect(apply_primary(build_table(count_people(people, dims), dims), profile))
    share = publish_module._hidden_nonzero(release)
    shares = {}
    for i, dim in enumerate(table.dims):
        keep = [d for j, d in enumerate(dims) if j != i]
        coarser = protect(apply_primary(build_table(count_people(people.select("person_id", *(d.name for d in keep)),
                                                                 keep), keep), profile))
        values = coarser.values()
        shares[dim] = (coarser.hidden & (values > 0)).sum() / (values > 0).sum()
    best = min(shares, key=shares.get)
    warning = publish_module._warning(table, release, people, dims, profile)
    assert share > 0.5 and warning == (f"t hides {share:.0%} of its non-zero cells: too fine a breakdown for the "
                                       f"number of people in it; without {best} it would hide about {shares[best]:.0%}")
    two = [dims[0], dims[2]]
    coarse = protect(apply_primary(build_table(count_people(people.select("person_id", "ward_code", "risk_tier"), two),
                                               two), profile))
    assert publish_module._hidden_nonzero(coarse) <= 0.5
    assert publish_module._warning(OutputTable("c", "", ("ward_code", "risk_tier"), "people", "people"), coarse,
                                   people, two, profile) is None


def test_a_republish_after_a_new_mart_build_of_the_same_people_is_audited_against_the_earlier_release(
        published, tmp_path_factory):
    """The ledger names a population by the people in it, not by the mart build: after the marts
    are built again (as a re-link does), the same people make the same population, so the new
    package's first table is protected and audited together with everything published before."""
    from pipeline.linkage import publish as publish_marts

    settings0, _, _, first, _ = published
    root = copy_root(settings0.data_root, tmp_path_factory.mktemp("republish") / "data")
    settings = synthetic_settings(root)
    keystore = open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    audit = AuditLog(settings.audit_log)
    publish_marts(settings, keystore, audit)
    second = publish(settings, keystore, audit)
    assert second.package != first.package and second.population == first.population
    earlier = {f"{first.package}/{name}" for name in TABLES[:2]}
    by_name = {t.name: t for t in second.tables}
    assert earlier <= set(by_name["people_by_ward_age_gender_tier"].audited_with)
    assert all(t.audit_passed for t in second.tables) and verify_package(second.folder) == []
    # What both packages show of the same cell is the same number, or hidden in the second.
    one, two = (pl.read_csv(r.folder / "long_term_conditions_by_ward.csv", infer_schema=False) for r in (first, second))
    joined = one.join(two, on=["ward_code", "long_term_conditions"], suffix="_2")
    assert joined.height == one.height
    assert joined.filter((pl.col("people") != "*") & (pl.col("people_2") != "*") & (pl.col("people") != pl.col("people_2"))).is_empty()
