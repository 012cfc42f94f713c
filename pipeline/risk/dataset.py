"""Modelling frames: who is in the population at a reference date, their features, the outcome.

- Population at ``R``: people registered with a GP practice on the day before ``R``, with that
  practice (the practice list is the denominator case finding works from). Without a GP
  registration feed: everyone with a record before ``R``.
- Outcome: at least one emergency hospital spell (admission methods 21-2D, 28) admitted in
  ``[R, R + 1 year)``. It exists only when the warehouse's activity covers that whole year.
- A feature is usable at ``R`` only if the activity data cover its whole look-back window;
  otherwise it is left out of training, with the reason (see ``usable_features``).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from pipeline.linkage.coverage import ACTIVITY_SOURCES, Coverage, activity_coverage, one_year_after
from pipeline.linkage.linked import create_linked_views, warehouse_tables
from pipeline.risk.features import all_features, build_features

__all__ = ["ACTIVITY_SOURCES", "Coverage", "activity_coverage", "model_frame", "one_year_after", "usable_features"]

def usable_features(conditions: tuple[str, ...], coverage: Coverage,
                    reference_date: dt.date) -> tuple[list[str], dict[str, str]]:
    """Feature names whose look-back the data cover at ``reference_date``, and the others with why."""
    usable, left_out = [], {}
    for feature in all_features(conditions):
        if coverage.covers_lookback(reference_date, feature.lookback):
            usable.append(feature.name)
        else:
            left_out[feature.name] = (f"needs {feature.lookback} years of history before {reference_date}; "
                                      f"activity starts {coverage.first}")
    return usable, left_out


def _population_sql(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    present = warehouse_tables(con)
    if "stg_gp_registrations" in present:
        create_linked_views(con, present)  # a registration found by rescue linkage counts too
        return f"""SELECT person_pid, arg_max(practice_code, registration_start) AS practice_code
                   FROM linked_gp_registrations
                   WHERE person_pid IS NOT NULL AND registration_start < {ref}
                     AND (registration_end IS NULL OR registration_end >= {ref} - INTERVAL 1 DAY)
                   GROUP BY person_pid"""
    return f"""SELECT person_pid, NULL::VARCHAR AS practice_code FROM w.person_events
               WHERE event_date < {ref} GROUP BY person_pid"""


def model_frame(con: duckdb.DuckDBPyConnection, reference_date: dt.date, conditions: tuple[str, ...], *,
                outcome: bool, target: str = "_features") -> pl.DataFrame:
    """One row per person in the population at ``reference_date``: person_pid, practice_code,
    every feature, and (``outcome=True``) the boolean ``outcome``. Sorted by person_pid."""
    build_features(con, reference_date, conditions, target=target)
    ref = f"DATE '{reference_date.isoformat()}'"
    outcome_sql, outcome_join = "", ""
    if outcome:
        coverage = activity_coverage(con)
        if not coverage.outcome_known(reference_date):
            raise ValueError(f"the outcome after {reference_date} is not known: activity ends {coverage.last}")
        if "_spells" not in {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE temporary")
                             .fetchall()}:
            raise ValueError("the outcome needs hospital spells (sus_apc) in the warehouse")
        end = f"DATE '{one_year_after(reference_date).isoformat()}'"
        outcome_sql = ", o.person_pid IS NOT NULL AS outcome"
        outcome_join = (f"LEFT JOIN (SELECT DISTINCT person_pid FROM _spells WHERE emergency AND "
                        f"admission_date >= {ref} AND admission_date < {end}) o USING (person_pid)")
    return con.execute(f"""
        SELECT f.*, p.practice_code{outcome_sql}
        FROM {target} f JOIN ({_population_sql(con, ref)}) p USING (person_pid) {outcome_join}
        ORDER BY person_pid
    """).pl()
