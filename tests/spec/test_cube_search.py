"""The hypercube search (``pipeline.disclosure.cube``) agrees with the obvious version of itself.

The search keeps per-candidate look-ups, narrows to the cubes that can still move after each
step and, under ``free_only``, builds only the cubes through hidden neighbours. The reference
below is the plain greedy loop over every candidate (the code before those changes): the same
table, pattern, cell and amount must give the same move, cells and cost."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.disclosure import PROFILES, apply_primary
from pipeline.disclosure.cube import SHORTLIST, WIDE_SHORTLIST, CubeSearch
from pipeline.disclosure.lattice import Lattice
from pipeline.disclosure.release import PRIMARY
from tests.spec.test_disclosure_properties import tables


def _reference(search: CubeSearch, cell: int, amount: int, free_only: bool, size: int):
    found = search.candidates(cell, size)  # every candidate, published neighbours too
    if found is None:
        return None
    cells, signs, atoms, asigns = found.cells, found.signs, found.atoms, found.asigns
    valid = cells >= 0
    direction = 1 if amount > 0 else -1
    limiting = (asigns == -direction) & (atoms >= 0)
    used: dict[int, int] = {}
    chosen = []
    total = 0.0
    pending = np.zeros(cells.shape, dtype=bool)
    remaining = abs(amount)
    while remaining > 0:
        avail = search.atom_counts[np.where(atoms >= 0, atoms, 0)].copy()
        for key, value in used.items():
            avail[atoms == key] -= value
        capacity = np.where(limiting, avail, np.iinfo(np.int64).max).min(axis=1)
        cost = np.where(valid & ~pending & ~search.hidden[np.where(valid, cells, 0)],
                        search.weights[np.where(valid, cells, 0)], 0.0).sum(axis=1)
        usable = capacity > 0
        if free_only:
            usable &= cost == 0
        if not usable.any():
            return None
        best = int(np.lexsort((np.arange(cost.size), -np.minimum(capacity, remaining),
                               np.where(usable, cost, np.inf)))[0])
        step = int(min(capacity[best], remaining))
        chosen.append((best, step))
        total += float(cost[best])
        remaining -= step
        if remaining:
            pending |= np.isin(cells, cells[best][valid[best]]) & valid
            for a in atoms[best][limiting[best]]:
                used[int(a)] = used.get(int(a), 0) + step
    coefficient: dict[int, int] = {}
    change: dict[int, int] = {}
    for best, step in chosen:
        for a, s in zip(atoms[best], asigns[best], strict=True):
            if a >= 0:
                coefficient[int(a)] = coefficient.get(int(a), 0) + direction * step * int(s)
        for c, s in zip(cells[best], signs[best], strict=True):
            if c >= 0:
                change[int(c)] = change.get(int(c), 0) + direction * step * int(s)
    return ({a: v for a, v in coefficient.items() if v}, {c for c, v in change.items() if v}, total)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(0, 2**32 - 1), st.sampled_from([SHORTLIST, WIDE_SHORTLIST]))
def test_the_search_finds_what_the_plain_greedy_loop_finds(table, seed, size):
    release = apply_primary(table, PROFILES["safehaven"])
    values = release.values().astype(float)
    hidden = release.status == PRIMARY
    rng = np.random.default_rng(seed)
    hidden |= rng.random(hidden.size) < 0.4
    search = CubeSearch(Lattice(table), table.atoms["count"].to_numpy(), 1.0 + values, hidden)
    for cell in range(hidden.size):
        for amount in (int(rng.integers(1, 10)), -int(rng.integers(1, 5))):
            for free_only in (False, True):
                ours = search.protect(cell, amount, free_only=free_only, size=size)
                expected = _reference(search, cell, amount, free_only, size)
                if expected is None:
                    assert ours is None
                    continue
                move, cells, cost = ours
                assert dict(zip(move.atoms.tolist(), move.coefficients.tolist(), strict=True)) == expected[0]
                assert cells == expected[1] and cost == expected[2]
