"""The disclosure record of an output: JSON with the profile, counts, information loss, audit
and file checksums; a page that opens in headless Chromium; and the refusal of record-level
outputs."""

import hashlib
import json
import re

import polars as pl
import pytest

from pipeline.disclosure import PROFILES, SECONDARY, apply_primary, audit_release, protect
from pipeline.disclosure.record import build_record, refuse_record_level, write_record
from pipeline.errors import DisclosureFailed
from tests.browser import render


@pytest.fixture
def protected():
    from benchmarks.disclosure_tables import ward_table

    release = protect(apply_primary(ward_table(4, people=900, per_authority=None, per_region=None, seed=2),
                                    PROFILES["safehaven"]))
    return release, audit_release(release)


def test_the_record_holds_profile_counts_loss_audit_and_checksums(protected, tmp_path):
    release, result = protected
    out = tmp_path / "people-by-ward.csv"
    out.write_text("ward,count\nW00000,*\n")
    doc = build_record("people by ward", release, result, [out], method="cube", population="mart-3")
    assert doc["profile"]["name"] == "safehaven" and doc["profile"]["parameters"]["protection_width"] == 8
    assert sum(doc["counts_by_status"].values()) == release.table.cells.height
    assert doc["counts_by_status"]["secondary"] == int((release.status == SECONDARY).sum())
    loss = doc["information_loss"]
    assert loss["hidden_cells"] == int(release.hidden.sum()) and 0 < loss["hidden_people_share"] < 1
    assert doc["audit"]["passed"] and doc["audit"]["hidden_cells_checked"] == loss["hidden_cells"]
    assert doc["files"] == [{"name": out.name, "bytes": out.stat().st_size,
                             "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}]
    json.dumps(doc)  # machine-readable as it stands


def test_the_record_page_opens_in_a_browser(protected, tmp_path):
    release, result = protected
    doc = build_record("people by ward", release, result, [], method="cube", population="mart-3")
    paths = write_record(tmp_path / "records", doc)
    text = paths["html"].read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text) and "<script" not in text
    dom, png = render(paths["html"], tmp_path)
    for anchor in ("result", "status", "loss", "narrowest", "profile", "files"):
        assert f'id="{anchor}"' in dom, anchor
    assert dom.count("<svg") == 1 and "passed" in dom and "OFFICIAL-SENSITIVE" in dom
    assert f"{doc['information_loss']['hidden_cells']:,}" in dom
    assert len(png) > 10_000


@pytest.mark.parametrize(("frame", "column"), [
    (pl.DataFrame({"person_id": ["a"], "count": [1]}), "person_id"),
    (pl.DataFrame({"ward": ["W1"], "mart_pseudonym": ["x"], "count": [9]}), "mart_pseudonym"),
    (pl.DataFrame({"group": ["P1-67EP-5TKB-WP0C-PPVA-~"], "count": [9]}), "group"),
    (pl.DataFrame({"group": ["0123456789abcdef0123456789abcdef"], "count": [9]}), "group"),
    (pl.DataFrame({"area": ["SS1 1AA"], "count": [9]}), "area"),
])
def test_record_level_columns_are_refused_by_name(frame, column):
    with pytest.raises(DisclosureFailed, match=f"'{column}'"):
        refuse_record_level(frame, "out.csv", count="count")


def test_a_table_whose_cells_are_people_is_refused():
    frame = pl.DataFrame({"age": [str(a) for a in range(40)], "count": [1] * 30 + [9] * 10})
    with pytest.raises(DisclosureFailed, match="one person"):
        refuse_record_level(frame, "out.csv", count="count")
    refuse_record_level(frame.with_columns(pl.lit(12).alias("count")), "out.csv", count="count")
    # Names of places and aggregates are fine.
    refuse_record_level(pl.DataFrame({"ward_name": ["Leigh"], "postcode_district": ["SS9"], "count": [40]}),
                        "out.csv", count="count")


def test_ledger_record_and_shown_table_from_the_person_mart_hold_no_identifier(linked, tmp_path):
    """Security property 1 for the new places disclosure control writes: the ledger (log and
    Parquet), the record (JSON and page) and the shown table, made from the real person mart,
    scanned for every identifier in landing/."""
    from pipeline.disclosure import Dimension, build_table, count_people
    from pipeline.disclosure.ledger import ReleaseLedger
    from pipeline.marts.query import open_marts
    from tests.leakscan import collect, scan

    settings, keystore, _ = linked
    con, _ = open_marts(settings, keystore, "analyst")
    try:
        people = con.execute("SELECT person_id, coalesce(ward_code, 'unknown') AS ward, age_band, "
                             "coalesce(gender, 'unknown') AS gender FROM people").pl()
    finally:
        con.close()
    dims = [Dimension.flat(c, sorted(people[c].unique().to_list())) for c in ("ward", "age_band", "gender")]
    table = build_table(count_people(people, dims), dims)
    release = protect(apply_primary(table, PROFILES["safehaven"]))
    result = audit_release(release)
    assert result.passed
    out = tmp_path / "out"
    out.mkdir()
    shown = table.cells.select(table.dim_names).with_columns(people=pl.Series(release.shown()))
    shown.write_csv(out / "people-by-ward-age-gender.csv")
    ReleaseLedger(out / "disclosure").record(release, name="people by ward", population="mart-test")
    write_record(out / "records", build_record("people by ward", release, result,
                                               [out / "people-by-ward-age-gender.csv"], method="cube",
                                               population="mart-test"))
    assert len(list(out.rglob("*"))) >= 7
    assert scan(out, collect(settings.landing), skip=()) == []
