"""A release of one table under a profile: each cell's status, what is shown, and what the
showing tells an attacker.

``apply_primary`` marks the cells the profile's primary rules make unsafe; secondary
suppression (``pipeline.disclosure.secondary``) adds cells to hide; ``shown`` then renders
each cell: the symbol for hidden cells, the rounded value where the profile rounds, else the
value. ``knowledge`` is the interval each shown cell pins its true count to, which is what the
audit's attacker works from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from pipeline.disclosure.profiles import Profile
from pipeline.disclosure.rules import (
    dominance,
    frequency,
    p_percent,
    round_half_up,
    rounding_interval,
)
from pipeline.disclosure.table import CountTable

__all__ = ["ABSENT", "PRIMARY", "SAFE", "SECONDARY", "Release", "apply_magnitude_primary", "apply_primary",
           "showing_intervals"]

SAFE, PRIMARY, SECONDARY = "safe", "primary", "secondary"
ABSENT = "absent"  # in a joint view of several releases: a cell none of them shows


@dataclass
class Release:
    table: CountTable
    profile: Profile
    status: np.ndarray  # per cell: safe, primary or secondary
    reasons: list[list[str]] = field(default_factory=list)
    known: tuple[np.ndarray, np.ndarray] | None = None  # a table checked as shown: the true counts are unknown
    moves: dict | None = None  # (primary cell, signed amount) -> Move, from secondary suppression
    fixed: np.ndarray | None = None  # cells already published by an earlier release: never hidden now
    kept: np.ndarray | None = None  # cells an earlier release hid that this one does not show: stay hidden
    joint: bool = False  # ``known`` holds what earlier releases showed; the true counts are known too
    levels: tuple[np.ndarray, np.ndarray] | None = None  # per-cell (down, up) protection of a magnitude table

    @property
    def hidden(self) -> np.ndarray:
        return self.status != SAFE

    @property
    def targets(self) -> np.ndarray:
        """The hidden cells the audit must certify (absent cells are not shown, not hidden)."""
        return (self.status != SAFE) & (self.status != ABSENT)

    def values(self) -> np.ndarray:
        return self.table.cells["count"].to_numpy()

    def published(self) -> np.ndarray:
        """Published numbers (rounded where the profile rounds); meaningless where hidden."""
        values = self.values()
        return round_half_up(values, self.profile.round_base) if self.profile.round_base else values

    def shown(self) -> list[str]:
        published = self.published()
        return [self.profile.symbol if h else str(int(v)) for h, v in zip(self.hidden, published, strict=True)]

    def knowledge(self) -> tuple[np.ndarray, np.ndarray]:
        """Per cell, the interval of counts consistent with what is shown (for a joint release,
        also with what earlier releases showed, held in ``known``)."""
        if self.known is not None and not self.joint:
            return self.known
        lo, hi = showing_intervals(self.published(), self.hidden, self.profile)
        absent = self.status == ABSENT
        lo[absent], hi[absent] = 0, float("inf")
        if self.joint:
            lo, hi = np.maximum(lo, self.known[0]), np.minimum(hi, self.known[1])
        return lo, hi


def showing_intervals(published: np.ndarray, hidden: np.ndarray, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """What each cell's showing tells under ``profile``: a number is exact, or its rounding
    interval (a shown 0 is a true zero when small counts are hidden); a hidden cell, what the
    symbol means."""
    published = np.asarray(published)
    if profile.round_base:
        lo, hi = rounding_interval(published, profile.round_base)
        lo, hi = lo.astype(float), hi.astype(float)
        if profile.threshold >= profile.round_base // 2:
            exact = published == 0
            lo[exact], hi[exact] = 0, 0
    else:
        lo, hi = published.astype(float), published.astype(float)
    lo[hidden], hi[hidden] = profile.hidden_range
    return lo, hi


def apply_primary(table: CountTable, profile: Profile) -> Release:
    """Mark the cells the profile's frequency rule makes unsafe."""
    values = table.cells["count"].to_numpy()
    unsafe = frequency(values, profile.threshold, protect_zeros=profile.protect_zeros)
    status = np.where(unsafe, PRIMARY, SAFE).astype(object)
    reasons = [[f"PRIMARY_FREQ(n={int(v)} <= {profile.threshold})"] if u else [] for u, v in zip(unsafe, values,
                                                                                                  strict=True)]
    return Release(table, profile, status, reasons)


def apply_magnitude_primary(table: CountTable, profile: Profile) -> Release:
    """Primary rules for a magnitude table (``build_magnitude_table``): too few contributors
    (1..threshold), (n, k) dominance and the p% rule, with each primary's protection levels,
    as the SDC Handbook gives them: p% ``p/100 * x1 - (X - x1 - x2)``; dominance
    ``100 * (x1 + x2) / k - X``; too few contributors ``p/100`` of the value. The profile's
    dominance and p (or ACRO's (2, 90%) and 10%) apply; the table's numbers are never rounded."""
    if not profile.secondary or profile.round_base:
        raise ValueError(f"profile {profile.name!r} has no secondary suppression or rounds: magnitude tables need "
                         "complementary suppression of exact values (use 'safehaven' or 'acro')")
    n, k = profile.dominance or (2, 90.0)
    if n != 2:
        raise ValueError("only (2, k) dominance is supported: the table keeps the two largest contributions")
    p = profile.p_percent or 10.0
    # The record states the rules this table was held to, defaults included.
    profile = dataclasses.replace(profile, dominance=(n, k), p_percent=p)
    cells = table.cells
    total, x1, x2 = (cells[c].to_numpy().astype(float) for c in ("count", "top1", "top2"))
    few = frequency(cells["contributors"].to_numpy(), profile.threshold)
    dom = dominance(x1 + x2, total, k) & (total > 0)
    pp = p_percent(x1, x2, total, p) & (total > 0)
    level = np.zeros(total.size)
    level = np.where(pp, np.maximum(level, p / 100 * x1 - (total - x1 - x2)), level)
    level = np.where(dom, np.maximum(level, 100 * (x1 + x2) / k - total), level)
    level = np.where(few, np.maximum(level, p / 100 * total), level)
    unsafe = few | dom | pp
    level = np.where(unsafe, np.maximum(np.ceil(level), 1), 0).astype(np.int64)
    down = np.minimum(level, total.astype(np.int64))
    status = np.where(unsafe, PRIMARY, SAFE).astype(object)
    reasons = []
    for i in range(total.size):
        why = []
        if few[i]:
            why.append(f"PRIMARY_FREQ(contributors={int(cells['contributors'][i])} <= {profile.threshold})")
        if dom[i]:
            why.append(f"PRIMARY_DOMINANCE(2 largest > {k:g}%)")
        if pp[i]:
            why.append(f"PRIMARY_P(p={p:g}%)")
        reasons.append(why)
    return Release(table, profile, status, reasons, levels=(down, level))
