"""Joint secondary suppression: the cheapest pattern for all primaries at once (Fischetti and
Salazar's model, solved by Benders decomposition on HiGHS).

One 0/1 variable per cell (1 = hidden); the objective is the cells' weights (``1 + count``, as
the other engines use), so the pattern hides as little as the model allows. For each primary
cell and direction, the attacker's problem is a linear program over the atoms of the primary's
neighbourhood: can the atom counts move so that the primary shifts by its protection level
while every published cell stays the same? A hidden cell may move up to the level upwards and
down to zero (its *capacity*: the total of the neighbourhood upwards); a published cell not at all. The master MIP holds
one cut per failed check: solving the attacker's LP with elastic slack on each cell's capacity,
the slack's minimum is a convex function of the pattern, and its linearisation at the failing
pattern (the LP's row duals times the capacities) is a valid inequality every protecting
pattern satisfies. Master and checks alternate until no check fails: the pattern then protects
every primary in the model, and if the master was solved to optimality it is the cheapest
pattern that does.

Over its neighbourhood the model is the audit's attacker (atoms never below zero, hidden cells
free within that), so restricting moves to the neighbourhood can only make it stricter; zero
cells stay eligible as secondaries (they can only move up). The
result is still held to the audit by the caller, and the cube engine's pattern is the MIP's
starting incumbent, so the joint pattern is never worse than cube's when the time limit stops
the search early.
"""

from __future__ import annotations

import time

import highspy
import numpy as np
from scipy import sparse

from pipeline.disclosure.audit import protection_levels
from pipeline.disclosure.cube import Move
from pipeline.disclosure.lattice import Lattice
from pipeline.disclosure.release import ABSENT, PRIMARY, SAFE, SECONDARY, Release

__all__ = ["JointResult", "protect_joint"]

EPS = 1e-6
TIME_LIMIT = 120.0  # seconds for the whole search (master solves and checks)
LP_ROUNDS = 200
CAPACITY: float | None = None  # a hidden cell moves at most this many times the level; None: as far as the
# table allows, which makes the model the audit's attacker (a factor gives stronger cuts, a stricter model)  # cutting-plane rounds on the LP relaxation before the MIP


class _NoMove(Exception):
    """A target no pattern protects inside the model (the caller keeps its own pattern)."""


class _OutOfTime(Exception):
    """The time limit ran out in the middle of a round of checks."""


class JointResult:
    """What the search ended with: whether every check passed, whether the master proved the
    pattern cheapest, the rounds and cuts it took, and the time."""

    def __init__(self):
        self.protected = False
        self.optimal = False
        self.rounds = 0
        self.cuts = 0
        self.seconds = 0.0
        self.cost = 0.0
        self.bound = 0.0

    def as_dict(self) -> dict:
        return {"protected": self.protected, "optimal": self.optimal, "rounds": self.rounds, "cuts": self.cuts,
                "seconds": round(self.seconds, 2), "cost": self.cost}


class _Attacker:
    """The elastic attacker LP over one neighbourhood's atoms: δ per atom (not below minus its
    count), e per touched cell; rows ``Xδ - e <= cap_up·y`` and ``Xδ + e >= -cap_down·y``."""

    def __init__(self, x: sparse.csc_matrix, atoms: np.ndarray, counts: np.ndarray, shown: np.ndarray):
        rows = x[atoms, :].tocsc()
        touched = (np.diff(rows.indptr) > 0) & shown
        self.cells = np.flatnonzero(touched)
        self.atoms = atoms
        sub = rows[:, self.cells].astype(float).T.tocsr()  # cells x atoms
        self.sub = sub
        n, m = atoms.size, self.cells.size
        self.n, self.m = n, m
        inf = highspy.kHighsInf
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.addVars(n + m, np.concatenate([-counts[atoms].astype(float), np.zeros(m)]), np.full(n + m, inf))
        h.changeColsCost(m, (n + np.arange(m)).astype(np.int32), np.ones(m))
        for sign in (-1.0, 1.0):  # r1: Xδ - e (upper bound); r2: Xδ + e (lower bound)
            a = sparse.hstack([sub, sparse.identity(m, format="csr") * sign]).tocsr()
            lower = np.full(m, -inf) if sign < 0 else np.zeros(m)
            upper = np.zeros(m) if sign < 0 else np.full(m, inf)
            h.addRows(m, lower, upper, a.nnz, a.indptr[:-1].astype(np.int32), a.indices.astype(np.int32),
                      a.data.astype(float))
        self.big_m = float(counts[atoms].sum())
        self.highs = h
        self.local = {int(c): i for i, c in enumerate(self.cells)}

    def check(self, cell: int, amount: int, hidden: np.ndarray, values: np.ndarray):
        """(slack, cut coefficients per local cell, cut constant, move): slack 0 means the
        pattern lets the cell move by ``amount``; otherwise the cut ``coef·y >= constant``."""
        h, m, n = self.highs, self.m, self.n
        inf = highspy.kHighsInf
        y = hidden[self.cells].astype(float)
        reach = CAPACITY * abs(amount) if CAPACITY else self.big_m + abs(amount)
        up = np.full(m, reach)  # how far a hidden cell may rise in the attacker's move
        down = np.minimum(values[self.cells].astype(float), reach)  # ... and fall (never below zero)
        i = self.local[cell]
        r1_hi, r2_lo = up * y, -down * y
        r1_lo, r2_hi = np.full(m, -inf), np.full(m, inf)
        r1_lo[i] = r1_hi[i] = float(amount)
        r2_lo[i], r2_hi[i] = -inf, inf
        rows = np.arange(2 * m, dtype=np.int32)
        h.changeRowsBounds(2 * m, rows, np.concatenate([r1_lo, r2_lo]), np.concatenate([r1_hi, r2_hi]))
        h.changeColBounds(n + i, 0.0, 0.0)
        try:
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            slack = h.getInfo().objective_function_value
            solution = h.getSolution()
            duals = np.asarray(solution.row_dual)
            delta = np.asarray(solution.col_value)[:n]
        finally:
            h.changeColBounds(n + i, 0.0, inf)
        if slack <= EPS:
            delta = np.where(np.abs(delta) > EPS, delta, 0.0)
            return 0.0, None, 0.0, Move(self.atoms.copy(), delta)
        # D(y) >= D* + g·(y - y*), g_c = dual1_c·up_c - dual2_c·down_c; protection needs D(y) <= 0.
        g = duals[:m] * up - duals[m:] * down
        g[i] = 0.0
        coef = -g  # -g·y >= D* - g·y*
        constant = slack - float(g @ y)
        if constant > EPS:  # y is 0/1: a coefficient above the right-hand side counts only up to it
            coef = np.minimum(coef, constant)
        return slack, coef, constant, None


def _neighbourhood(lattice: Lattice, cell: int, wide: bool) -> tuple[int, ...]:
    return tuple(0 if wide else max(int(lattice.parent[d][n]), 0) for d, n in enumerate(lattice.cell_nodes[cell]))


def protect_joint(release: Release, start: np.ndarray | None = None, time_limit: float = TIME_LIMIT,
                  ) -> tuple[np.ndarray, dict, JointResult] | None:
    """The joint pattern (hidden per cell), the moves that prove it, and how the search went; None
    if no pattern that passes every check was found in ``time_limit`` (the caller keeps its own).
    ``start``: a protecting pattern to begin from (the cube engine's)."""
    began = time.perf_counter()
    result = JointResult()
    table = release.table
    x = table.matrix.tocsc()
    counts = table.atoms["count"].to_numpy().astype(np.int64)
    values = release.values().astype(np.int64)
    n = values.size
    status = release.status
    absent = status == ABSENT
    primary = status == PRIMARY
    shown = ~absent
    lattice = Lattice(table)
    width = release.profile.protection_width
    targets = []
    for p in np.flatnonzero(primary):
        down, up = ((int(release.levels[0][p]), int(release.levels[1][p])) if release.levels is not None
                    else protection_levels(int(values[p]), width))
        targets += [(int(p), up)] + ([(int(p), -down)] if down else [])

    weights = 1.0 + values.astype(float)
    lower, upper = np.zeros(n), np.ones(n)
    forced = primary | absent
    if release.kept is not None:
        forced |= release.kept
    lower[forced] = 1.0
    weights[forced] = 0.0
    if release.fixed is not None:
        upper[release.fixed & ~forced] = 0.0  # published before: never hidden now
    master = highspy.Highs()
    master.setOptionValue("output_flag", False)
    master.setOptionValue("mip_rel_gap", 0.0)
    master.addVars(n, lower, upper)
    master.changeColsCost(n, np.arange(n, dtype=np.int32), weights)
    master.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                 np.full(n, highspy.HighsVarType.kInteger, dtype=np.uint8))

    attackers: dict[tuple, _Attacker] = {}

    def attacker(cell: int, wide: bool) -> _Attacker:
        group = _neighbourhood(lattice, cell, wide)
        if group not in attackers:
            top = int(lattice.cell_of[np.array(group) @ lattice.strides])
            attackers[group] = _Attacker(x, np.sort(x[:, top].indices), counts, shown)
        return attackers[group]

    # Each target's neighbourhood: its parents' atoms, or the whole table if no pattern there protects it.
    wide_for: dict[tuple[int, int], bool] = {}
    everything = np.ones(n, dtype=bool)
    for cell, amount in targets:
        if time.perf_counter() - began > time_limit:
            return None
        found = attacker(cell, False).check(cell, amount, everything, values)
        wide_for[(cell, amount)] = found is None or found[0] > EPS
    def add_cuts(pattern: np.ndarray) -> tuple[int, dict]:
        moves, cuts = {}, 0
        for cell, amount in targets:
            if time.perf_counter() - began > time_limit:
                raise _OutOfTime
            # The neighbourhood first (small LPs); where it finds no move, the whole table, whose
            # LP is the audit's attacker: its cut holds for every protecting pattern.
            found = None
            if not wide_for[(cell, amount)]:
                found = attacker(cell, False).check(cell, amount, pattern, values)
            if found is None or found[3] is None:
                model = attacker(cell, True)
                found = model.check(cell, amount, pattern, values)
            else:
                model = attacker(cell, False)
            if found is None:
                raise _NoMove
            slack, coef, constant, move = found
            if move is not None:
                moves[(cell, amount)] = move
                continue
            if slack <= 1e-4:
                continue
            keep = np.abs(coef) > EPS
            index = model.cells[keep].astype(np.int32)
            master.addRow(constant - EPS, highspy.kHighsInf, index.size, index, coef[keep])
            cuts += 1
        result.cuts += cuts
        return cuts, moves

    # Phase 1: the LP relaxation, cut until it protects every target (cheap rounds, strong cuts).
    everything_index = np.arange(n, dtype=np.int32)
    master.changeColsIntegrality(n, everything_index, np.full(n, highspy.HighsVarType.kContinuous, dtype=np.uint8))
    try:
        for _ in range(LP_ROUNDS):
            master.run()
            fractional = np.asarray(master.getSolution().col_value)
            result.bound = master.getInfo().objective_function_value
            if add_cuts(fractional)[0] == 0 or time.perf_counter() - began > time_limit / 3:
                break
    except (_NoMove, _OutOfTime):
        return None
    master.changeColsIntegrality(n, everything_index, np.full(n, highspy.HighsVarType.kInteger, dtype=np.uint8))
    hidden = (start.copy() if start is not None else forced.copy()).astype(bool)
    best, best_moves, from_optimal_master = None, None, False
    while True:
        result.rounds += 1
        try:
            cuts, moves = add_cuts(hidden)
        except _NoMove:
            return None
        except _OutOfTime:  # this round's pattern is unchecked: keep the best checked one
            break
        cost = float(weights[hidden].sum())
        if not cuts:
            if best is None or cost < result.cost:
                best, best_moves, result.cost = hidden.copy(), moves, cost
            result.protected = True
            if from_optimal_master:  # the cheapest pattern of a relaxation, and it protects: optimal
                result.optimal = True
                break
        if time_limit - (time.perf_counter() - began) <= 0:
            break
        if best is not None:
            master.setSolution(_solution(best))
        master.setOptionValue("time_limit", max(time_limit - (time.perf_counter() - began), 1.0))
        master.run()
        if master.getInfo().primal_solution_status != 2:  # no feasible point within the limit
            break
        hidden = np.asarray(master.getSolution().col_value) > 0.5
        from_optimal_master = master.getModelStatus() == highspy.HighsModelStatus.kOptimal
        if from_optimal_master and best is not None and float(weights[hidden].sum()) >= result.cost - EPS:
            result.optimal = True  # nothing cheaper than the pattern we have can protect
            break
    result.seconds = time.perf_counter() - began
    if best is None:
        return None
    return best, best_moves, result


def _solution(hidden: np.ndarray) -> highspy.HighsSolution:
    solution = highspy.HighsSolution()
    solution.col_value = hidden.astype(float).tolist()
    solution.value_valid = True
    return solution


def apply_pattern(release: Release, hidden: np.ndarray, moves: dict) -> Release:
    """The joint pattern on the release: cells it hides beyond the primaries become secondary."""
    release.status[hidden & (release.status == SAFE)] = SECONDARY
    release.status[~hidden & (release.status == SECONDARY)] = SAFE
    release.moves = moves
    return release
