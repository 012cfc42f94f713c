"""Rescue linkage: records without a valid NHS number (mostly social care) matched to the spine.

The match key is the keyed postcode hash, the gender code and the birth year the record's age
implies at its activity date. A record is linked only when exactly one person matches: an
exact birth year is ``high`` confidence; one year either side (a birthday between events) is
``medium``. Anything else stays unlinked and counted. A rescued person found on an opt-out list
is not linked: the record is dropped from the warehouse's linked view and counted (their
NHS number could not be checked against the list at ingest).
"""

from __future__ import annotations

import duckdb

from pipeline.linkage.spine import EVENT_SOURCES

__all__ = ["RESCUE_RULE", "rescue_link"]

RESCUE_RULE = "postcode_hash+gender+birth_year"


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}


def rescue_link(con: duckdb.DuckDBPyConnection) -> dict:
    """Build ``rescued_links`` and return counts (linked, ambiguous, unmatched, opted out)."""
    present = _tables(con)
    known, unknown = [], []
    for table, (date_col, _) in EVENT_SOURCES.items():
        if table not in present:
            continue
        name = table.removeprefix("stg_")
        known.append(f"SELECT person_pid, postcode_hash, gender, year({date_col}) - age AS birth_year "
                     f"FROM {table} WHERE person_pid IS NOT NULL AND postcode_hash IS NOT NULL AND age IS NOT NULL")
        unknown.append(f"SELECT '{name}' AS source, _period, source_row, postcode_hash, gender, "
                       f"year({date_col}) - age AS birth_year FROM {table} WHERE person_pid IS NULL")
    if not known:
        raise ValueError("no staged activity in the warehouse: load deliveries first")
    con.execute("CREATE OR REPLACE TABLE person_keys AS SELECT DISTINCT * FROM (" + " UNION ALL ".join(known) + ")")
    con.execute("CREATE OR REPLACE TABLE unlinked_records AS " + " UNION ALL ".join(unknown))
    opted_out = [f"SELECT person_pid FROM {t}" for t in ("stg_ndoo_list", "stg_type1_optout_list") if t in present]
    opted = " UNION ".join(opted_out) if opted_out else "SELECT NULL::VARCHAR AS person_pid WHERE false"
    con.execute("""
        CREATE OR REPLACE TABLE rescue_candidates AS
        SELECT u.source, u._period, u.source_row, k.person_pid,
               min(abs(k.birth_year - u.birth_year)) AS year_gap
        FROM unlinked_records u
        JOIN person_keys k ON k.postcode_hash = u.postcode_hash AND k.gender = u.gender
             AND abs(k.birth_year - u.birth_year) <= 1
        WHERE u.postcode_hash IS NOT NULL AND u.birth_year IS NOT NULL AND u.gender IN ('1', '2')
        GROUP BY ALL
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE rescued_links AS
        WITH unique_match AS (
            SELECT source, _period, source_row, any_value(person_pid) AS person_pid, min(year_gap) AS year_gap
            FROM rescue_candidates GROUP BY ALL HAVING count(DISTINCT person_pid) = 1
        )
        SELECT source, _period, source_row, person_pid, '{RESCUE_RULE}' AS match_rule,
               CASE WHEN year_gap = 0 THEN 'high' ELSE 'medium' END AS confidence
        FROM unique_match WHERE person_pid NOT IN ({opted})
    """)
    counts = con.execute(f"""
        SELECT (SELECT count(*) FROM unlinked_records),
               (SELECT count(*) FROM rescued_links),
               (SELECT count(*) FROM (SELECT source, _period, source_row FROM rescue_candidates
                                      GROUP BY ALL HAVING count(DISTINCT person_pid) > 1)),
               (SELECT count(*) FROM (SELECT source, _period, source_row, any_value(person_pid) AS p
                                      FROM rescue_candidates GROUP BY ALL HAVING count(DISTINCT person_pid) = 1)
                WHERE p IN ({opted}))
    """).fetchone()
    return {"unlinked_records": counts[0], "rescued": counts[1], "ambiguous": counts[2],
            "opted_out": counts[3], "unmatched": counts[0] - counts[1] - counts[2] - counts[3]}
