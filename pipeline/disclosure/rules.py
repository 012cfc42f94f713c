"""Primary disclosure rules, each a small named function over arrays of cell values.

Counts are of distinct people. The magnitude rules take, per cell, the largest contributions
(``x1``, ``x2``, the sum of the top ``n``) and the cell total ``X``. Conventions follow the SDC
Handbook and ACRO (see ``../shared/research/disclosure.md`` §2 and §6.2).
"""

from __future__ import annotations

import numpy as np

__all__ = ["dominance", "frequency", "midpoint6", "p_percent", "round_half_up", "rounding_interval"]


def frequency(counts: np.ndarray, threshold: int, *, protect_zeros: bool = False) -> np.ndarray:
    """Unsafe when ``1 <= count <= threshold`` (and ``count == 0`` if zeros are protected)."""
    counts = np.asarray(counts)
    unsafe = (counts >= 1) & (counts <= threshold)
    return unsafe | (counts == 0) if protect_zeros else unsafe


def round_half_up(values: np.ndarray, base: int) -> np.ndarray:
    """Conventional rounding to the nearest multiple of ``base`` (halves go up): 2 -> 0, 3 -> 5
    for base 5."""
    values = np.asarray(values, dtype=np.int64)
    return (values + base // 2) // base * base if base % 2 else (2 * values + base) // (2 * base) * base


def rounding_interval(published: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """The integers an attacker knows a rounded count lies in: ``[a - ⌊b/2⌋, a + ⌈b/2⌉ - 1]``,
    never below 0."""
    published = np.asarray(published, dtype=np.int64)
    lo = np.maximum(published - base // 2, 0)
    hi = published + (base - 1) // 2 if base % 2 else published + base // 2 - 1
    return lo, hi


def midpoint6(values: np.ndarray) -> np.ndarray:
    """OpenSAFELY's midpoint-6 rounding: 0 -> 0, 1-6 -> 3, 7-12 -> 9, ..."""
    values = np.asarray(values, dtype=np.int64)
    return np.ceil(values / 6).astype(np.int64) * 6 - 3 * (values != 0)


def dominance(top_n_sum: np.ndarray, total: np.ndarray, k: float) -> np.ndarray:
    """(n, k) dominance: unsafe when the ``n`` largest contributions exceed ``k`` percent of the cell."""
    return np.asarray(top_n_sum) > np.asarray(total) * k / 100


def p_percent(x1: np.ndarray, x2: np.ndarray, total: np.ndarray, p: float) -> np.ndarray:
    """p% rule: unsafe when the second largest contributor could estimate the largest within
    ``p`` percent, i.e. ``X - x1 - x2 < p/100 * x1``."""
    x1 = np.asarray(x1)
    return (np.asarray(total) - x1 - np.asarray(x2)) < p / 100 * x1
