"""How far the warehouse's activity reaches, and the reference date everything counts back from.

The *reference date* is the day after the last activity in the warehouse: risk scores describe
the year from it, and the person mart's "last 12 months" are the year before it. It depends on
the data alone, never on the day a command runs, so the same warehouse gives the same marts and
scores whenever (and with whatever ``--as-of``) they are built.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

__all__ = ["ACTIVITY_SOURCES", "Coverage", "activity_coverage", "one_year_after", "reference_date"]

#: Feeds whose dates say how far the activity history reaches.
ACTIVITY_SOURCES = ("sus_apc_spells", "sus_op_attendances", "ecds_attendances", "csds_contacts", "mhsds_contacts")


def one_year_after(day: dt.date, years: int = 1) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class Coverage:
    """The first and last activity dates in the warehouse."""

    first: dt.date
    last: dt.date

    def outcome_known(self, reference_date: dt.date) -> bool:
        return self.last >= one_year_after(reference_date) - dt.timedelta(days=1)

    def covers_lookback(self, reference_date: dt.date, years: int) -> bool:
        return years == 0 or self.first <= one_year_after(reference_date, -years)


def activity_coverage(con: duckdb.DuckDBPyConnection) -> Coverage:
    sources = ", ".join(f"'{s}'" for s in ACTIVITY_SOURCES)
    first, last = con.execute(
        f"SELECT min(event_date), max(event_date) FROM w.person_events WHERE source IN ({sources})").fetchone()
    if first is None:
        raise ValueError("the warehouse has no activity (hospital, A&E, outpatient, community or mental health)")
    return Coverage(first, last)


def reference_date(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The day after the last activity in the warehouse attached as ``w``."""
    return activity_coverage(con).last + dt.timedelta(days=1)
