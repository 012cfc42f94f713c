"""Risk tiers: bands of the ranked population, set by shares rather than score thresholds.

A scheme names its bands from the top with the share of the eligible population each takes,
and the tier for everyone else. Ranking is by score (highest first), ties broken by pseudonym
so a re-run gives the same tiers. Presets:

- ``default``: top 0.5% very high, next 4.5% high, next 15% moderate, the rest low;
- ``adults-top-2``: the top 2% of adults (18 and over) for case management, as in the 2014/15
  Avoiding Unplanned Admissions enhanced service; children and people of unknown age are not
  ranked (tier ``not-eligible``).

A custom scheme is written ``"very-high:0.5,high:4.5,moderate:15"`` (percentages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

__all__ = ["PRESETS", "TierScheme", "assign_tiers", "parse_scheme"]

NOT_ELIGIBLE = "not-eligible"


@dataclass(frozen=True)
class TierScheme:
    name: str
    bands: tuple[tuple[str, float], ...]  # (tier, share of the eligible population), from the top
    rest: str
    min_age: int | None = None

    def __post_init__(self):
        total = sum(share for _, share in self.bands)
        if not self.bands or any(share <= 0 for _, share in self.bands) or total > 1:
            raise ValueError(f"tier scheme {self.name!r}: shares must be positive and add up to at most 100%")
        names = [t for t, _ in self.bands] + [self.rest]
        if len(set(names)) != len(names):
            raise ValueError(f"tier scheme {self.name!r}: tier names must differ")

    @property
    def tiers(self) -> list[str]:
        return [t for t, _ in self.bands] + [self.rest] + ([NOT_ELIGIBLE] if self.min_age is not None else [])

    def describe(self) -> str:
        bands = ", ".join(f"{t} {100 * s:g}%" for t, s in self.bands)
        who = f" of people aged {self.min_age}+" if self.min_age is not None else ""
        return f"{self.name}: {bands}{who}; the rest {self.rest}"


PRESETS = {
    "default": TierScheme("default", (("very-high", 0.005), ("high", 0.045), ("moderate", 0.15)), "low"),
    "adults-top-2": TierScheme("adults-top-2", (("case-management", 0.02),), "not-selected", min_age=18),
}


def parse_scheme(text: str) -> TierScheme:
    """A preset name, or ``tier:percent,...`` from the top (the rest are ``low``)."""
    if text in PRESETS:
        return PRESETS[text]
    bands = []
    for part in text.split(","):
        name, _, percent = part.partition(":")
        try:
            bands.append((name.strip(), float(percent) / 100))
        except ValueError:
            raise ValueError(f"tier scheme {text!r}: expected a preset ({', '.join(PRESETS)}) or "
                             "'name:percent,...' such as 'very-high:0.5,high:4.5,moderate:15'") from None
    return TierScheme("custom", tuple(bands), "low")


def assign_tiers(frame: pl.DataFrame, scheme: TierScheme) -> pl.DataFrame:
    """``frame`` (person_pid, score, age) plus ``tier`` and ``tier_rank`` (1 = highest score
    among the eligible; null for the not eligible)."""
    eligible = pl.col("score").is_not_null()
    if scheme.min_age is not None:
        eligible = eligible & (pl.col("age") >= scheme.min_age).fill_null(False)
    ranked = frame.with_columns(_eligible=eligible).sort(["_eligible", "score", "person_pid"],
                                                         descending=[True, True, False], nulls_last=True)
    n = int(ranked["_eligible"].sum())
    rank = pl.int_range(1, pl.len() + 1)
    tier = pl.when(~pl.col("_eligible")).then(pl.lit(NOT_ELIGIBLE))
    upto = 0.0
    for name, share in scheme.bands:
        upto += share
        tier = tier.when(rank <= math.ceil(round(upto * n, 9))).then(pl.lit(name))
    return ranked.with_columns(
        tier=tier.otherwise(pl.lit(scheme.rest)),
        tier_rank=pl.when(pl.col("_eligible")).then(rank).otherwise(None).cast(pl.Int64),
    ).drop("_eligible")
