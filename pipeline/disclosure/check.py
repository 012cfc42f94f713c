"""Check a table made elsewhere: ``safehaven disclosure check FILE --dims A,B --count N``.

The CSV has one column per dimension (``Total`` marks a margin at that level) and a count
column in which the profile's symbol (``*``) marks a hidden cell. Nothing else is known: the
attacker's model is built from what the file shows alone. The check fails, naming the cells,
if a published count breaks a primary rule (a count from 1 to the threshold, a zero where
zeros are protected, a number that is not a multiple of the rounding base) or if any hidden
cell can be narrowed below the profile's protection width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.disclosure.audit import AuditResult, audit_release
from pipeline.disclosure.profiles import Profile
from pipeline.disclosure.release import SAFE, Release
from pipeline.disclosure.rules import frequency, rounding_interval
from pipeline.disclosure.table import TOTAL, Dimension, build_table
from pipeline.errors import UserError

__all__ = ["CheckResult", "check_table"]

HIDDEN = "hidden"


@dataclass
class CheckResult:
    file: str
    cells: int
    hidden: int
    rule_breaches: list[dict]
    audit: AuditResult

    @property
    def passed(self) -> bool:
        return not self.rule_breaches and self.audit.passed


def _read(path: Path, dims: list[str], count: str) -> pl.DataFrame:
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(f"{path.name}: cannot read the table ({type(exc).__name__})") from None
    missing = [c for c in [*dims, count] if c not in frame.columns]
    if missing:
        raise UserError(f"{path.name}: no column(s) {missing}; it has {frame.columns}")
    frame = frame.select(*(pl.col(d).str.strip_chars() for d in dims), pl.col(count).str.strip_chars())
    if frame.select(dims).is_duplicated().any():
        raise UserError(f"{path.name}: some combinations of {dims} appear more than once")
    return frame


def check_table(path: Path, dims: list[str], count: str, profile: Profile) -> CheckResult:
    path = Path(path)
    frame = _read(path, dims, count)
    shown = frame[count]
    hidden = shown == profile.symbol
    numbers = shown.filter(~hidden)
    bad = numbers.filter(~numbers.str.contains(r"^\d+$"))
    if bad.len():
        raise UserError(f"{path.name}: column '{count}' has {bad.len()} value(s) that are neither counts nor "
                        f"'{profile.symbol}' (first: {bad[0]!r})")
    dimensions = [Dimension.flat(d, sorted(set(frame[d].to_list()) - {TOTAL})) for d in dims]
    # The table's shape from the file; counts stand in for unknowns only (never used by the attack).
    inner = frame.filter(pl.all_horizontal(pl.col(d) != TOTAL for d in dims))
    atoms = inner.select(*dims, count=pl.when(pl.col(count) == profile.symbol).then(pl.lit("0"))
                         .otherwise(pl.col(count)).cast(pl.Int64))
    table = build_table(atoms, dimensions)
    keyed = table.cells.select(dims).with_row_index("cell").join(
        frame.with_columns(pl.col(count).alias("shown")), on=dims, how="left")
    # Which hidden cells are primary is unknown here: every one must meet the protection width.
    status = np.where(keyed["shown"].to_numpy() == profile.symbol, HIDDEN, SAFE).astype(object)
    values = keyed["shown"].to_list()
    lo = np.zeros(len(values))
    hi = np.full(len(values), np.inf)  # a cell the file does not show says nothing
    breaches = []
    sym_lo, sym_hi = profile.hidden_range
    for i, (value, key) in enumerate(zip(values, keyed.select(dims).to_dicts(), strict=True)):
        if value is None:
            continue
        if value == profile.symbol:
            lo[i], hi[i] = sym_lo, sym_hi
            continue
        n = int(value)
        if frequency(np.array([n]), profile.threshold, protect_zeros=profile.protect_zeros)[0]:
            breaches.append({"cell": key, "shown": n, "rule": f"count {n} is within 1..{profile.threshold}"
                             if n else "zeros are protected under this profile"})
        if profile.round_base and n % profile.round_base:
            breaches.append({"cell": key, "shown": n, "rule": f"not a multiple of {profile.round_base}"})
        if profile.round_base and n:
            r_lo, r_hi = rounding_interval(np.array([n]), profile.round_base)
            lo[i], hi[i] = r_lo[0], r_hi[0]
        else:
            lo[i] = hi[i] = n
    release = Release(table, profile, status, [["HIDDEN(as shown)"] if s != SAFE else [] for s in status],
                      known=(lo, hi))
    return CheckResult(path.name, len(values), int((status != SAFE).sum()), breaches, audit_release(release))
