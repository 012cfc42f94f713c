"""Risk features: one row per person at a reference date, computed in DuckDB.

Every feature is declared once, here, with its description and the SQL that computes it.
The reference date ``R`` is the first day of the year being predicted: features describe the
person at the end of the day before, so only rows dated before ``R`` are read (``{R}`` in the
SQL), and "12 months" means ``[R - 1 year, R)``. The one exception is demographics (age,
gender, deprivation), read from the nearest record whatever its date: see ``_NEAREST``. ``lookback`` says how much history a feature
needs, so training can leave out features whose window the data does not cover. Activity is counted through the rescue-aware ``linked_*`` views, hospital
activity in spells (not episodes). The long-term conditions are the ``condition`` values the
GP contract declares, so a new condition in the contract becomes a new flag.

``build_features(con, reference_date, conditions)`` writes ``risk_features`` in the warehouse
(attached as ``w``): person_pid, reference_date and one column per feature.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from pipeline.linkage.linked import create_linked_views, warehouse_tables
from pipeline.linkage.spine import EMERGENCY_METHODS

__all__ = ["FEATURES", "Feature", "all_features", "build_features", "feature_names", "ltc_conditions"]

_EMERGENCY = ", ".join(f"'{m}'" for m in EMERGENCY_METHODS)


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    source: str  # a relation with person_pid
    expression: str  # an aggregate over the source's rows for one person
    where: str = "true"  # which rows count ({R} = the reference date)
    default: str | None = "0"  # the value for people with no such rows (None: stays null)
    lookback: int = 0  # years of history the feature needs (0: a state, read as at the day before R)


def _within(column: str, years: int = 1) -> str:
    return f"{column} >= {{R}} - INTERVAL {years} YEAR AND {column} < {{R}}"


#: Demographics describe who a person is, not what happened to them: they come from the nearest
#: record, the latest before R if there is one, else the earliest after it (the GP registration
#: extract, taken later, is often the only record of someone with no recent activity).
_NEAREST = ("CASE WHEN event_date < {R} THEN date_diff('day', event_date, {R}) "
            "ELSE 1000000 + date_diff('day', {R}, event_date) END")
_RUNNING = "start_date < {R} AND (end_date IS NULL OR end_date >= {R} - INTERVAL 1 DAY)"


FEATURES: tuple[Feature, ...] = (
    Feature("age", "Age in whole years on the reference date, from the nearest record's age and date.",
            "w.person_events",
            "nullif(greatest(floor(arg_min({{'a': age, 'd': event_date}}, " + _NEAREST + ").a + "
            "date_diff('day', arg_min({{'a': age, 'd': event_date}}, " + _NEAREST + ").d, {R}) / 365.25), -1), -1)"
            "::INTEGER", "age IS NOT NULL", None),
    Feature("female", "Recorded gender is female (NHS Data Dictionary code 2), from the nearest record.",
            "w.person_events", "arg_min(gender, " + _NEAREST + ") = '2'", "gender IN ('1', '2')", "false"),
    Feature("imd_decile", "IMD decile of the nearest known LSOA (1 = most deprived).",
            "w.person_events", "arg_min(imd_decile, " + _NEAREST + ")", "imd_decile IS NOT NULL", None),
    Feature("emergency_admissions_12m", "Emergency hospital spells (admission methods 21-2D, 28) in 12 months.",
            "_spells", "count(*) FILTER (WHERE emergency)", _within("admission_date"), lookback=1),
    Feature("emergency_admissions_24m", "Emergency hospital spells in 24 months.",
            "_spells", "count(*) FILTER (WHERE emergency)", _within("admission_date", 2), lookback=2),
    Feature("elective_admissions_12m", "Other hospital spells in 12 months.",
            "_spells", "count(*) FILTER (WHERE NOT emergency)", _within("admission_date"), lookback=1),
    Feature("bed_days_12m", "Bed days in spells admitted in 12 months.",
            "_spells", "sum(greatest(date_diff('day', admission_date, coalesce(discharge_date, admission_date)), 0))",
            _within("admission_date"), lookback=1),
    Feature("ae_attendances_12m", "Emergency department attendances in 12 months.",
            "linked_ecds_attendances", "count(*)", _within("arrival_date"), lookback=1),
    Feature("op_attendances_12m", "Outpatient appointments attended (status 5 or 6) in 12 months.",
            "linked_sus_op_attendances", "count(*) FILTER (WHERE attendance_status IN ('5', '6'))",
            _within("appointment_date"), lookback=1),
    Feature("op_missed_12m", "Outpatient appointments missed (did not attend, status 3; arrived too late, 7).",
            "linked_sus_op_attendances", "count(*) FILTER (WHERE attendance_status IN ('3', '7'))",
            _within("appointment_date"), lookback=1),
    Feature("community_contacts_12m", "Community health contacts in 12 months.",
            "linked_csds_contacts", "count(*)", _within("contact_date"), lookback=1),
    Feature("mh_contacts_12m", "Mental health contacts in 12 months.",
            "linked_mhsds_contacts", "count(*)", _within("contact_date"), lookback=1),
    Feature("bnf_chapters_12m", "BNF chapters prescribed in 12 months (polypharmacy).",
            "w.stg_gp_prescribing", "count(DISTINCT bnf_chapter)",
            "first_issue_date < {R} AND last_issue_date >= {R} - INTERVAL 1 YEAR", lookback=1),
    Feature("social_care_package", "Receiving an adult social care service on the reference date.",
            "_asc_services", "count(*) > 0", _RUNNING, "false"),
    Feature("social_care_weekly_cost", "Weekly cost of adult social care services on the reference date.",
            "_asc_services", "coalesce(sum(weekly_cost), 0)",
            _RUNNING),
)


def ltc_conditions(contracts_dir, as_of: dt.date | None = None) -> tuple[str, ...]:
    """The long-term conditions the GP contract declares (``gp_ltc_diagnoses.condition``)."""
    from pipeline.contracts import require_contract

    return require_contract(contracts_dir, "gp", as_of).tables["gp_ltc_diagnoses"].column("condition").enum


def _ltc_features(conditions: tuple[str, ...]) -> tuple[Feature, ...]:
    flags = tuple(Feature(f"ltc_{c.replace('-', '_')}", f"Long-term condition recorded before the reference date: {c}.",
                          "w.stg_gp_ltc_diagnoses", f"bool_or(condition = '{c}')", "diagnosis_date < {R}", "false")
                  for c in conditions)
    count = Feature("ltc_count", "Distinct long-term conditions recorded before the reference date.",
                    "w.stg_gp_ltc_diagnoses", "count(DISTINCT condition)", "diagnosis_date < {R}")
    return (*flags, count)


def feature_names(conditions: tuple[str, ...]) -> list[str]:
    return [f.name for f in all_features(conditions)]


def all_features(conditions: tuple[str, ...]) -> tuple[Feature, ...]:
    return (*FEATURES, *_ltc_features(conditions))


def build_features(con: duckdb.DuckDBPyConnection, reference_date: dt.date, conditions: tuple[str, ...],
                   target: str = "w.risk_features") -> int:
    """(Re)build ``target`` (by default ``w.risk_features``; ``_x`` names a TEMP table) for
    everyone on the spine; returns the number of people."""
    present = warehouse_tables(con)
    relations = {f"w.{t}" for t in present} | {f"linked_{t}" for t in create_linked_views(con, present)}
    if "linked_sus_apc_spells" in relations:
        con.execute(f"""CREATE OR REPLACE TEMP VIEW _spells AS
            SELECT DISTINCT ON (spell_id) person_pid, spell_id, admission_date, discharge_date,
                   admission_method IN ({_EMERGENCY}) AS emergency
            FROM linked_sus_apc_spells ORDER BY spell_id, _version DESC""")
        relations.add("_spells")
    if {"w.stg_asc_services", "linked_asc_clients"} <= relations:
        con.execute("""CREATE OR REPLACE TEMP VIEW _asc_services AS
            SELECT DISTINCT c.person_pid, s.service_id, s.start_date, s.end_date, s.weekly_cost
            FROM w.stg_asc_services s JOIN linked_asc_clients c USING (client_id_pid)""")
        relations.add("_asc_services")
    ref = f"DATE '{reference_date.isoformat()}'"
    # One grouped subquery per (source, rows) pair: the 13 condition flags and their count, say,
    # share one scan of the diagnoses.
    groups: dict[tuple[str, str], list[int]] = {}
    features = all_features(conditions)
    for i, feature in enumerate(features):
        if feature.source in relations:
            groups.setdefault((feature.source, feature.where), []).append(i)
    joins, value_of = [], {}
    for g, ((source, where), members) in enumerate(groups.items()):
        values = ", ".join(f"{features[i].expression.format(R=ref)} AS v{i}" for i in members)
        joins.append(f"LEFT JOIN (SELECT person_pid, {values} FROM {source} WHERE person_pid IS NOT NULL AND "
                     f"({where.format(R=ref)}) GROUP BY person_pid) g{g} USING (person_pid)")
        value_of |= {i: f"g{g}.v{i}" for i in members}
    columns = []
    for i, feature in enumerate(features):
        if i not in value_of:
            columns.append(f"{feature.default or 'NULL'} AS {feature.name}")
        elif feature.default:
            columns.append(f"coalesce({value_of[i]}, {feature.default}) AS {feature.name}")
        else:
            columns.append(f"{value_of[i]} AS {feature.name}")
    con.execute(f"""
        CREATE OR REPLACE {"TEMP TABLE" if target.startswith("_") else "TABLE"} {target} AS
        SELECT s.person_pid, {ref} AS reference_date, {', '.join(columns)}
        FROM w.spine s {' '.join(joins)}
        ORDER BY s.person_pid
    """)
    return con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
