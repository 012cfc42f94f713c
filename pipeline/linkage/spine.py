"""The person spine: one row per pseudonymised person across every feed.

Built in the warehouse from the staged tables with reviewed SQL. For each person: the latest
age, gender and geography (from the most recent event that has them), the registered GP
practice (the current GP registration, else the practice on the latest hospital record), the
feeds they appear in, and flags for conflicting demographics: two different recorded genders
(1 and 2), or ages that imply birth years more than a year apart.
"""

from __future__ import annotations

import duckdb

__all__ = ["EMERGENCY_METHODS", "EVENT_SOURCES", "build_spine", "tables_in"]

#: staged table -> (activity date column, practice column or None)
EVENT_SOURCES: dict[str, tuple[str, str | None]] = {
    "stg_sus_apc_spells": ("admission_date", "gp_practice_code"),
    "stg_sus_op_attendances": ("appointment_date", "gp_practice_code"),
    "stg_ecds_attendances": ("arrival_date", "gp_practice_code"),
    "stg_csds_contacts": ("contact_date", None),
    "stg_mhsds_contacts": ("contact_date", None),
    "stg_gp_registrations": ("extract_date", "practice_code"),
    "stg_asc_clients": ("extract_date", None),
}
#: Emergency admission methods (NHS Data Dictionary), counted per spell.
EMERGENCY_METHODS = ("21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28")


def tables_in(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables of the attached warehouse."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}


def build_spine(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build ``person_events``, ``spine`` and ``apc_spells`` in the attached warehouse;
    returns the number of people."""
    present = tables_in(con)
    parts = []
    for table, (date_col, practice_col) in EVENT_SOURCES.items():
        if table not in present:
            continue
        practice = practice_col or "NULL"
        parts.append(
            f"SELECT person_pid, '{table.removeprefix('stg_')}' AS source, {date_col} AS event_date, age, gender, "
            f"postcode_sector, lsoa21cd, ward_code, imd_decile, {practice} AS practice_code "
            f"FROM {table} WHERE person_pid IS NOT NULL"
        )
    if not parts:
        raise ValueError("no staged activity in the warehouse: load deliveries first")
    con.execute("CREATE OR REPLACE TABLE person_events AS " + " UNION ALL ".join(parts))
    current_practice = (
        "SELECT person_pid, arg_max(practice_code, registration_start) AS registered_practice "
        "FROM stg_gp_registrations WHERE person_pid IS NOT NULL AND registration_end IS NULL GROUP BY person_pid"
        if "stg_gp_registrations" in present else
        "SELECT NULL::VARCHAR AS person_pid, NULL::VARCHAR AS registered_practice WHERE false"
    )
    con.execute(f"""
        CREATE OR REPLACE TABLE spine AS
        WITH e AS (SELECT * FROM person_events),
        latest AS (
            SELECT person_pid,
                   arg_max(age, event_date) FILTER (WHERE age IS NOT NULL) AS age,
                   max(event_date) FILTER (WHERE age IS NOT NULL) AS age_as_at,
                   arg_max(gender, event_date) FILTER (WHERE gender IN ('1', '2')) AS gender_known,
                   arg_max(gender, event_date) AS gender_any,
                   arg_max(postcode_sector, event_date) FILTER (WHERE lsoa21cd IS NOT NULL) AS postcode_sector,
                   arg_max(lsoa21cd, event_date) FILTER (WHERE lsoa21cd IS NOT NULL) AS lsoa21cd,
                   arg_max(ward_code, event_date) FILTER (WHERE lsoa21cd IS NOT NULL) AS ward_code,
                   arg_max(imd_decile, event_date) FILTER (WHERE lsoa21cd IS NOT NULL) AS imd_decile,
                   arg_max(practice_code, event_date) FILTER (WHERE practice_code IS NOT NULL) AS latest_practice,
                   count(DISTINCT gender) FILTER (WHERE gender IN ('1', '2')) > 1 AS gender_conflict,
                   coalesce(max(year(event_date) - age) - min(year(event_date) - age), 0) > 1 AS age_conflict,
                   list_sort(list_distinct(list(source))) AS sources,
                   count(*) AS events
            FROM e GROUP BY person_pid
        )
        SELECT l.person_pid, l.age, l.age_as_at, coalesce(l.gender_known, l.gender_any) AS gender,
               l.postcode_sector, l.lsoa21cd, l.ward_code, l.imd_decile,
               coalesce(r.registered_practice, l.latest_practice) AS registered_practice,
               l.gender_conflict, l.age_conflict, l.sources, l.events
        FROM latest l LEFT JOIN ({current_practice}) r USING (person_pid)
        ORDER BY l.person_pid
    """)
    if "stg_sus_apc_spells" in present:
        methods = ", ".join(f"'{m}'" for m in EMERGENCY_METHODS)
        con.execute(f"""
            CREATE OR REPLACE TABLE apc_spells AS
            SELECT DISTINCT ON (spell_id) person_pid, spell_id, admission_date, discharge_date, admission_method,
                   admission_method IN ({methods}) AS emergency, primary_diagnosis, spell_cost, provider_code
            FROM stg_sus_apc_spells ORDER BY spell_id, _version DESC
        """)
    return con.execute("SELECT count(*) FROM spine").fetchone()[0]
