"""Secondary (complementary) suppression: find, for every primary cell and direction, a *move*
of atom counts that shifts it by its protection level while every published cell stays the same;
hide every cell a move changes; then a clean-up pass publishes what no move needs.

Two engines find moves:

- ``cube`` (the default, ``pipeline.disclosure.cube``): hypercube moves combined greedily,
  a vectorised search per primary whose cost does not grow with the table. A primary no cube
  can protect falls back to the LP engine on its neighbourhood.
- ``lp``: the cheapest move by linear programming (Fischetti and Salazar's incremental method,
  as sdcTable's heuristic does): each cell's change is ``Xᵀδ = d⁺ - d⁻``; moving a published
  cell costs its weight, a hidden one nothing; atoms stay non-negative. Solved over the atoms
  under the primary's parents in every dimension (its ward's locality, say), which is exact for
  moves there: every cell that contains one of those atoms is a constraint.

Weights keep the table useful: hiding a cell costs ``1 + count`` (small inner cells go first,
margins last). Both engines are deterministic: the same table gives the same pattern.

Clean-up tries to publish each secondary cell again, largest first: a cell can be published if
every move that used it has an alternative that changes hidden cells only (a cell no move uses
needs no search). On small tables the LP is asked too, so afterwards every secondary cell is
needed (Hypothesis checks it); above ``CLEANUP_ALL_CELLS`` cells only the largest margins are
tried, within a budget of searches, because there the clean-up would cost several times the
suppression for a few per cent fewer hidden cells. The moves are kept on the release: the audit
verifies them as certificates.

Large tables are split by the top-level groups of their largest dimension (regions) and run in
two forked processes; each group starts from the same pattern however many processes there
are, so the result does not depend on the machine.
"""

from __future__ import annotations

import multiprocessing
import os
from itertools import chain

import highspy
import numpy as np
import polars as pl
from scipy import sparse

from pipeline.disclosure.audit import protection_levels
from pipeline.disclosure.cube import WIDE_SHORTLIST, CubeSearch, Move
from pipeline.disclosure.lattice import Lattice
from pipeline.disclosure.release import ABSENT, PRIMARY, SAFE, SECONDARY, Release

__all__ = ["METHODS", "engine_for", "protect"]

EPS = 1e-6
METHODS = ("auto", "cube", "lp", "joint")
JOINT_CELLS = 2_000  # "auto": the joint engine for tables up to this size (it finishes in its time limit), cube above
AUTO_TIME_LIMIT = 30.0  # "auto": the joint engine's time limit per table (a package has several)
ROUNDINGS = (0.5, 0.25)  # the LP relaxation's values at or above which a cell is hidden before repair
LP_CHECK_COST = 2000  # a cube move dearer than this (people in the cells it hides): look wider
CLEANUP_ALL_CELLS = 100_000
CLEANUP_TRIES_PER_MOVE = 0.05  # ... and then at most this many cells tried per move (the largest)
FIXED_WEIGHT = 1e9
PARALLEL_CELLS = 100_000  # tables larger than this use two processes by default
CHECKED_CELLS = 50_000  # cube patterns of tables up to this size are held to the audit (``_cube_checked``)
CLEANUP_LP_ATOMS = 200  # clean-up asks the LP too when a neighbourhood is this small


class _Mover:
    """The protection LP over a set of atoms, kept in one HiGHS instance: columns δ (atoms),
    d⁺ and d⁻ (cells touching those atoms); one row per cell."""

    def __init__(self, x: sparse.csc_matrix, atoms: np.ndarray, atom_counts: np.ndarray, weights: np.ndarray,
                 unconstrained: np.ndarray | None = None):
        rows = x[atoms, :].tocsc()
        touched = np.diff(rows.indptr) > 0
        if unconstrained is not None:  # cells no release shows: any change is free, so no row
            touched &= ~unconstrained
        self.cells = np.flatnonzero(touched)
        self.atoms = atoms
        sub = rows[:, self.cells].astype(float)
        n, m = sub.shape
        self.n, self.m = n, m
        self.weights = weights[self.cells]
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n + 2 * m, m
        lp.col_cost_ = np.concatenate([np.zeros(n), self.weights, self.weights])
        lp.col_lower_ = np.concatenate([-atom_counts[atoms].astype(float), np.zeros(2 * m)])
        lp.col_upper_ = np.full(n + 2 * m, inf)
        lp.row_lower_ = np.zeros(m)
        lp.row_upper_ = np.zeros(m)
        cells_of_atom = sub.tocsr()
        self.cells_of_delta = sub.T.tocsr()
        starts = np.concatenate([cells_of_atom.indptr, cells_of_atom.indptr[-1] + 1 + np.arange(2 * m)])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = starts.astype(np.int32)
        lp.a_matrix_.index_ = np.concatenate([cells_of_atom.indices, np.arange(m), np.arange(m)]).astype(np.int32)
        lp.a_matrix_.value_ = np.concatenate([cells_of_atom.data, -np.ones(m), np.ones(m)])
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.passModel(lp)
        self.local = {int(c): i for i, c in enumerate(self.cells)}
        self.synced = np.zeros(m, dtype=bool)

    def sync(self, hidden: np.ndarray) -> None:
        """Costs from the current hidden pattern (zero for hidden cells)."""
        now = hidden[self.cells]
        changed = np.flatnonzero(now != self.synced)
        if changed.size:
            cost = np.where(now[changed], 0.0, self.weights[changed])
            cols = np.concatenate([self.n + changed, self.n + self.m + changed]).astype(np.int32)
            self.highs.changeColsCost(cols.size, cols, np.concatenate([cost, cost]))
            self.synced = now.copy()

    def move(self, cell: int, amount: float) -> tuple[float, Move, set[int]] | None:
        h, i = self.highs, self.local[cell]
        up, down = self.n + i, self.n + self.m + i
        inf = highspy.kHighsInf
        h.changeColBounds(up, max(amount, 0.0), max(amount, 0.0))
        h.changeColBounds(down, max(-amount, 0.0), max(-amount, 0.0))
        try:
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            values = np.asarray(h.getSolution().col_value)
            cost = h.getInfo().objective_function_value
        finally:
            h.changeColBounds(up, 0.0, inf)
            h.changeColBounds(down, 0.0, inf)
        delta = values[:self.n]
        delta = np.where(np.abs(delta) > EPS, delta, 0.0)
        change = self.cells_of_delta @ delta
        return cost, Move(self.atoms.copy(), delta), {int(self.cells[j]) for j in np.flatnonzero(np.abs(change) > EPS)}


class _Engine:
    def __init__(self, release: Release, method: str):
        if method not in METHODS:
            raise ValueError(f"unknown secondary suppression method {method!r}: choose one of {', '.join(METHODS)}")
        self.release, self.method = release, method
        table = release.table
        self.values = release.values()
        self.weights = 1.0 + self.values.astype(float)
        if release.fixed is not None:
            self.weights[release.fixed] = FIXED_WEIGHT  # published before: hidden only if nothing else will do
        self.hidden = release.hidden.copy()
        self.x = table.matrix.tocsc()
        self.atom_counts = table.atoms["count"].to_numpy().astype(np.int64)
        self.lattice = Lattice(table)
        self.cubes = CubeSearch(self.lattice, self.atom_counts, self.weights, self.hidden)
        self.movers: dict[tuple, _Mover] = {}
        self.owned: dict[int, dict] = {}  # during the clean-up: each group's moves, for forked workers to read

    def _group(self, cell: int, wide: bool) -> tuple[int, ...]:
        lat = self.lattice
        return tuple(0 if wide else max(int(lat.parent[d][n]), 0) for d, n in enumerate(lat.cell_nodes[cell]))

    def _atoms_in(self, cell: int, wide: bool) -> int:
        group = self._group(cell, wide)
        return self.lattice.atoms_under(int(self.lattice.cell_of[np.array(group) @ self.lattice.strides])).size

    def _mover(self, cell: int, wide: bool) -> _Mover:
        lat = self.lattice
        group = self._group(cell, wide)
        if group not in self.movers:
            atoms = self.x[:, int(lat.cell_of[np.array(group) @ lat.strides])].indices
            self.movers[group] = _Mover(self.x, np.sort(atoms), self.atom_counts, self.weights,
                                        self.release.status == ABSENT)
        return self.movers[group]

    def lp_move(self, cell: int, amount: int, *, free_only: bool = False):
        """The LP's move over the primary's neighbourhood, else over the whole table. For the
        clean-up (``free_only``) only where that is small."""
        for wide in (False, True):
            if free_only and self._atoms_in(cell, wide) > CLEANUP_LP_ATOMS:
                continue
            mover = self._mover(cell, wide)
            mover.sync(self.hidden)
            found = mover.move(cell, float(amount))
            if found is None:
                continue
            cost, move, moved = found
            if free_only and cost > EPS:
                continue
            return move, moved, cost
        return None

    def find(self, cell: int, amount: int, *, free_only: bool = False, candidates=None):
        found = None
        if self.method == "cube":
            found = self.cubes.protect(cell, amount, free_only=free_only, found=candidates)
        if self.method == "cube" and not free_only and (found is None or found[2] > LP_CHECK_COST):
            # No cube, or only dear ones (hiding big margins): look wider. No cube at all: the LP.
            wider = self.cubes.protect(cell, amount, free_only=free_only, size=WIDE_SHORTLIST)
            if wider is not None and (found is None or wider[2] < found[2]):
                found = wider
        if found is None:
            found = self.lp_move(cell, amount, free_only=free_only)
        elif self.method == "cube" and not free_only and found[2] >= FIXED_WEIGHT:
            # Every cube hides a cell an earlier release published. A cube moves whole atoms of
            # its corners; the LP can spread a move over several atoms (a joint table's atoms are
            # finer than either release's), which often avoids the published cells.
            lp = self.lp_move(cell, amount)
            if lp is not None and lp[2] < found[2]:
                found = lp
        if found is None and not free_only:
            raise RuntimeError(f"cannot protect cell {_name(self.release, cell)} by {amount}")
        if found is not None and not free_only:
            self.hidden[list(found[1])] = True
        return found


def protect(release: Release, method: str = "cube", workers: int | None = None,
            time_limit: float | None = None) -> Release:
    """Hide secondary cells so that every primary can move by its protection levels, then clean up.

    Tables whose largest dimension has groups under its top level (wards in authorities in
    regions) are split by top-level group: each group's primaries are protected, and its cells
    cleaned up, from the same starting point whatever the number of ``workers`` (processes), so
    the pattern does not depend on it; primaries at the top level, and cells that moves of more
    than one group use, are done afterwards in one process."""
    if method == "auto" and time_limit is None:
        time_limit = AUTO_TIME_LIMIT
    method = engine_for(release, method)
    if method == "joint":
        return _joint(release, workers, time_limit)
    if method == "cube" and release.table.cells.height <= CHECKED_CELLS and (release.known is None or release.joint):
        return _cube_checked(release, workers)
    return _protect(release, method, workers)


def engine_for(release: Release, method: str) -> str:
    """The engine ``method`` names for this release: ``auto`` is the joint engine where the table
    is small enough for it to finish within its time limit (``JOINT_CELLS``), cube above (the
    engine for tables of England's size)."""
    if method != "auto":
        return method
    return "joint" if release.table.cells.height <= JOINT_CELLS else "cube"


def _joint(release: Release, workers: int | None, time_limit: float | None) -> Release:
    """The joint engine's pattern where it hides less than the cube engine's (which it starts
    from, and which is kept otherwise). When the time limit stops the search before the master's
    pattern protects every primary, that pattern is repaired: the cube engine protects what it
    leaves short, starting from it, and cleans up. Whatever is returned is held to the audit."""
    from pipeline.disclosure.audit import audit_release, moves_protect
    from pipeline.disclosure.joint import TIME_LIMIT, apply_pattern, cell_weights, protect_joint

    cube = protect(_copy(release), "cube", workers)
    weights = cell_weights(release)
    found = protect_joint(_copy(release), start=cube.hidden.copy(),
                          time_limit=TIME_LIMIT if time_limit is None else time_limit, weights=weights)
    if found is None:
        return cube
    hidden, moves, result = found
    candidates = []
    if result.protected:
        joint = apply_pattern(_copy(release), hidden, moves)
        x = joint.table.matrix.tocsc()
        uses = _Uses({key: (move, set(np.flatnonzero(np.abs(x[move.atoms, :].T @ move.coefficients) > EPS).tolist()),
                            0.0) for key, move in moves.items()})
        # A secondary no move changes protects nothing (a pattern stopped before its proof can
        # hold some) and the audit would find it exact: publish it; every move still holds.
        idle = (joint.status == SECONDARY) & ~uses.used(joint.status.size)
        if release.kept is not None:
            idle &= ~release.kept
        joint.status[idle] = SAFE
        _give_reasons(joint, uses)
        candidates.append(joint)
    else:
        candidates.append(_repaired(release, hidden, workers))
    if not result.optimal and result.fractional is not None:
        # Out of time before the proof: the LP relaxation's solution, rounded at a few levels and
        # repaired the same way, often beats both the cube pattern and the master's last one.
        for level in ROUNDINGS:
            candidates.append(_repaired(release, result.fractional >= level, workers))
    bar = weights[cube.hidden].sum() - EPS
    for joint in sorted(candidates, key=lambda r: weights[r.hidden].sum()):
        if weights[joint.hidden].sum() >= bar:
            break
        if moves_protect(joint) or audit_release(joint).passed:
            return joint
    return cube


def _copy(release: Release) -> Release:
    """The release with statuses and reasons of its own (the table and levels shared)."""
    import dataclasses

    return dataclasses.replace(release, status=release.status.copy(), reasons=[list(r) for r in release.reasons])


def _repaired(release: Release, hidden: np.ndarray, workers: int | None) -> Release:
    """``hidden`` made a protecting pattern: the cube engine protects what it leaves short,
    starting from it, and its clean-up drops the cells no primary needs."""
    repaired = _copy(release)
    repaired.status[hidden & (repaired.status == SAFE)] = SECONDARY
    return _protect(repaired, "cube", workers)


def _protect(release: Release, method: str, workers: int | None) -> Release:
    engine = _Engine(release, method)
    workers = workers or (min(2, os.cpu_count() or 1) if release.table.cells.height > PARALLEL_CELLS else 1)
    part = _partitions(engine)
    groups: dict[int, list[int]] = {}
    for p in np.flatnonzero(release.status == PRIMARY):
        groups.setdefault(int(part[p]) if _below_top(engine, int(p)) else -1, []).append(int(p))
    shared = groups.pop(-1, [])
    moves: dict[tuple[int, int], tuple[Move, set[int], float]] = {}
    for found in _run(engine, _protect_primaries, [groups[g] for g in sorted(groups)], workers):
        for key, move in found.items():
            moves[key] = move
            engine.hidden[list(move[1])] = True
    moves.update(_protect_primaries(engine, shared))
    release.status[engine.hidden & (release.status == SAFE)] = SECONDARY
    if release.fixed is not None and (release.status[release.fixed] == SECONDARY).any():
        cells = np.flatnonzero(release.fixed & (release.status == SECONDARY))[:5]
        raise ValueError("cannot protect this release without hiding cells an earlier release published: "
                         + ", ".join(_name(release, c) for c in cells))
    # Clean-up: cells all of whose moves belong to one group are cleaned with that group.
    uses = _Uses(moves)
    owner = uses.owners(part)
    shared_cell = np.zeros(part.size, dtype=bool)  # a cell some move of another group (or none) changes
    shared_cell[uses.cells[owner[uses.move] != part[uses.cells]]] = True
    by_group: dict[int, list[int]] = {}
    rest = []
    for cell in _cleanup_candidates(release, engine):
        g = int(part[cell])
        (by_group.setdefault(g, []) if g >= 0 and not shared_cell[cell] else rest).append(cell)
    owned: dict[int, dict] = {}
    for key, g in zip(uses.keys, owner.tolist(), strict=True):
        owned.setdefault(g, {})[key] = moves[key]
    engine.owned = owned  # read by the forked children, not sent to them (20 million cells' worth)
    try:
        for published, replaced in _run(engine, _clean_group, sorted(by_group.items()), workers):
            moves.update(replaced)
            _publish(release, engine, published)
    finally:
        engine.owned = {}
    # ``_run`` leaves the LP models cold, so what follows solves the same whatever ran before.
    published, replaced = _clean(engine, rest, moves)
    moves.update(replaced)
    _publish(release, engine, published)
    # A cell kept early may be left unused by moves re-solved later: publish it too.
    uses = _Uses(moves)
    _publish(release, engine, np.flatnonzero(_open_secondaries(release) & ~uses.used(release.status.size)).tolist())
    _give_reasons(release, uses)
    release.moves = {key: found[0] for key, found in moves.items()}
    return release


def _cube_checked(release: Release, workers: int | None) -> Release:
    """The cube pattern, held to the audit before it is returned: if its moves do not prove the
    protection (a quick check) and the exact LP audit fails too, the table is protected again by
    the LP engine from the same primaries. The cube engine can leave a primary short where a move
    runs through a zero cell the profile hides (ACRO protects zeros): seen by the property test on
    a 21-cell table. Tables above ``CHECKED_CELLS`` go unchecked here; publishing audits them."""
    from pipeline.disclosure.audit import audit_release, moves_protect

    status = release.status.copy()
    reasons = [list(r) for r in release.reasons]
    _protect(release, "cube", workers)
    if moves_protect(release) or audit_release(release).passed:
        return release
    release.status[:] = status
    release.reasons = reasons
    release.moves = None
    return _protect(release, "lp", workers)


def _open_secondaries(release: Release) -> np.ndarray:
    """Secondary cells this release may still publish (not those an earlier release hid)."""
    open_ = release.status == SECONDARY
    return open_ if release.kept is None else open_ & ~release.kept


def _publish(release: Release, engine: _Engine, cells) -> None:
    for cell in cells:
        release.status[cell] = SAFE
        engine.hidden[cell] = False


def _protect_primaries(engine: _Engine, primaries: list[int]) -> dict:
    width = engine.release.profile.protection_width
    moves = {}
    levels = engine.release.levels
    for p in primaries:
        down, up = (int(levels[0][p]), int(levels[1][p])) if levels is not None else \
            protection_levels(int(engine.values[p]), width)
        candidates = engine.cubes.candidates(p) if engine.method == "cube" else None
        for amount in (up, -down) if down else (up,):
            moves[(p, amount)] = engine.find(p, amount, candidates=candidates)
    return moves


class _Uses:
    """Which cells each move changes, flattened once into arrays (an entry per move and cell it
    changes), for the questions asked of every move at once: which cells some move uses, which
    group each move belongs to, and, for the few cells a clean-up tries, which moves use them.
    On England's table that is about 20 million entries, too many for a set per cell."""

    def __init__(self, moves: dict):
        self.keys = list(moves)
        sizes = np.fromiter((len(moves[k][1]) for k in self.keys), dtype=np.int64, count=len(self.keys))
        self.cells = np.fromiter(chain.from_iterable(moves[k][1] for k in self.keys), dtype=np.int64,
                                 count=int(sizes.sum()))
        self.move = np.repeat(np.arange(len(self.keys)), sizes)

    def used(self, n: int) -> np.ndarray:
        """Per cell, whether some move changes it."""
        out = np.zeros(n, dtype=bool)
        out[self.cells] = True
        return out

    def owners(self, part: np.ndarray) -> np.ndarray:
        """Per move, its group: the one group (``part``) of the cells it changes, -1 when it
        changes cells of several groups (cells at the top level, -1, belong to none)."""
        group = part[self.cells]
        inside = group >= 0
        low = np.full(len(self.keys), np.iinfo(np.int64).max)
        high = np.full(len(self.keys), -1)
        np.minimum.at(low, self.move[inside], group[inside])
        np.maximum.at(high, self.move[inside], group[inside])
        return np.where(low == high, high, -1)

    def of(self, cells: list[int]) -> dict[int, set]:
        """The moves (keys) that change each of ``cells``; a cell no move changes is left out."""
        wanted = np.isin(self.cells, np.asarray(cells, dtype=np.int64))
        users: dict[int, set] = {}
        for c, m in zip(self.cells[wanted].tolist(), self.move[wanted].tolist(), strict=True):
            users.setdefault(c, set()).add(self.keys[m])
        return users


def _cleanup_candidates(release: Release, engine: _Engine) -> list[int]:
    """Secondary cells to try publishing again, largest first. Above ``CLEANUP_ALL_CELLS`` cells
    only margins are tried (the searches would otherwise cost several times the suppression);
    cells no move uses are published in any case."""
    tried = np.flatnonzero(_open_secondaries(release))
    if release.table.cells.height > CLEANUP_ALL_CELLS:
        tried = tried[~release.table.cells["inner"].to_numpy()[tried]]
    values = engine.values
    return [int(c) for c in sorted(tried, key=lambda c: (-values[c], c))]


def _clean(engine: _Engine, cells: list[int], moves: dict) -> tuple[list[int], dict]:
    """One pass, in the given order: publish a cell if every move that used it has a free
    alternative. One pass is enough: publishing more cells never frees a move. On tables above
    ``CLEANUP_ALL_CELLS`` at most one cell is tried per move (largest cells first)."""
    users = _Uses(moves).of(cells)  # kept up to date for these cells as moves are replaced
    published, replaced = [], {}
    budget = int(len(moves) * CLEANUP_TRIES_PER_MOVE) if engine.release.table.cells.height > CLEANUP_ALL_CELLS else None
    for cell in cells:
        affected = sorted(users.get(cell, ()))
        if affected and budget is not None:
            if budget <= 0:
                continue  # unused cells are still published below
            budget -= 1
        engine.hidden[cell] = False
        found_all = {}
        for key in affected:
            found = engine.find(*key, free_only=True)
            if found is None:
                engine.hidden[cell] = True
                break
            found_all[key] = found
        else:
            published.append(cell)
            for key, found in found_all.items():
                old = replaced.get(key, moves[key])
                for c in old[1]:
                    if c in users:
                        users[c].discard(key)
                replaced[key] = found
                for c in found[1]:
                    users.setdefault(c, set()).add(key)
    return published, replaced


def _clean_group(engine: _Engine, task) -> tuple[list[int], dict]:
    """One group's clean-up: its cells, with the moves of that group (``engine.owned``)."""
    group, cells = task
    return _clean(engine, cells, engine.owned.get(group, {}))


def _partitions(engine: _Engine) -> np.ndarray:
    """Per cell, its top-level group in the dimension with the most leaves (-1 at ``Total``);
    all -1 when that dimension has no groups (its leaves sit right under ``Total``)."""
    lat = engine.lattice
    d = max(range(lat.k), key=lambda e: (len(lat.leaves_under(e, 0)), -e))
    top = np.full(len(lat.nodes[d]), -1, dtype=np.int64)
    for node in range(1, len(lat.nodes[d])):
        top[node] = lat.chain(d, node)[-2]
    if all(lat.parent[d][leaf] == 0 for leaf in lat.leaves_under(d, 0)):
        top[:] = -1
    engine.partition_dim = d
    return top[lat.cell_nodes[:, d]]


def _below_top(engine: _Engine, cell: int) -> bool:
    """Whether the cell sits below its top-level group, so its cubes stay inside the group."""
    lat, d = engine.lattice, engine.partition_dim
    node = lat.cell_nodes[cell, d]
    return node != 0 and lat.parent[d][node] != 0


_FORKED: _Engine | None = None


def _in_child(args):
    """One task in a forked worker, which may run several: each starts from the pattern forked."""
    fn, task = args
    engine = _FORKED
    if not hasattr(engine, "forked_hidden"):
        engine.forked_hidden = engine.hidden.copy()
    engine.hidden[:] = engine.forked_hidden
    engine.movers.clear()
    return fn(engine, task)


def _run(engine: _Engine, fn, tasks: list, workers: int) -> list:
    """``fn(engine, task)`` for each task, each from the engine's present hidden pattern: in
    forked processes (which inherit the engine) or one after another, restoring the pattern."""
    global _FORKED
    engine.movers.clear()  # each task's LPs start cold, in a child or not: the same solves, the same moves
    if workers > 1 and len(tasks) > 1:
        _FORKED = engine
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                return pool.map(_in_child, [(fn, t) for t in tasks], chunksize=1)
        finally:
            _FORKED = None
    start = engine.hidden.copy()
    out = []
    for task in tasks:
        out.append(fn(engine, task))
        engine.hidden[:] = start
        engine.movers.clear()
    return out


def _give_reasons(release: Release, uses: _Uses) -> None:
    """Each secondary's reason: the primaries whose moves change it, by name (a secondary no move
    changes was hidden by an earlier release and keeps its reason)."""
    primary = np.fromiter((key[0] for key in uses.keys), dtype=np.int64, count=len(uses.keys))[uses.move]
    on = release.status[uses.cells] == SECONDARY
    n = release.status.size
    pairs = np.unique(uses.cells[on] * n + primary[on])  # each (secondary, primary) once, by secondary
    cells, protected = pairs // n, pairs % n
    if not cells.size:
        return
    table = release.table
    named = np.unique(protected)
    names = table.cells[named].select(pl.concat_str(table.dim_names, separator="/")).to_series().to_list()
    alphabetical = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[alphabetical] = np.arange(len(names))
    by_name = rank[np.searchsorted(named, protected)]
    order = np.lexsort((by_name, cells))  # each secondary's primaries, by name
    cells, listed = cells[order], [names[alphabetical[r]] for r in by_name[order].tolist()]
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    ends = np.r_[starts[1:], cells.size]
    for c, a, b in zip(cells[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        release.reasons[c] = [f"SECONDARY(protects {', '.join(listed[a:b])})"]


def _name(release: Release, cell: int) -> str:
    row = release.table.cells.row(int(cell), named=True)
    return "/".join(str(row[d]) for d in release.table.dim_names)
