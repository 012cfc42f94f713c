"""Rescue linkage: records without a valid NHS number (mostly social care) matched to the spine.

A record's age at its activity date bounds its date of birth to one year:
``(date - (age + 1) years, date - age years]``. A person on the spine has the intersection of
those windows over all their linked records, usually much narrower than a year. A record is
matched on the keyed postcode hash and the gender code to people seen at that postcode whose
birth window overlaps the record's and, when the record names a GP practice, who are known at
that practice (by their records or registration), and linked only when exactly one person matches: ``high``
confidence when the person's window lies within the record's, ``medium`` when they only
overlap. Anything else stays unlinked and counted. A rescued person found on an opt-out list is
not linked: the record is dropped from the warehouse's linked view and counted (their NHS
number could not be checked against the list at ingest).

``rescue_outcomes`` holds one row per record without a pseudonym and what became of it:
``rescued``, ``ambiguous`` (two or more people match), ``opted_out``, ``unmatched`` (nobody
matches) or ``not_attempted`` (no usable postcode, age or gender to match on).
"""

from __future__ import annotations

import duckdb

from pipeline.linkage.spine import EVENT_SOURCES, tables_in

__all__ = ["RESCUE_OUTCOMES", "RESCUE_RULE", "rescue_link"]

RESCUE_RULE = "postcode_hash+gender+birth_window+practice"
RESCUE_OUTCOMES = ("rescued", "ambiguous", "opted_out", "unmatched", "not_attempted")


def rescue_link(con: duckdb.DuckDBPyConnection) -> dict:
    """Build ``rescue_outcomes`` and ``rescued_links``; return counts per outcome."""
    present = tables_in(con)
    known, unknown = [], []
    for table, (date_col, practice_col) in EVENT_SOURCES.items():
        if table not in present:
            continue
        name = table.removeprefix("stg_")
        window = (f"{date_col} - to_years(age + 1) + INTERVAL 1 DAY AS born_after, "
                  f"{date_col} - to_years(age) AS born_by")
        known.append(f"SELECT person_pid, postcode_hash, gender, {window} "
                     f"FROM {table} WHERE person_pid IS NOT NULL AND age IS NOT NULL")
        unknown.append(f"SELECT '{name}' AS source, _period, source_row, postcode_hash, gender, {window}, "
                       f"{practice_col or 'NULL'}::VARCHAR AS practice_code FROM {table} WHERE person_pid IS NULL")
    if not known:
        raise ValueError("no staged activity in the warehouse: load deliveries first")
    # Birth windows can narrow to a date of birth, so they live only in this connection's
    # memory (TEMP tables) and are never written to the warehouse: only outcomes are.
    con.execute("CREATE OR REPLACE TEMP TABLE _known AS " + " UNION ALL ".join(known))
    # Each person's birth window: the intersection of their records' windows (the widest
    # window instead if their records disagree, e.g. a wrong age somewhere).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _person_keys AS
        WITH windows AS (
            SELECT person_pid, max(born_after) AS born_after, min(born_by) AS born_by,
                   min(born_after) AS widest_after, max(born_by) AS widest_by
            FROM _known GROUP BY person_pid
        )
        SELECT DISTINCT k.person_pid, k.postcode_hash, k.gender,
               CASE WHEN w.born_after <= w.born_by THEN w.born_after ELSE w.widest_after END AS born_after,
               CASE WHEN w.born_after <= w.born_by THEN w.born_by ELSE w.widest_by END AS born_by
        FROM _known k JOIN windows w USING (person_pid)
        WHERE k.postcode_hash IS NOT NULL AND k.gender IN ('1', '2')
    """)
    con.execute("CREATE OR REPLACE TEMP TABLE _unlinked AS " + " UNION ALL ".join(unknown))
    opted_out = [f"SELECT person_pid FROM {t}" for t in ("stg_ndoo_list", "stg_type1_optout_list") if t in present]
    opted = " UNION ".join(opted_out) if opted_out else "SELECT NULL::VARCHAR AS person_pid WHERE false"
    # The GP practices each person is known at (their records and their registration): a
    # record that names a practice only matches people known there, when anything is known.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _practices AS
        SELECT person_pid, list(DISTINCT practice_code) AS practices FROM (
            SELECT person_pid, practice_code FROM person_events WHERE practice_code IS NOT NULL
            UNION ALL SELECT person_pid, registered_practice FROM spine WHERE registered_practice IS NOT NULL)
        GROUP BY person_pid
    """)
    con.execute("""
        CREATE OR REPLACE TABLE rescue_candidates AS
        SELECT DISTINCT u.source, u._period, u.source_row, k.person_pid,
               k.born_after >= u.born_after AND k.born_by <= u.born_by AS within
        FROM _unlinked u
        JOIN _person_keys k ON k.postcode_hash = u.postcode_hash AND k.gender = u.gender
             AND k.born_after <= u.born_by AND k.born_by >= u.born_after
        LEFT JOIN _practices p ON p.person_pid = k.person_pid
        WHERE u.postcode_hash IS NOT NULL AND u.born_by IS NOT NULL AND u.gender IN ('1', '2')
          AND (u.practice_code IS NULL OR p.practices IS NULL OR list_contains(p.practices, u.practice_code))
    """)
    con.execute("DROP TABLE _practices")
    con.execute(f"""
        CREATE OR REPLACE TABLE rescue_outcomes AS
        WITH matches AS (
            SELECT source, _period, source_row, count(DISTINCT person_pid) AS people,
                   any_value(person_pid) AS person_pid, bool_or(within) AS within
            FROM rescue_candidates GROUP BY ALL
        )
        SELECT u.source, u._period, u.source_row,
               CASE WHEN u.postcode_hash IS NULL OR u.born_by IS NULL OR u.gender NOT IN ('1', '2')
                         THEN 'not_attempted'
                    WHEN m.people IS NULL THEN 'unmatched'
                    WHEN m.people > 1 THEN 'ambiguous'
                    WHEN m.person_pid IN ({opted}) THEN 'opted_out'
                    ELSE 'rescued' END AS outcome,
               CASE WHEN m.people = 1 AND m.person_pid NOT IN ({opted}) THEN m.person_pid END AS person_pid,
               CASE WHEN m.people = 1 THEN CASE WHEN m.within THEN 'high' ELSE 'medium' END END AS confidence
        FROM _unlinked u LEFT JOIN matches m USING (source, _period, source_row)
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE rescued_links AS
        SELECT source, _period, source_row, person_pid, '{RESCUE_RULE}' AS match_rule, confidence
        FROM rescue_outcomes WHERE outcome = 'rescued'
    """)
    # Possible duplicate people: two pseudonyms at one keyed postcode with the same gender and
    # birth window (two NHS numbers for one person, or twins). Counted here, never merged.
    duplicates = con.execute("""
        SELECT count(DISTINCT a.person_pid) FROM _person_keys a JOIN _person_keys b
          ON a.postcode_hash = b.postcode_hash AND a.gender = b.gender AND a.person_pid <> b.person_pid
         AND a.born_after = b.born_after AND a.born_by = b.born_by""").fetchone()[0]
    con.execute("INSERT OR REPLACE INTO _meta VALUES ('possible_duplicate_people', ?)", [str(duplicates)])
    for table in ("_known", "_person_keys", "_unlinked"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    for stale in ("person_keys", "unlinked_records"):  # persisted by earlier versions
        con.execute(f"DROP TABLE IF EXISTS main.{stale}")
    counts = dict(con.execute("SELECT outcome, count(*) FROM rescue_outcomes GROUP BY ALL").fetchall())
    return {"unlinked_records": sum(counts.values())} | {o: counts.get(o, 0) for o in RESCUE_OUTCOMES}
