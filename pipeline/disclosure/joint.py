"""Joint secondary suppression: the cheapest pattern for all primaries at once (Fischetti and
Salazar's model, solved by Benders decomposition on HiGHS).

One 0/1 variable ``y`` per cell (1 = hidden); the objective is the cells' weights
(``cell_weights``: a cost per cell plus the people in an inner cell, the square root of a
margin's count), so the pattern hides as little as the model allows. For each primary
cell and direction (a *target*: move the primary by its protection level ``L``), the attacker's
problem is a linear program over the atoms of the whole table: can the atom counts change so
that the primary moves by ``L`` while every published cell stays the same? In the model a
hidden cell may move by up to ``L`` upwards, and downwards by up to ``L`` but never below zero
(its *capacity*, Fischetti and Salazar's protection-level bounds). That is stricter than the
audit's attacker, whose hidden cells move as far as the atoms allow, so a pattern the model
protects, the audit passes; the strict capacities are what make the model's LP relaxation, and
so the search, strong.

The attacker's best reach is a concave function ``V(y)`` of the pattern (the capacities enter
its right-hand sides), and a target is protected when ``V(y) >= L``. When a check fails at a
pattern ``y*``, the LP's row duals times the capacities are a supergradient ``g``, and
``V(y*) + g·(y - y*) >= L`` is a cut every protecting pattern satisfies (its coefficients are
capped at its right-hand side, as ``y`` is 0/1). The master starts from the cuts each line of
the table implies on its own (``_Model.add_lines``). The search cuts the LP relaxation first (its
bound is the proof of optimality), then solves the master MIP, checks its pattern, adds the cuts
that pattern fails and solves again, until the master's pattern passes every check: that
pattern is then the cheapest in the model. After each round whose pattern fails, a *dive*
(``_Model.dive``) keeps that pattern's cells hidden and lets the master add only what the
checks ask for, which gives a protecting pattern close to the master's cheap one long before
the proof (decision 104). The cube engine's pattern is the MIP's first incumbent and the bar
to beat; a dive's pattern that costs less replaces it. When the time limit stops the search
before any pattern beats it, the master's last pattern is returned without moves, for the
caller to repair (``secondary._joint``).

Zero cells stay eligible as secondaries: in the model, as in the audit, they can only move up.
A check whose pattern is covered by the move found last time (every cell it changes is still
hidden, within its capacity) is not solved again, so later rounds solve few LPs. The result is
still held to the audit by the caller.
"""

from __future__ import annotations

import itertools
import logging
import time

import highspy
import numpy as np
from scipy import sparse

from pipeline.disclosure.audit import protection_levels
from pipeline.disclosure.cube import Move
from pipeline.disclosure.highs import run_warm, warm_lp
from pipeline.disclosure.release import ABSENT, PRIMARY, Release

__all__ = ["JointResult", "apply_pattern", "cell_weights", "protect_joint"]

log = logging.getLogger(__name__)

EPS = 1e-6
# A target is met when its reach falls short of its level by less than this share: 8 x 1e-8 is
# inside the audit's 1e-7 rounding slack, so a reach the model accepts is one the audit's
# integer rounding (floor of the upper end) keeps.
REACH_TOL = 1e-8
TIME_LIMIT = 180.0  # seconds for the whole search (master solves and checks)
CAPACITY = 1.0  # how far a hidden cell may move up, as a share of the target's level
CELL_COST = 5.0  # the cost of hiding a cell, before the people it holds (see ``cell_weights``)
LP_SHARE = 0.3  # at most this share of the time limit cuts the LP relaxation before the MIP
ROUND_CUTS = 300  # the LP phase re-solves the master after this many new cuts
# A cut the checked pattern violates by less than this is not added: HiGHS's solutions are
# feasible only to 1e-7 (LP) and 1e-6 (MIP), so such a cut could give back the same pattern, or one
# a hair away (the LP phase once added 10,000 of them in 10 s on a 9-cell table). A 0/1 pattern
# short of a level by so little is excluded by a cut of its own (``exclude``).
CUT_TOL = 1e-5
DIVE_FREE_ROUNDS = 3  # a dive's rounds that may re-arrange what it adds (``_Model.dive``)
TRIM_SHARE = 0.15  # the last share of the time limit trims the best pattern (``_Model.trim``)
DIVES = True  # ``benchmarks.joint_bound --mip`` turns them off: a bound needs only the master's rounds


class _OutOfTime(Exception):
    """The time limit ran out in the middle of a round of checks."""


class _GiveWay(Exception):
    """The model cannot go on (a primary it cannot protect, an LP HiGHS did not solve): the caller
    keeps its own pattern."""


class JointResult:
    """What the search ended with: whether every check passed, whether the pattern is proved the
    cheapest in the model, the LP bound, the rounds, cuts and LPs solved, and the time."""

    def __init__(self):
        self.protected = False
        self.optimal = False
        self.rounds = 0
        self.cuts = 0
        self.checks = 0
        self.seconds = 0.0
        self.cost = 0.0
        self.bound = 0.0
        self.dives = 0
        self.trimmed = 0  # cells the trim published from the best pattern
        self.fractional: np.ndarray | None = None  # the LP relaxation's last solution (for rounding)

    def as_dict(self) -> dict:
        return {"protected": self.protected, "optimal": self.optimal, "rounds": self.rounds, "cuts": self.cuts,
                "checks": self.checks, "dives": self.dives, "trimmed": self.trimmed, "seconds": round(self.seconds, 2),
                "cost": self.cost, "bound": round(self.bound, 2)}


def _down(values: np.ndarray, level: int) -> np.ndarray:
    """How far each cell may fall when hidden, as a share of the target's level: by the level,
    but never below zero (the model's downward capacity)."""
    return np.minimum(values, level * CAPACITY) / level


class _Attacker:
    """The attacker's LP, scaled by the target's level ``L``: a column ``δ`` per atom (not below
    ``-count/L``), a row per shown cell (its change ``Xᵀδ`` between ``-min(count, L)/L·y`` and
    ``y``). An atom whose own (inner) cell is published cannot change, so each pattern's LP holds
    only the other atoms and the cells they touch; the published inner cells' duals, which the
    cuts need, follow from the reduced costs. Checks of one pattern and level share the model; a
    check changes only the objective (the target cell's atoms), so HiGHS starts each LP from the
    last basis."""

    def __init__(self, x: sparse.csc_matrix, counts: np.ndarray, values: np.ndarray, shown: np.ndarray,
                 inner: np.ndarray):
        self.cells = np.flatnonzero(shown)
        self.counts = counts.astype(float)
        self.values = values[self.cells].astype(float)
        self.x = x
        self.rows = x[:, self.cells].T.tocsr()  # shown cells x atoms
        self.columns = self.rows.tocsc()
        self.n, self.m = x.shape[0], self.cells.size
        # Each atom's own row (its inner cell), or -1 where that cell is not shown (it never binds).
        self.own_row = np.full(self.n, -1, dtype=np.int64)
        single = self.rows[inner[self.cells] & (np.diff(self.rows.indptr) == 1)]
        own = np.flatnonzero(inner[self.cells] & (np.diff(self.rows.indptr) == 1))
        self.own_row[single.indices] = own
        self.level = None
        self.pattern = None
        self.highs: highspy.Highs | None = None
        self.objective = np.zeros(0, dtype=np.int32)

    def down(self, level: int) -> np.ndarray:
        """Per row, how far the cell may fall (as a share of the level) when hidden."""
        return _down(self.values, level)

    def set_pattern(self, pattern: np.ndarray, level: int) -> None:
        y = np.clip(pattern[self.cells].astype(float), 0.0, 1.0)
        y[y < EPS] = 0.0  # a master LP's 1e-10s make bounds HiGHS's presolve can call infeasible
        same = self.pattern is not None and np.array_equal(self.pattern, y)
        if same and self.level == level:
            return
        if not same:
            free = (self.own_row < 0) | (y[np.maximum(self.own_row, 0)] > 0)
            self.free = np.flatnonzero(free)
            self.local = np.full(self.n, -1, dtype=np.int64)
            self.local[self.free] = np.arange(self.free.size)
            sub = self.columns[:, self.free]
            self.used = np.flatnonzero(np.diff(sub.tocsr().indptr) > 0)
            block = sub[self.used].tocsr()
            # Checks of one pattern change only the objective, so the last basis stays feasible:
            # primal simplex goes on from it (15x faster on the Southend table than HiGHS's
            # default choice, which presolves and starts again each time).
            h = warm_lp()
            k, r = self.free.size, self.used.size
            h.addVars(k, np.zeros(k), np.full(k, highspy.kHighsInf))
            h.addRows(r, np.zeros(r), np.zeros(r), block.nnz, block.indptr[:-1].astype(np.int32),
                      block.indices.astype(np.int32), block.data.astype(float))
            h.changeObjectiveSense(highspy.ObjSense.kMaximize)
            self.highs, self.objective, self.level = h, np.zeros(0, dtype=np.int32), None
        h, k, r = self.highs, self.free.size, self.used.size
        if self.level != level:
            h.changeColsBounds(k, np.arange(k, dtype=np.int32), -self.counts[self.free] / level,
                               np.full(k, highspy.kHighsInf))
        yu = y[self.used]
        h.changeRowsBounds(r, np.arange(r, dtype=np.int32), -self.down(level)[self.used] * yu, yu * CAPACITY)
        self.level, self.pattern = level, y

    def reach(self, cell: int, sign: int) -> tuple[float, np.ndarray, np.ndarray]:
        """(how far, as a share of the level, the cell can move in direction ``sign``; every atom's
        change; every row's dual: the rate the reach grows with the row's bound)."""
        h = self.highs
        atoms = self.x[:, cell].indices
        mine = self.local[atoms]
        mine = mine[mine >= 0].astype(np.int32)
        if self.objective.size:
            h.changeColsCost(self.objective.size, self.objective, np.zeros(self.objective.size))
        if mine.size:
            h.changeColsCost(mine.size, mine, np.full(mine.size, float(sign)))
        self.objective = mine
        if run_warm(h) != highspy.HighsModelStatus.kOptimal:
            raise _GiveWay(f"attacker LP for cell {cell}: {h.modelStatusToString(h.getModelStatus())}")
        solution = h.getSolution()
        delta = np.zeros(self.n)
        delta[self.free] = np.asarray(solution.col_value)
        duals = np.zeros(self.m)
        duals[self.used] = np.asarray(solution.row_dual)
        # A fixed atom's reduced cost is carried by its own row's dual (the row that fixes it).
        cost = np.zeros(self.n)
        cost[atoms] = sign
        fixed = np.flatnonzero(self.local < 0)
        reduced = cost[fixed] - self.columns[:, fixed].T @ duals
        duals[self.own_row[fixed]] = reduced
        return h.getInfo().objective_function_value, delta, duals


class _Target:
    __slots__ = ("amount", "cell", "change", "level", "move", "reach", "rows", "sign")

    def __init__(self, cell: int, amount: int):
        self.cell, self.amount = cell, amount
        self.level, self.sign = abs(amount), (1 if amount > 0 else -1)
        self.rows = np.zeros(0, dtype=np.int64)  # the last move: rows it changes, and by how much
        self.change = np.zeros(0)
        self.reach = 0.0  # how far the last move went, as a share of the level
        self.move: Move | None = None

    def covered(self, pattern: np.ndarray, attacker: _Attacker) -> bool:
        """The last move still works under ``pattern``: every cell it changes is hidden enough."""
        if not self.rows.size:
            return False
        y = pattern[attacker.cells[self.rows]]
        down = attacker.down(self.level)[self.rows]
        return bool(np.all(self.change <= y * CAPACITY + EPS) and np.all(-self.change <= down * y + EPS))


def protect_joint(release: Release, start: np.ndarray | None = None, time_limit: float = TIME_LIMIT,
                  weights: np.ndarray | None = None) -> tuple[np.ndarray, dict | None, JointResult] | None:
    """The joint pattern (hidden per cell), the moves that prove it, and how the search went.
    When time ran out before a pattern cheaper than ``start`` passed every check: the master's
    last pattern, with no moves (``result.protected`` False), for the caller to repair; None if
    the master found nothing cheaper than ``start`` (the caller keeps its own). ``start``: the pattern to beat (the cube engine's,
    which the caller has protected and audits itself); it is the MIP's first incumbent."""
    try:
        return _search(release, start, time_limit, weights)
    except _GiveWay as reason:
        log.info("joint engine gives way: %s", reason)
        return None


class _Model:
    """The master problem (one 0/1 per cell, the cuts found so far), the attacker, and the targets
    with the moves found last."""

    def __init__(self, release: Release, weights: np.ndarray | None):
        self.result = JointResult()
        table = release.table
        x = table.matrix.tocsc()
        counts = table.atoms["count"].to_numpy().astype(np.int64)
        values = release.values().astype(np.int64)
        self.n = n = values.size
        status = release.status
        absent = status == ABSENT
        primary = status == PRIMARY
        width = release.profile.protection_width
        # A requirement: targets whose reaches (shares of their level) must add up to 1. Split
        # protection: one target per direction, each on its own. Sliding protection (the profile's
        # ``sliding``): the primary moves up and down by the width in total, split as the table allows.
        sliding = bool(getattr(release.profile, "sliding", False)) and release.levels is None
        requirements: list[list[_Target]] = []
        for p in np.flatnonzero(primary):
            if sliding:
                requirements.append([_Target(int(p), max(width, 1)), _Target(int(p), -max(width, 1))])
                continue
            down, up = ((int(release.levels[0][p]), int(release.levels[1][p])) if release.levels is not None
                        else protection_levels(int(values[p]), width))
            requirements += [[_Target(int(p), up)]] + ([[_Target(int(p), -down)]] if down else [])
        requirements.sort(key=lambda r: r[0].level)
        self.requirements = requirements
        self.targets = [t for r in requirements for t in r]

        weights = (cell_weights(release) if weights is None else weights).astype(float).copy()
        self.lower, self.upper = np.zeros(n), np.ones(n)
        forced = primary | absent
        if release.kept is not None:
            forced |= release.kept
        self.lower[forced] = 1.0
        weights[forced] = 0.0
        if release.fixed is not None:
            self.upper[release.fixed & ~forced] = 0.0  # published before: never hidden now
        self.weights, self.forced = weights, forced
        master = highspy.Highs()
        master.setOptionValue("output_flag", False)
        master.setOptionValue("mip_rel_gap", 0.0)
        master.addVars(n, self.lower, self.upper)
        master.changeColsCost(n, np.arange(n, dtype=np.int32), weights)
        self.master = master
        self.attacker = _Attacker(x, counts, values, ~absent, table.cells["inner"].to_numpy())
        self.free = self.upper > self.lower
        self.table, self.values = table, values.astype(float)
        self.cubes = None  # the cube engine's search, for the quick check of 0/1 patterns
        self._lattice = None
        self.turn = 0
        self.short: list[_Target] = []
        self.deadline = np.inf

    def lattice(self):
        """The table's node lattice, built once for the line cuts and the quick check."""
        if self._lattice is None:
            from pipeline.disclosure.lattice import Lattice

            self._lattice = Lattice(self.table)
        return self._lattice

    def add_lines(self) -> int:
        """Each target's cuts from the table's lines alone, added before any check (Fischetti and
        Salazar's model starts from them too). A line is a cell and its children in one dimension
        (``parent = sum of children``); a target's cell moving by its level moves the rest of each
        line it is on by as much, within their capacities. On a line where the target is a child,
        moving up needs the parent to rise (capacity ``L``) or a sibling to fall
        (``min(count, L)``); moving down, the reverse; where it is the parent, its children move
        its way. So ``sum(capacity / L * y) >= 1`` over the line's other cells holds for every
        pattern the model protects. Lines through a cell no release shows (which binds nothing)
        or that no pattern could satisfy (the checks then say why) are left out. Under sliding
        protection a requirement's reaches up and down together must make 1, so its cut adds the
        two targets' capacities. The number added."""
        lat = self.lattice()
        shown = self.attacker.cells
        visible = np.zeros(self.n, dtype=bool)
        visible[shown] = True
        rows = 0
        for requirement in self.requirements:
            cell = requirement[0].cell  # a sliding requirement's two targets share the cell
            nodes = lat.cell_nodes[cell]
            code = int(nodes @ lat.strides)
            for d in range(lat.k):
                parent = int(lat.parent[d][nodes[d]])
                lines = []
                if parent >= 0:  # the target among its siblings, under their parent
                    sibs = [c for c in lat.children[d][parent] if c != nodes[d]]
                    lines.append((code + (parent - nodes[d]) * int(lat.strides[d]),
                                  code + (np.array(sibs, dtype=np.int64) - nodes[d]) * int(lat.strides[d]), True))
                if lat.children[d][nodes[d]]:  # the target over its children
                    kids = np.array(lat.children[d][nodes[d]], dtype=np.int64)
                    lines.append((None, code + (kids - nodes[d]) * int(lat.strides[d]), False))
                for top, others, child in lines:
                    cells = lat.cell_of[others]
                    top_cell = int(lat.cell_of[top]) if top is not None else None
                    if (cells < 0).any() or (top_cell is not None and top_cell < 0):
                        continue
                    line = cells if top_cell is None else np.append(cells, top_cell)
                    if not visible[line].all():
                        continue
                    # The requirement's reaches add up to at most the line's capacities summed
                    # over its targets (a sliding requirement's up and down share the width).
                    coefficients = sum(self._line_capacity(t, cells, top_cell, child) for t in requirement)
                    coefficients = np.minimum(coefficients, 1.0)
                    keep = (coefficients > EPS) & (self.upper[line] > 0)
                    if coefficients[keep].sum() < 1.0:
                        continue
                    index = line[keep].astype(np.int32)
                    self.master.addRow(1.0, highspy.kHighsInf, index.size, index, coefficients[keep])
                    rows += 1
        self.result.cuts += rows
        return rows

    def _line_capacity(self, target: _Target, cells: np.ndarray, top_cell: int | None, child: bool) -> np.ndarray:
        """How far each of a line's other cells (``cells``, then its parent ``top_cell`` if the
        target is a child) can absorb the target's move, as a share of its level. Up: siblings
        fall, the parent rises; the children of a parent rise. Down: the reverse."""
        down = _down(self.values[cells], target.level)  # the line's cells only: this runs per line
        rising = (target.sign > 0) != child
        coefficients = np.where(rising, CAPACITY, down) if child else \
            (np.full(cells.size, CAPACITY) if target.sign > 0 else down)
        if top_cell is not None:
            coefficients = np.append(coefficients, CAPACITY if target.sign > 0 else
                                     _down(self.values[top_cell], target.level))
        return coefficients

    def out_of_time(self) -> bool:
        return time.perf_counter() > self.deadline

    def cost(self, hidden: np.ndarray) -> float:
        return float(self.weights[hidden].sum())

    def add_cuts(self, pattern: np.ndarray, most: int | None = None) -> int:
        """Check the targets under ``pattern`` (from where the last round stopped); add a cut for
        each that fails, stopping after ``most`` cuts. The number added."""
        attacker, requirements, n = self.attacker, self.requirements, self.n
        pattern = np.where(pattern < EPS, 0.0, pattern)  # as the attacker sees it (``set_pattern``)
        self.short = []  # targets short of their level by too little for a cut
        integral = _integral(pattern)
        cuts = 0
        for _ in range(len(requirements)):
            if most is not None and cuts >= most:
                break
            requirement = requirements[self.turn]
            self.turn = (self.turn + 1) % len(requirements)
            if self._stored_meets(pattern, requirement):
                continue
            if self.out_of_time():
                raise _OutOfTime
            if integral and self._cube_meets(pattern, requirement):
                continue
            reach, g = 0.0, np.zeros(n)
            for target in requirement:
                got, duals = self._check(pattern, target)
                reach += got
                # V(y) <= V(y*) + g·(y - y*): g is each row's dual times its bound's slope in y.
                g[attacker.cells] += np.where(duals > 0, duals * CAPACITY, -duals * attacker.down(target.level))
            if reach >= 1.0 - REACH_TOL:
                continue
            target = requirement[0]
            rhs = 1.0 - reach + float(g @ pattern)
            rhs -= float(g[self.forced].sum())  # cells hidden in every pattern
            use = self.free & (g > EPS)
            if rhs <= REACH_TOL or not use.any():
                raise _GiveWay(f"cell {target.cell} cannot be protected by {target.amount} in the model")
            index = np.flatnonzero(use).astype(np.int32)
            coefficients = np.minimum(g[index], rhs)
            if rhs - min(EPS, rhs / 2) - float(coefficients @ pattern[index]) <= CUT_TOL:
                # Short of its level by less than the cut's own slack: the cut would not move the
                # master (whose solutions are feasible to 1e-7), so the same pattern would come back.
                self.short.append(target)
                continue
            self.master.addRow(rhs - min(EPS, rhs / 2), highspy.kHighsInf, index.size, index, coefficients)
            cuts += 1
        self.result.cuts += cuts
        return cuts

    def exclude(self, hidden: np.ndarray) -> None:
        """A cut that only ``hidden`` (a 0/1 pattern) violates: the master must choose another.
        For a pattern short of a level by less than a cut can express."""
        index = np.flatnonzero(self.free).astype(np.int32)
        on = hidden[index]
        self.master.addRow(1.0 - float(on.sum()), highspy.kHighsInf, index.size, index, np.where(on, -1.0, 1.0))
        self.result.cuts += 1

    def _cube_meets(self, pattern: np.ndarray, requirement: list[_Target]) -> bool:
        """Whether cube moves (``_cube_move``) meet ``requirement`` under the 0/1 ``pattern``: its
        one target by its level; under sliding protection the whole width up, or down, or the
        split rule's amounts (down by ``min(count, width/2)``, up by the rest), for which a pattern
        that protects under the split rule has its moves."""
        if any(self._cube_move(pattern, t) for t in requirement):
            return True
        if len(requirement) == 1:
            return False
        up, down = requirement
        low, high = protection_levels(int(self.values[up.cell]), up.level)
        return low > 0 and self._cube_move(pattern, up, high) and self._cube_move(pattern, down, low)

    def _cube_move(self, pattern: np.ndarray, target: _Target, amount: int | None = None) -> bool:
        """Whether a cube move over hidden cells alone (the cube engine's search, far cheaper than
        the LP) moves ``target``'s cell by ``amount`` (its level unless given) under the 0/1
        ``pattern`` within the model's capacities; if so it is the target's move (its reach
        ``amount / level``). A failed check still goes to the LP, whose duals make the cut."""
        amount = target.level if amount is None else amount
        attacker = self.attacker
        if self.cubes is None:
            from pipeline.disclosure.cube import CubeSearch

            self.cube_hidden = np.zeros(self.n, dtype=bool)
            self.cubes = CubeSearch(self.lattice(), attacker.counts.astype(np.int64), 1.0 + self.values,
                                    self.cube_hidden)
        self.cube_hidden[:] = pattern > 0.5
        found = self.cubes.protect(target.cell, target.sign * amount, free_only=True)
        if found is None:
            return False
        move = found[0]
        delta = np.zeros(attacker.n)
        np.add.at(delta, move.atoms, move.coefficients / target.level)
        change = attacker.rows @ delta
        moved = np.flatnonzero(np.abs(change) > EPS)
        row = int(np.searchsorted(attacker.cells, target.cell))
        kept = target.rows, target.change, target.reach
        target.rows, target.change, target.reach = moved, change[moved], target.sign * float(change[row])
        if target.reach >= amount / target.level - REACH_TOL and target.covered(pattern, attacker):
            target.move = Move(move.atoms, move.coefficients.astype(float))
            return True
        target.rows, target.change, target.reach = kept
        return False

    def _check(self, pattern: np.ndarray, target: _Target) -> tuple[float, np.ndarray]:
        """The attacker's LP for ``target`` under ``pattern``; its move becomes the target's last
        one. (The reach, as a share of the level; every row's dual.)"""
        attacker = self.attacker
        attacker.set_pattern(pattern, target.level)
        got, delta, duals = attacker.reach(target.cell, target.sign)
        self.result.checks += 1
        change = attacker.rows @ delta
        moved = np.flatnonzero(np.abs(change) > EPS)
        target.rows, target.change, target.reach = moved, change[moved], got
        target.move = Move(np.arange(attacker.n), np.where(np.abs(delta) > EPS, delta, 0.0) * target.level)
        return got, duals

    def moves(self, pattern: np.ndarray) -> dict:
        """Moves that protect every primary under ``pattern`` (a protecting one), few cells each:
        the caller publishes the secondaries no move uses. Per requirement, cube moves over hidden
        cells where they meet it (``_cube_meets``; under sliding protection one direction may be
        all it needs, and the other is left out); else the last moves found, where those that still
        fit reach its level together; else the LP's moves, found again. (Checks of another pattern
        since, such as a trim's cut off by the time limit, leave moves that fit but fall short.)"""
        out = {}
        integral = _integral(pattern)
        for requirement in self.requirements:
            # Judged after the cube try, which may leave a shorter stored move when it fails.
            again = not (integral and self._cube_meets(pattern, requirement)) and \
                not self._stored_meets(pattern, requirement)
            for t in requirement:
                if again:
                    self._check(pattern, t)
                if again or t.covered(pattern, self.attacker):
                    out[(t.cell, t.amount)] = t.move
        return out

    def _stored_meets(self, pattern: np.ndarray, requirement: list[_Target]) -> bool:
        """Whether the requirement's last moves that still fit ``pattern`` reach its level together."""
        return sum(t.reach for t in requirement if t.covered(pattern, self.attacker)) >= 1.0 - REACH_TOL

    def integral(self) -> None:
        n = self.n
        self.master.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                          np.full(n, highspy.HighsVarType.kInteger, dtype=np.uint8))

    def solve(self, incumbent: np.ndarray | None, until: float) -> tuple[np.ndarray, bool] | None:
        """The master MIP's pattern (and whether it is proved optimal) from ``incumbent``, within
        the time left until ``until``; None when it found no pattern in that time."""
        master = self.master
        if incumbent is not None:
            master.setSolution(_solution(incumbent))  # ignored by HiGHS once a cut excludes it
        master.setOptionValue("time_limit", max(until - time.perf_counter(), 1.0))
        master.run()
        if master.getInfo().primal_solution_status != 2:  # no feasible point within the limit
            return None
        optimal = master.getModelStatus() == highspy.HighsModelStatus.kOptimal
        return np.asarray(master.getSolution().col_value) > 0.5, optimal

    def dive(self, hidden: np.ndarray, until: float, within: np.ndarray | None = None,
             free_rounds: float = DIVE_FREE_ROUNDS) -> np.ndarray | None:
        """A protecting pattern that hides every cell ``hidden`` does (a master pattern that fails
        some checks), found by fixing cells hidden and letting the master choose only what to add:
        solve, check, cut, again until its pattern passes every check. For the first
        ``DIVE_FREE_ROUNDS`` rounds only ``hidden``'s cells are fixed, so the master may still
        rearrange what it adds (the first rounds' cuts are the big ones); after that each round's
        pattern is fixed in turn, so the pattern only grows and the dive ends within a few more
        rounds (re-arranging every round, on the Southend table, took 60 s of rounds that each
        moved the cost by less than 0.01%). ``within``: the only cells the dive may hide (``trim``).
        ``free_rounds`` infinite fixes nothing after ``hidden``: every round's master is then a
        lower bound within ``within``, and the pattern that passes is the cheapest there. The cuts
        hold for every pattern, so they stay. None when the time runs out first."""
        master = self.master
        fixed = np.zeros(0, dtype=np.int32)
        shut = np.zeros(0, dtype=np.int32)
        if within is not None:
            shut = np.flatnonzero(~within & self.free).astype(np.int32)
            master.changeColsBounds(shut.size, shut, np.zeros(shut.size), np.zeros(shut.size))
        try:
            for turn in itertools.count():
                if turn == 0 or turn >= free_rounds:
                    more = np.setdiff1d(np.flatnonzero(hidden & self.free).astype(np.int32), fixed)
                    master.changeColsBounds(more.size, more, np.ones(more.size), np.ones(more.size))
                    fixed = np.union1d(fixed, more).astype(np.int32)
                if time.perf_counter() >= until:
                    return None
                solved = self.solve(None, until)
                if solved is None:
                    return None
                hidden = solved[0]
                cuts = self.add_cuts(hidden.astype(float))
                if self.short:
                    self.exclude(hidden)
                elif not cuts:
                    return hidden
        except _OutOfTime:
            return None
        finally:
            back = np.union1d(fixed, shut).astype(np.int32)
            master.changeColsBounds(back.size, back, self.lower[back], self.upper[back])

    def _fewer(self, pattern: np.ndarray, than: np.ndarray) -> bool:
        """Whether ``pattern`` hides fewer cells than ``than`` (cells hidden in every pattern aside)."""
        return int((pattern & self.free).sum()) < int((than & self.free).sum())

    def trim(self, hidden: np.ndarray, until: float) -> np.ndarray:
        """``hidden`` (a protecting pattern) with as few of its cells as still protect: dives
        (``dive``) within its cells, the cheapest subset first, in cells and then in weight,
        again from each smaller pattern until one hides no fewer cells or the time runs out. A
        dive adds cells to what the master chose, so a cell that an early choice needed may be
        needed by nothing once the pattern is whole. Then, while time is left, one dive within the
        result that fixes nothing (``free_rounds`` infinite): its pattern is the fewest cells
        within it (the greedy dives stop a few cells short: 957 -> 955 on Southend). Any subset
        hides fewer people too, so the trim counts cells, which is what a reader loses (issue
        19's measure)."""
        master, every = self.master, np.arange(self.n, dtype=np.int32)
        tie = self.weights / max(float(self.weights.sum()), 1.0)  # below one cell in total
        master.changeColsCost(self.n, every, np.where(self.free, 1.0 + tie, 0.0))
        nothing, given = np.zeros(self.n, dtype=bool), hidden
        try:
            while time.perf_counter() < until:
                smaller = self.dive(nothing, until, within=hidden)
                if smaller is None or not self._fewer(smaller, hidden):
                    break
                hidden = smaller
            if time.perf_counter() < until:  # the fewest cells within it: a dive that fixes nothing
                fewest = self.dive(nothing, until, within=hidden, free_rounds=np.inf)
                if fewest is not None and self._fewer(fewest, hidden):
                    hidden = fewest
        finally:
            master.changeColsCost(self.n, every, self.weights)
        log.debug("trim: %d -> %d cells", (given & self.free).sum(), (hidden & self.free).sum())
        return hidden


def _search(release: Release, start: np.ndarray | None, time_limit: float, weights: np.ndarray | None,
            ) -> tuple[np.ndarray, dict | None, JointResult] | None:
    began = time.perf_counter()
    model = _Model(release, weights)
    result, master, forced = model.result, model.master, model.forced
    model.add_lines()
    model.deadline = began + time_limit * LP_SHARE

    # Phase 1: the LP relaxation, cut until it protects every target (cheap rounds, strong cuts),
    # for at most LP_SHARE of the time.
    try:
        while not model.out_of_time():
            master.run()
            fractional = np.clip(np.asarray(master.getSolution().col_value), 0.0, 1.0)
            result.bound = master.getInfo().objective_function_value
            result.fractional = fractional
            added = model.add_cuts(fractional, ROUND_CUTS)
            log.debug("LP round at %.1fs: bound %.1f, %d cuts, %d checks so far", time.perf_counter() - began,
                      result.bound, added, result.checks)
            if not added:  # the relaxation protects, or is short only by what no cut can express
                break
    except _OutOfTime:
        pass
    # Phase 2: the master MIP, its pattern checked and cut until one protects. The start pattern
    # (which the caller holds to the audit itself) is the first incumbent and the bar to beat.
    # Once a pattern of its own protects, the last TRIM_SHARE of the time is kept to trim it, and
    # more when a dive as long as the longest so far could not end before that share begins.
    model.integral()
    hidden_best = candidate = None
    bar = model.cost(start | forced) if start is not None else np.inf
    incumbent = (start | forced) if start is not None else None
    dive_seconds = 0.0  # the longest dive so far
    while True:
        model.deadline = began + time_limit * (1.0 - (TRIM_SHARE if hidden_best is not None else 0.0))
        if model.out_of_time():
            break
        result.rounds += 1
        solved = model.solve(incumbent, model.deadline)
        if solved is None:
            break
        hidden, optimal = solved
        result.bound = max(result.bound, master.getInfo().mip_dual_bound)
        cost = model.cost(hidden)
        log.debug("MIP round %d at %.1fs: cost %.1f (to beat %.1f), bound %.1f", result.rounds,
                  time.perf_counter() - began, cost, bar, result.bound)
        if cost >= bar - EPS:  # nothing found cheaper than the pattern we have
            result.optimal = optimal and hidden_best is not None
            candidate = None
            break
        candidate = hidden
        try:
            cuts = model.add_cuts(hidden.astype(float))
        except _OutOfTime:  # this round's pattern is unchecked: keep the best checked one
            break
        if model.short:  # short of a level by less than a cut can express: not this pattern
            model.exclude(hidden)
            continue
        if not cuts:
            hidden_best, incumbent, bar = hidden.copy(), hidden.copy(), cost
            result.cost, result.protected = cost, True
            if optimal:  # the cheapest pattern of a relaxation, and it protects: optimal
                result.optimal = True
                break
            continue
        if not DIVES:
            continue
        if hidden_best is not None and time.perf_counter() + dive_seconds > model.deadline:
            break  # a dive as long as the longest so far would be cut off unfinished: trim instead
        started = time.perf_counter()
        dived = model.dive(hidden, model.deadline)
        dive_seconds = max(dive_seconds, time.perf_counter() - started)
        result.dives += 1
        if dived is not None and model.cost(dived) < bar - EPS:
            hidden_best, incumbent, bar = dived.copy(), dived.copy(), model.cost(dived)
            result.cost, result.protected = bar, True
            log.debug("dive at %.1fs: cost %.1f", time.perf_counter() - began, bar)
    if hidden_best is not None and not result.optimal:
        # Phase 3: the best pattern's cells that its protection no longer needs are published.
        model.deadline = began + time_limit
        trimmed = model.trim(hidden_best, model.deadline)
        result.trimmed = int((hidden_best & model.free).sum() - (trimmed & model.free).sum())
        hidden_best = trimmed
        result.cost = model.cost(hidden_best)
    result.seconds = time.perf_counter() - began
    if hidden_best is not None:
        return hidden_best, model.moves(hidden_best.astype(float)), result
    if candidate is not None:  # the master's last pattern: cheap, but not yet protecting
        return candidate, None, result
    return None


def _integral(pattern: np.ndarray) -> bool:
    return bool(np.all((pattern == 0.0) | (pattern == 1.0)))


def _solution(hidden: np.ndarray) -> highspy.HighsSolution:
    solution = highspy.HighsSolution()
    solution.col_value = hidden.astype(float).tolist()
    solution.value_valid = True
    return solution


def apply_pattern(release: Release, hidden: np.ndarray, moves: dict) -> Release:
    """The joint pattern on the release: cells it hides beyond the primaries become secondary."""
    from pipeline.disclosure.release import SAFE, SECONDARY

    release.status[hidden & (release.status == SAFE)] = SECONDARY
    release.status[~hidden & (release.status == SECONDARY)] = SAFE
    release.moves = moves
    return release


def cell_weights(release: Release) -> np.ndarray:
    """What hiding each cell costs: ``CELL_COST`` for the number a reader loses, plus for an inner
    cell the people in it, and for a margin the square root of its count. A margin's people are
    already counted in its inner cells (weighing them again, as ``1 + count`` does, makes the
    search hide many small inner cells to spare one total), but a large total, which readers look
    for first, still costs more to hide than a small one."""
    values = release.values().astype(float)
    inner = release.table.cells["inner"].to_numpy()
    return CELL_COST + np.where(inner, values, np.sqrt(values))
