"""Linkage quality: what was linked, how, and what was not, as counts.

``record_linkage`` (in the warehouse) has one row per staged person-level record: its feed,
delivery period and row, NHS number status, the person it is linked to and how
(``deterministic`` on the pseudonym, ``rescued`` by the rescue rule, or ``unlinked`` with the
reason), and the age, gender and IMD decile it carried. ``linkage_quality`` summarises it as
counts only (no pseudonym, no postcode hash): the input of the report, the Prefect artifact
and the audit entry.

The report is an internal, operational document for data engineers and IG leads inside the
safe haven: its counts are not suppressed and it is never published (``outputs/`` is only for
aggregates that passed disclosure control).
"""

from __future__ import annotations

import datetime as dt

import duckdb

from pipeline.linkage.rescue import RESCUE_RULE
from pipeline.linkage.spine import EVENT_SOURCES, tables_in

__all__ = ["AGE_BANDS", "LINK_STATUSES", "age_band_sql", "build_record_linkage", "linkage_quality"]

#: Age bands of the report (lower bounds; the last is open).
AGE_BANDS = ((0, "0-17"), (18, "18-39"), (40, "40-64"), (65, "65-74"), (75, "75-84"), (85, "85+"))
LINK_STATUSES = ("deterministic", "rescued", "unlinked")
#: Person-level tables without demographics of their own (linked on the pseudonym only).
OTHER_PERSON_TABLES = ("stg_gp_ltc_diagnoses", "stg_gp_prescribing")
GENDER_NAMES = {"1": "male", "2": "female", "9": "not stated", "X": "not known"}


def age_band_sql(column: str) -> str:
    """SQL for the report's age band of an age column ('unknown' when null)."""
    cases = " ".join(f"WHEN {column} >= {low} THEN '{label}'" for low, label in reversed(AGE_BANDS))
    return f"CASE {cases} ELSE 'unknown' END"


def build_record_linkage(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build ``record_linkage`` after the spine and rescue linkage; returns its rows."""
    present = tables_in(con)
    parts = []
    for table in [*EVENT_SOURCES, *OTHER_PERSON_TABLES]:
        if table not in present:
            continue
        columns = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
        demo = ", ".join(c if c in columns else f"NULL AS {c}" for c in ("age", "gender", "imd_decile"))
        parts.append(f"SELECT '{table.removeprefix('stg_')}' AS source, _period, _version, source_row, "
                     f"nhs_number_status, person_pid, {demo} FROM {table}")
    if not parts:
        raise ValueError("no staged activity in the warehouse: load deliveries first")
    rescue = "rescue_outcomes" if "rescue_outcomes" in present else (
        "(SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS _period, NULL::BIGINT AS source_row, "
        "NULL::VARCHAR AS outcome, NULL::VARCHAR AS person_pid, NULL::VARCHAR AS confidence WHERE false)")
    con.execute(f"""
        CREATE OR REPLACE TABLE record_linkage AS
        SELECT r.source, r._period, r._version, r.source_row, r.nhs_number_status,
               coalesce(r.person_pid, o.person_pid) AS person_pid,
               CASE WHEN r.person_pid IS NOT NULL THEN 'deterministic'
                    WHEN o.outcome = 'rescued' THEN 'rescued' ELSE 'unlinked' END AS link_status,
               CASE WHEN r.person_pid IS NOT NULL THEN 'nhs_number'
                    WHEN o.outcome = 'rescued' THEN '{RESCUE_RULE}' END AS match_rule,
               CASE WHEN r.person_pid IS NOT NULL THEN 'exact' WHEN o.outcome = 'rescued' THEN o.confidence
               END AS confidence,
               CASE WHEN r.person_pid IS NULL AND coalesce(o.outcome, '') <> 'rescued'
                    THEN coalesce(o.outcome, 'not_attempted') END AS unlinked_reason,
               r.age, {age_band_sql('r.age')} AS age_band, r.gender,
               CAST(ceil(r.imd_decile / 2) AS INTEGER) AS imd_quintile
        FROM ({' UNION ALL BY NAME '.join(parts)}) r
        LEFT JOIN {rescue} o ON o.source = r.source AND o._period = r._period AND o.source_row = r.source_row
    """)
    return con.execute("SELECT count(*) FROM record_linkage").fetchone()[0]


def _crosstab(con, column: str) -> dict[str, dict[str, int]]:
    rows = con.execute(f"""
        SELECT coalesce(CAST({column} AS VARCHAR), 'unknown') AS k, link_status, count(*)
        FROM record_linkage GROUP BY ALL ORDER BY 1, 2""").fetchall()
    out: dict[str, dict[str, int]] = {}
    for key, status, n in rows:
        out.setdefault(key, dict.fromkeys(LINK_STATUSES, 0))[status] = n
    return out


def _duplicate_records(con) -> dict[str, int]:
    """Per staged table: rows identical to another row in every column but their position."""
    out = {}
    for table in sorted(t for t in tables_in(con) if t.startswith("stg_")):
        n = con.execute(f"""
            SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT
                   COLUMNS(c -> c NOT IN ('source_row', '_period', '_version')) FROM {table}))
            FROM {table}""").fetchone()[0]
        out[table.removeprefix("stg_")] = n
    return out


def linkage_quality(con: duckdb.DuckDBPyConnection) -> dict:
    """Counts that describe this run's linkage (no pseudonyms, no hashes)."""
    totals = dict(con.execute("SELECT link_status, count(*) FROM record_linkage GROUP BY ALL").fetchall())
    reasons = dict(con.execute("SELECT unlinked_reason, count(*) FROM record_linkage "
                               "WHERE unlinked_reason IS NOT NULL GROUP BY ALL ORDER BY 1").fetchall())
    confidence = dict(con.execute("SELECT confidence, count(*) FROM record_linkage "
                                  "WHERE link_status = 'rescued' GROUP BY ALL ORDER BY 1").fetchall())
    status_by_feed: dict[str, dict[str, int]] = {}
    for source, status, n in con.execute("SELECT source, nhs_number_status, count(*) FROM record_linkage "
                                         "GROUP BY ALL ORDER BY 1, 2").fetchall():
        status_by_feed.setdefault(source, {})[status] = n
    spine = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE gender_conflict), count(*) FILTER (WHERE age_conflict),
               count(*) FILTER (WHERE registered_practice IS NULL), count(*) FILTER (WHERE lsoa21cd IS NULL)
        FROM spine""").fetchone()
    meta = dict(con.execute("SELECT key, value FROM _meta").fetchall())
    records = sum(totals.values())
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "linkage_key": {"key_id": meta.get("linkage_key_id"), "fingerprint": meta.get("linkage_fingerprint")},
        "deliveries": con.execute("SELECT count(*) FROM _loads WHERE superseded_by IS NULL").fetchone()[0],
        "records": records,
        "people": spine[0],
        "link_status": {s: totals.get(s, 0) for s in LINK_STATUSES},
        "linked_share": round((records - totals.get("unlinked", 0)) / records, 6) if records else 0.0,
        "unlinked_reasons": reasons,
        "rescue_confidence": confidence,
        "nhs_number_status_by_feed": status_by_feed,
        "by_feed": _crosstab(con, "source"),
        "by_age_band": _crosstab(con, "age_band"),
        "by_gender": {GENDER_NAMES.get(k, k): v for k, v in _crosstab(con, "gender").items()},
        "by_imd_quintile": _crosstab(con, "imd_quintile"),
        "conflicts": {"gender": spine[1], "age": spine[2]},
        "spine_gaps": {"no_registered_practice": spine[3], "no_geography": spine[4]},
        "possible_duplicate_people": int(meta.get("possible_duplicate_people", 0)),
        "duplicate_records": _duplicate_records(con),
    }
