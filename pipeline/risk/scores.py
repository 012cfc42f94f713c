"""Scores for everyone in the population on the scoring date, in tiers, with drivers.

The score comes from our own model (``score_with_model``) or from an external tool
(``read_external_scores``: a CSV or Parquet file of ``pseudonym`` and ``score``, the pseudonym
as analysts see it in the person mart, hex or display form), so a CSU that buys a commercial
model still gets tiers, the person mart, case-finding packs and re-identification. Either way
``write_scores`` puts one row per person in ``w.risk_scores``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import polars as pl

from pipeline.errors import UserError
from pipeline.marts.build import mart_person_ids
from pipeline.pseudonymise.pseudonyms import display_form
from pipeline.risk.dataset import model_frame
from pipeline.risk.models import RiskModel
from pipeline.risk.tiers import TierScheme, assign_tiers

__all__ = ["read_external_scores", "score_with_model", "tier_counts", "write_scores"]

DRIVERS = 3


def score_with_model(con: duckdb.DuckDBPyConnection, model: RiskModel, conditions: tuple[str, ...],
                     scoring_date: dt.date, scheme: TierScheme) -> pl.DataFrame:
    """Features at the scoring date (kept as ``w.risk_features``), scores, tiers, drivers."""
    frame = model_frame(con, scoring_date, conditions, outcome=False, target="w.risk_features")
    scored = frame.with_columns(score=pl.Series(model.predict(frame)))
    tiered = assign_tiers(scored.select("person_pid", "practice_code", "age", "score"), scheme)
    # Drivers for everyone above the bottom tier (they are the ones anybody will look at).
    wanted = tiered.filter(pl.col("tier").is_in([t for t, _ in scheme.bands]))["person_pid"]
    subset = frame.filter(pl.col("person_pid").is_in(wanted.implode()))
    drivers = pl.DataFrame({"person_pid": subset["person_pid"],
                            "drivers": pl.Series(model.drivers(subset, DRIVERS), dtype=pl.List(pl.String))})
    return tiered.join(drivers, on="person_pid", how="left")


def read_external_scores(con: duckdb.DuckDBPyConnection, keystore, path: Path, conditions: tuple[str, ...],
                         scoring_date: dt.date, scheme: TierScheme) -> tuple[pl.DataFrame, dict]:
    """Scores from another tool, mapped to people and tiered as ours would be; returns the
    frame and counts (rows, matched, unknown pseudonyms, not in the population)."""
    path = Path(path)
    try:
        raw = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(f"{path.name}: cannot read external scores ({type(exc).__name__})") from None
    columns = {c.lower().strip(): c for c in raw.columns}
    for needed in ("pseudonym", "score"):
        if needed not in columns:
            raise UserError(f"{path.name}: no column '{needed}' (external scores need pseudonym and score)")
    scores = raw.select(pseudonym=pl.col(columns["pseudonym"]).cast(pl.String).str.strip_chars(),
                        score=pl.col(columns["score"]).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False))
    bad = scores.filter(pl.col("score").is_null() | ~pl.col("score").is_finite()).height
    if bad:
        raise UserError(f"{path.name}: column '{columns['score']}' has {bad} value(s) that are not finite numbers")
    dupes = scores.filter(pl.col("pseudonym").is_duplicated())["pseudonym"].n_unique()
    if dupes:
        raise UserError(f"{path.name}: column '{columns['pseudonym']}' repeats {dupes} pseudonym(s)")
    people = mart_person_ids(con, keystore).rename({"person_id": "pseudonym"})
    people = people.with_columns(display=pl.col("pseudonym").map_elements(display_form, return_dtype=pl.String))
    hex_match = scores.join(people.select("person_pid", "pseudonym"), on="pseudonym", how="inner")
    shown = scores.rename({"pseudonym": "display"}).join(people.select("person_pid", "display"), on="display",
                                                         how="inner")
    matched = pl.concat([hex_match.select("person_pid", "score"), shown.select("person_pid", "score")])
    if matched.height == 0:
        raise UserError(f"{path.name}: no pseudonym matches the person mart (expected the mart's person_id, "
                        "32 hex characters, or its display form)")
    population = model_frame(con, scoring_date, conditions, outcome=False, target="w.risk_features") \
        .select("person_pid", "practice_code", "age")
    joined = population.join(matched, on="person_pid", how="left")
    tiered = assign_tiers(joined, scheme).with_columns(drivers=pl.lit(None, dtype=pl.List(pl.String)))
    counts = {"file": path.name, "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "rows": scores.height, "matched": matched.height, "unknown_pseudonyms": scores.height - matched.height,
              "not_in_population": matched.height - int(joined["score"].is_not_null().sum()),
              "population_without_score": int(joined["score"].is_null().sum())}
    return tiered, counts


def write_scores(con: duckdb.DuckDBPyConnection, tiered: pl.DataFrame, *, scoring_date: dt.date,
                 model_version: str, source: str) -> dict[str, int]:
    """Replace ``w.risk_scores``; returns people per tier."""
    frame = tiered.select("person_pid", "practice_code", "score", "tier", "tier_rank", "drivers").with_columns(
        reference_date=pl.lit(scoring_date), model_version=pl.lit(model_version), score_source=pl.lit(source))
    con.register("_scores", frame.to_arrow())
    try:
        con.execute("CREATE OR REPLACE TABLE w.risk_scores AS SELECT * FROM _scores ORDER BY person_pid")
    finally:
        con.unregister("_scores")
    return tier_counts(frame)


def tier_counts(frame: pl.DataFrame) -> dict[str, int]:
    counts = frame.group_by("tier").len()
    return {t: int(n) for t, n in zip(counts["tier"].to_list(), counts["len"].to_list(), strict=True)}

