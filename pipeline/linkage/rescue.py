"""Rescue linkage: records without a valid NHS number (mostly social care) matched to the spine.

The match key is the keyed postcode hash, the gender code and the birth year the record's age
implies at its activity date. A record is linked only when exactly one person matches: an
exact birth year is ``high`` confidence; one year either side (a birthday between events) is
``medium``. Anything else stays unlinked and counted. A rescued person found on an opt-out list
is not linked: the record is dropped from the warehouse's linked view and counted (their
NHS number could not be checked against the list at ingest).

``rescue_outcomes`` holds one row per record without a pseudonym and what became of it:
``rescued``, ``ambiguous`` (two or more people match), ``opted_out``, ``unmatched`` (nobody
matches) or ``not_attempted`` (no usable postcode, age or gender to match on).
"""

from __future__ import annotations

import duckdb

from pipeline.linkage.spine import EVENT_SOURCES, tables_in

__all__ = ["RESCUE_OUTCOMES", "RESCUE_RULE", "rescue_link"]

RESCUE_RULE = "postcode_hash+gender+birth_year"
RESCUE_OUTCOMES = ("rescued", "ambiguous", "opted_out", "unmatched", "not_attempted")


def rescue_link(con: duckdb.DuckDBPyConnection) -> dict:
    """Build ``rescue_outcomes`` and ``rescued_links``; return counts per outcome."""
    present = tables_in(con)
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
        CREATE OR REPLACE TABLE rescue_outcomes AS
        WITH matches AS (
            SELECT source, _period, source_row, count(DISTINCT person_pid) AS people,
                   any_value(person_pid) AS person_pid, min(year_gap) AS year_gap
            FROM rescue_candidates GROUP BY ALL
        )
        SELECT u.source, u._period, u.source_row,
               CASE WHEN u.postcode_hash IS NULL OR u.birth_year IS NULL OR u.gender NOT IN ('1', '2')
                         THEN 'not_attempted'
                    WHEN m.people IS NULL THEN 'unmatched'
                    WHEN m.people > 1 THEN 'ambiguous'
                    WHEN m.person_pid IN ({opted}) THEN 'opted_out'
                    ELSE 'rescued' END AS outcome,
               CASE WHEN m.people = 1 AND m.person_pid NOT IN ({opted}) THEN m.person_pid END AS person_pid,
               CASE WHEN m.people = 1 THEN m.year_gap END AS year_gap
        FROM unlinked_records u LEFT JOIN matches m USING (source, _period, source_row)
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE rescued_links AS
        SELECT source, _period, source_row, person_pid, '{RESCUE_RULE}' AS match_rule,
               CASE WHEN year_gap = 0 THEN 'high' ELSE 'medium' END AS confidence
        FROM rescue_outcomes WHERE outcome = 'rescued'
    """)
    counts = dict(con.execute("SELECT outcome, count(*) FROM rescue_outcomes GROUP BY ALL").fetchall())
    return {"unlinked_records": sum(counts.values())} | {o: counts.get(o, 0) for o in RESCUE_OUTCOMES}
