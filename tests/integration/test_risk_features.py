"""Risk features from the warehouse at a reference date, against a plain polars recount from
the staged files (with the rescue links), and nothing after the reference date."""

import datetime as dt

import polars as pl

from pipeline.linkage import open_warehouse
from pipeline.linkage.spine import EMERGENCY_METHODS
from pipeline.risk import build_features, feature_names, ltc_conditions
from tests.staged import staged_frame

REF = dt.date(2025, 4, 1)


def _staged(settings, feed, table):
    frames = []
    for path in sorted((settings.staging / feed / table).glob("*.parquet")):
        frames.append(staged_frame(settings, path).with_columns(_period=pl.lit(path.name.split("__")[0])))
    return pl.concat(frames, how="diagonal_relaxed")


def _with_rescue(frame, rescued, source):
    links = rescued.filter(pl.col("source") == source).select("_period", "source_row", rescued_pid="person_pid")
    return frame.join(links, on=["_period", "source_row"], how="left").with_columns(
        person_pid=pl.coalesce("person_pid", "rescued_pid"))


def _count(frame, date_col, extra=True):
    """Rows in the 12 months before the reference date: [REF - 1 year, REF)."""
    window = (pl.col(date_col) >= REF.replace(year=REF.year - 1)) & (pl.col(date_col) < REF)
    return frame.filter(window & extra & pl.col("person_pid").is_not_null())


def test_features_agree_with_a_plain_recount(linked):
    settings, keystore, _ = linked
    conditions = ltc_conditions(settings.contracts_dir, settings.today())
    assert len(conditions) >= 8
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        people = build_features(con, REF, conditions)
        features = con.execute("SELECT * FROM risk_features").pl()
        rescued = con.execute("SELECT source, _period, source_row, person_pid FROM rescued_links").pl()
        spine = con.execute("SELECT count(*) FROM spine").fetchone()[0]
    finally:
        con.close()
    assert people == spine == features.height
    assert features.columns == ["person_pid", "reference_date", *feature_names(conditions)]

    spells = _with_rescue(_staged(settings, "sus_apc", "sus_apc_spells"), rescued, "sus_apc_spells")
    emergency = _count(spells, "admission_date", pl.col("admission_method").is_in(EMERGENCY_METHODS)) \
        .group_by("person_pid").agg(pl.col("spell_id").n_unique().alias("expected"))
    ae = _count(_with_rescue(_staged(settings, "ecds", "ecds_attendances"), rescued, "ecds_attendances"),
                "arrival_date").group_by("person_pid").agg(pl.len().alias("expected"))
    clients = _with_rescue(_staged(settings, "asc", "asc_clients"), rescued, "asc_clients") \
        .select("client_id_pid", "person_pid").unique().drop_nulls()
    services = _staged(settings, "asc", "asc_services").join(clients, on="client_id_pid").filter(
        (pl.col("start_date") < REF) & (pl.col("end_date").is_null() | (pl.col("end_date") >= REF - dt.timedelta(days=1)))) \
        .unique(["person_pid", "service_id"]).group_by("person_pid").agg(pl.col("weekly_cost").sum().alias("expected"))
    ltc = _staged(settings, "gp", "gp_ltc_diagnoses").filter(pl.col("diagnosis_date") < REF).drop_nulls("person_pid") \
        .group_by("person_pid").agg(pl.col("condition").n_unique().alias("expected"))
    for column, expected in (("emergency_admissions_12m", emergency), ("ae_attendances_12m", ae),
                             ("social_care_weekly_cost", services), ("ltc_count", ltc)):
        joined = features.select("person_pid", column).join(expected, on="person_pid", how="left") \
            .with_columns(pl.col("expected").fill_null(0))
        assert expected.height >= 10, column  # the comparison is not vacuous
        assert (joined[column].cast(pl.Float64) - joined["expected"].cast(pl.Float64)).abs().max() < 1e-6, column
    assert features["emergency_admissions_24m"].ge(features["emergency_admissions_12m"]).all()
    assert features["age"].drop_nulls().is_between(0, 120).all()
    assert features["social_care_package"].sum() == services.height


def test_nothing_after_the_reference_date_is_read(linked):
    """Features at a date before any record (diagnoses go back decades) are empty: no look-ahead.
    Demographics come from the nearest record whatever its date, but nobody is born by 1900."""
    settings, keystore, _ = linked
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        build_features(con, dt.date(1900, 1, 1), ltc_conditions(settings.contracts_dir, settings.today()))
        sums = con.execute("SELECT sum(emergency_admissions_24m), sum(ae_attendances_12m), sum(ltc_count), "
                           "count(age), sum(social_care_weekly_cost) FROM risk_features").fetchone()
    finally:
        con.close()
    assert sums[:4] == (0, 0, 0, 0) and sums[4] == 0
