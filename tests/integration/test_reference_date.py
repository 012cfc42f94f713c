"""One notion of the reference date (issue 17 items 1 and 8): the person mart's "last 12 months"
count back from the scoring date, whatever the clock, and everyone registered with a GP on that
date is scored, whether their registration was linked by NHS number or rescued."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipeline.linkage import open_warehouse, publish
from pipeline.linkage.spine import EMERGENCY_METHODS
from pipeline.marts import current_mart, run_query
from pipeline.risk.dataset import one_year_after
from tests.conftest import stratified_copy


def _nhs_digits(column: str) -> pl.Expr:
    return pl.col(column).fill_null("").str.replace_all(r"\D", "")


def landing_emergency_spells(settings, start: dt.date, end: dt.date) -> int:
    """Emergency spells admitted in [start, end), counted the obvious way from the raw
    deliveries: every spell once (its latest version), people on the national opt-out left out."""
    frames = [pl.read_csv(p, infer_schema=False).with_columns(_file=pl.lit(p.name))
              for p in sorted((settings.landing / "sus_apc").glob("*.csv"))]
    spells = pl.concat(frames, how="diagonal").sort("_file").unique("spell_id", keep="last")
    opted_out = pl.concat([pl.read_csv(p, infer_schema=False) for p in (settings.landing / "ndoo").glob("*.csv")])
    admitted = pl.coalesce(*(pl.col("admission_date").str.strip_chars().str.to_date(f, strict=False)
                             for f in ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d")))  # the contract's date formats
    return spells.filter(pl.col("admission_method").is_in(EMERGENCY_METHODS), admitted >= start, admitted < end,
                         ~_nhs_digits("nhs_number").is_in(opted_out.select(_nhs_digits("nhs_number"))["nhs_number"])
                         ).height


@pytest.mark.parametrize("clock", [None, dt.date(2027, 6, 1)], ids=["today", "later"])
def test_person_mart_windows_count_the_year_before_the_reference_date(stratified, tmp_path_factory, clock):
    """Item 1: counted back from the day `link` ran, a published package had 141 emergency
    admissions where the extracts hold 474 in that year; with a later clock, 0."""
    settings, keystore, audit, _, scored, _ = stratified_copy(stratified, tmp_path_factory, "clock")
    reference = dt.date.fromisoformat(scored["scoring_date"])
    expected = landing_emergency_spells(settings, one_year_after(reference, -1), reference)
    assert expected > 100
    later = settings.model_copy(update={"as_of": clock})
    publish(later, keystore, audit)
    got = run_query(later, keystore, "analyst", "SELECT sum(emergency_spells_12m)::BIGINT AS n FROM people",
                    audit).table.to_pylist()[0]["n"]
    assert 0.97 * expected <= got <= expected, (got, expected)  # only records linked to no one are missing
    assert current_mart(later.marts_dir, "person")["reference_date"] == reference.isoformat()


def test_people_whose_registration_was_rescue_linked_are_scored(stratified):
    """Item 8: the scoring population read stg_gp_registrations by NHS-number pseudonym only,
    so people found by rescue linkage were on the spine but never in risk_scores."""
    settings, keystore, _, _, scored, _ = stratified
    reference = scored["scoring_date"]
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        con.execute("USE memory")
        from pipeline.linkage.linked import create_linked_views, warehouse_tables

        create_linked_views(con, warehouse_tables(con))
        registered = f"""SELECT DISTINCT person_pid FROM linked_gp_registrations
            WHERE person_pid IS NOT NULL AND registration_start < DATE '{reference}'
              AND (registration_end IS NULL OR registration_end >= DATE '{reference}' - INTERVAL 1 DAY)"""
        rescued_only = con.execute(f"""SELECT count(*) FROM ({registered}) r WHERE person_pid NOT IN (
            SELECT person_pid FROM w.stg_gp_registrations WHERE person_pid IS NOT NULL)""").fetchone()[0]
        missing = con.execute(f"SELECT count(*) FROM ({registered}) r ANTI JOIN w.risk_scores USING (person_pid)"
                              ).fetchone()[0]
        scored_people = con.execute("SELECT count(*) FROM w.risk_scores").fetchone()[0]
    finally:
        con.close()
    assert rescued_only > 0, "the small population should have people registered only through rescue linkage"
    assert missing == 0 and scored_people == sum(scored["tiers"].values())
