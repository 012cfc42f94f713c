"""Deterministic linkage against the synthetic ground truth: every pseudonym is one real person
(precision 1.0), and exactly the records with a valid NHS number are linked (recall = their share)."""

import json

import polars as pl

from pipeline.linkage import open_warehouse
from pipeline.linkage.rescue import RESCUE_OUTCOMES
from tests.staged import staged_frame

ACTIVITY = ("sus_apc", "sus_op", "ecds", "csds", "mhsds", "gp", "asc")


def _staged_with_truth(settings):
    frames = []
    for manifest in settings.staging.rglob("*.manifest.json"):
        doc = json.loads(manifest.read_text())
        if doc["feed"] not in ACTIVITY:
            continue
        staged = staged_frame(settings, manifest.with_name(doc["output"]["file"]))
        if "person_pid" not in staged.columns:
            continue
        truth = pl.read_parquet(settings.synthetic_truth / "records" / doc["input"]["file"].replace(".csv", ".parquet"))
        joined = staged.select("person_pid", "source_row").with_columns(
            source=pl.lit(doc["table"]), period=pl.lit(doc["period"])).join(
            truth.select(pl.col("row").cast(pl.Int64).alias("source_row"), "person_id", "intended_nhs_status"),
            on="source_row", how="left")
        frames.append(joined)
    return pl.concat(frames)


def test_deterministic_linkage_precision_and_recall(linked):
    """Against the synthetic truth, on the session's linked population (``link`` built its spine
    and rescue links with ``build_spine`` and ``rescue_link``; read here, not rebuilt)."""
    settings, store, summary = linked
    records = _staged_with_truth(settings)
    assert records["person_id"].null_count() == 0 and records.height > 10_000
    linked = records.filter(pl.col("person_pid").is_not_null())
    # Precision 1.0: no pseudonym covers two people, and no person is split over two pseudonyms.
    assert linked.group_by("person_pid").agg(pl.col("person_id").n_unique())["person_id"].max() == 1
    assert linked.group_by("person_id").agg(pl.col("person_pid").n_unique())["person_pid"].max() == 1
    # Recall equals the share of records with a valid NHS number, exactly.
    valid = records["intended_nhs_status"] == "valid"
    assert (records["person_pid"].is_not_null() == valid).all()

    people, rescue = summary.people, summary.rescue
    con = open_warehouse(settings, store).open(create=False)
    try:
        rescued = con.execute("SELECT source, _period AS period, source_row, person_pid, confidence FROM rescued_links").pl()
        spine = con.execute("SELECT * FROM spine").pl()
        spells = con.execute("SELECT count(*), count(DISTINCT spell_id) FROM apc_spells").fetchone()
    finally:
        con.close()
    assert people == spine.height == spine["person_pid"].n_unique() == linked["person_pid"].n_unique()
    assert spells[0] == spells[1]  # spells, not episodes
    assert not spine["gender_conflict"].any() and not spine["age_conflict"].any()
    assert spine["registered_practice"].null_count() < 0.01 * people
    assert spine["age"].is_between(0, 120).all()

    # Rescue linkage: records without a valid NHS number, matched on keyed postcode, gender and
    # birth year to a unique person. Precision against the ground truth must be at least 0.99.
    pid_to_person = linked.select("person_pid", "person_id").unique()
    truth_of_unlinked = records.filter(pl.col("person_pid").is_null()).select("source", "period", "source_row",
                                                                               true_person="person_id")
    checked = rescued.join(truth_of_unlinked, on=["source", "period", "source_row"]).join(pid_to_person, on="person_pid")
    assert checked.height == rescued.height > 50
    precision = (checked["person_id"] == checked["true_person"]).mean()
    print(f"rescue: {rescue}, precision {precision:.4f} over {checked.height} links")
    assert precision >= 0.99, precision
    assert sum(rescue[o] for o in RESCUE_OUTCOMES) == rescue["unlinked_records"]
