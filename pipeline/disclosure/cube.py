"""The fast default engine: hypercube moves, combined greedily (after Repsilber's GHMITER, as in
τ-Argus and sdcTable's HYPERCUBE), with the LP engine for any primary no cube can protect.

A *cube* around a primary cell chooses, for some dimensions, a sibling value (same parent) and
moves the count by ``+t`` at the primary's corner and ``±t`` alternately at the others. Every
published margin sees the moves cancel, except along the dimensions the cube does not span,
where the primary's ancestors move too; so the cells a cube changes are the corners times, in
each unspanned dimension, the chain from the leaf up to ``Total``. Hiding those cells makes the
cube a move the attacker cannot rule out. A move ``+t`` needs every ``-`` atom to hold at least
``t`` people (counts stay non-negative); several cubes can share the work, so the primary can
move ``up`` by adding smaller cubes until their capacities reach it ("spreading" across wards).

For each primary and direction the engine takes the cheapest cube first (cost: the weights,
``1 + count``, of the published cells it would hide), then the next, until the protection level
is reached; every step is a vectorised evaluation of a few hundred candidate cubes, so the work
per primary is small and independent of the table's size. Cubes are searched over the
``SHORTLIST`` most promising siblings per dimension (hidden neighbours first, then small ones),
and over ``WIDE_SHORTLIST`` when every short-list cube would hide many people.

The moves are kept: the audit verifies them as certificates (``pipeline.disclosure.audit``) and
the clean-up pass (``pipeline.disclosure.secondary``) re-uses them.
"""

from __future__ import annotations

import numpy as np

from pipeline.disclosure.lattice import Lattice

__all__ = ["CubeSearch", "Cubes", "Move"]

SHORTLIST = 3  # siblings per dimension (and atoms of a margin) a cube may use
WIDE_SHORTLIST = 16  # ... when no cheap cube was found with the short list


class Move:
    """A change of atom counts: ``atoms`` by ``coefficients`` (integers from cubes, reals from the
    LP engine, whose attacker is the same LP relaxation the audit uses)."""

    __slots__ = ("atoms", "coefficients")

    def __init__(self, atoms: np.ndarray, coefficients: np.ndarray):
        keep = coefficients != 0
        self.atoms, self.coefficients = atoms[keep], coefficients[keep]


NO_LIMIT = np.iinfo(np.int64).max  # a cube no atom limits (looked up once: np.iinfo is slow to build)


def _options(options) -> tuple[np.ndarray, ...]:
    """One dimension's choices as padded arrays: changed nodes and signs, atom nodes and signs."""
    length = max(len(o[0]) for o in options)
    node = np.array([o[0] + [0] * (length - len(o[0])) for o in options], dtype=np.int64)
    sign = np.array([o[1] + [0] * (length - len(o[1])) for o in options], dtype=np.int64)
    anode = np.array([o[2] for o in options], dtype=np.int64)
    asign = np.array([o[3] for o in options], dtype=np.int64)
    return node, sign, anode, asign


class Cubes:
    """The candidate cubes around one cell, one per row: the cells each changes (``-1`` padding)
    with signs, its atoms with signs; and what every search over them looks up (the cells'
    weights, the atoms' counts, each direction's capacity), computed once, since the search's
    weights and counts do not change."""

    __slots__ = ("_capacity", "asigns", "atoms", "avail", "cells", "safe_atoms", "safe_cells", "signs", "valid",
                 "weights")

    def __init__(self, cells, signs, atoms, asigns, atom_counts: np.ndarray, weights: np.ndarray):
        self.cells, self.signs, self.atoms, self.asigns = cells, signs, atoms, asigns
        self.valid = cells >= 0
        self.safe_cells = np.where(self.valid, cells, 0)
        self.weights = np.where(self.valid, weights[self.safe_cells], 0.0)
        self.safe_atoms = np.where(atoms >= 0, atoms, 0)
        self.avail = atom_counts[self.safe_atoms]
        self._capacity: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def capacity(self, direction: int) -> tuple[np.ndarray, np.ndarray]:
        """The atoms that lose people under a move in ``direction`` and, per cube, how far it can
        move before one of them reaches zero."""
        if direction not in self._capacity:
            limiting = (self.asigns == -direction) & (self.atoms >= 0)
            self._capacity[direction] = limiting, np.where(limiting, self.avail, NO_LIMIT).min(axis=1)
        return self._capacity[direction]


class CubeSearch:
    def __init__(self, lattice: Lattice, atom_counts: np.ndarray, weights: np.ndarray, hidden: np.ndarray):
        self.lat = lattice
        self.atom_counts = atom_counts.astype(np.int64)
        self.weights = weights
        self.hidden = hidden  # shared with the engine: updated in place
        # Scratch marks for "is this cell (atom) one of the chosen cube's?" over a whole candidate
        # array: set, read, cleared again (np.isin sorts every time: 11% of a search's time).
        self._cell_mark = np.zeros(hidden.size, dtype=bool)
        self._atom_mark = np.zeros(self.atom_counts.size, dtype=bool)

    # Candidate cubes ---------------------------------------------------------------------------
    def _shortlist(self, nodes: np.ndarray, d: int, size: int, hidden_only: bool = False) -> list[int]:
        """Hidden neighbours first (free), the fullest first; then the smallest published (not
        with ``hidden_only``: a cube through a published neighbour is not free)."""
        lat = self.lat
        sibs = lat.sibling_array(d, int(nodes[d]))
        if not sibs.size:
            return []
        cells = lat.cell_of[int(nodes @ lat.strides) + (sibs - nodes[d]) * lat.strides[d]]
        hidden = self.hidden[cells]
        counts = self.weights[cells] - 1
        order = np.lexsort((sibs, np.where(hidden, -counts, counts), ~hidden))[:size]
        return sibs[order[hidden[order]] if hidden_only else order].tolist()

    def _fullest_leaf(self, leaf: list[int], d: int, node: int) -> int:
        """The leaf under ``node`` (dimension ``d``) whose atom, with the other dimensions at
        ``leaf``, holds the most people."""
        lat = self.lat
        under = lat.leaves_under(d, node)
        if len(under) == 1:
            return int(under[0])
        base = sum(leaf[e] * int(lat.strides[e]) for e in range(lat.k) if e != d)
        counts = self.atom_counts[lat.atom_of[base + under * lat.strides[d]]]
        return int(under[int(np.argmax(counts))])

    def candidates(self, cell: int, size: int = SHORTLIST, free_only: bool = False) -> Cubes | None:
        """Every cube around ``cell`` over the shortlisted siblings (``Cubes``), or None. With
        ``free_only``, only those that could be free: a cube spanning a dimension changes the
        cell's neighbour there, so that neighbour must be hidden (the cubes left out would cost
        something; the order of the others is kept, so a search picks the same one)."""
        lat = self.lat
        # A margin moves through its fullest atoms, so a move down has people to take away.
        atoms_in = lat.atoms_under(cell)
        counts = self.atom_counts[atoms_in]
        order = np.lexsort((atoms_in, -counts))[:size]
        through = atoms_in[order][counts[order] > 0] if counts[order[0]] > 0 else atoms_in[order[:1]]
        blocks = [b for a in through
                  for b in self._blocks_through(cell, [int(n) for n in lat.atom_nodes[a]], size, free_only)]
        if not blocks:
            return None
        return Cubes(*self._stack(blocks), self.atom_counts, self.weights)

    def _blocks_through(self, cell: int, leaf: list[int], size: int, free_only: bool = False):
        """The cubes around ``cell`` that move it through the atom at ``leaf``: one product over
        the dimensions, each either unspanned (the chain up to ``Total`` moves) or spanned to a
        shortlisted sibling; the all-unspanned choice is left out."""
        lat = self.lat
        nodes = lat.cell_nodes[cell]
        per_dim = []
        for d in range(lat.k):
            chain = lat.chain(d, leaf[d])
            options = [(chain, [1] * len(chain), [leaf[d], -1], [1, 0])]
            if nodes[d] != 0:
                own = lat.chain(d, leaf[d], stop=int(nodes[d]))
                for u in self._shortlist(nodes, d, size, free_only):
                    down = self._fullest_leaf(leaf, d, u)
                    other = lat.chain(d, down, stop=u)
                    options.append((own + other, [1] * len(own) + [-1] * len(other), [leaf[d], down], [1, -1]))
            per_dim.append(_options(options))
        if all(o[0].shape[0] == 1 for o in per_dim):
            return []
        cells, signs, atoms, asigns = self._block(per_dim)
        return [(cells[1:], signs[1:], atoms[1:], asigns[1:])]  # row 0: nothing spanned

    @staticmethod
    def _stack(blocks):
        if len(blocks) == 1:  # an inner cell's cubes all go through its own atom
            return blocks[0]
        rows = sum(b[0].shape[0] for b in blocks)
        width = max(b[0].shape[1] for b in blocks)
        awidth = max(b[2].shape[1] for b in blocks)
        cells = np.full((rows, width), -1, dtype=np.int64)
        signs = np.zeros((rows, width), dtype=np.int64)
        atoms = np.full((rows, awidth), -1, dtype=np.int64)
        asigns = np.zeros((rows, awidth), dtype=np.int64)
        at = 0
        for c, sg, a, asg in blocks:
            n = c.shape[0]
            cells[at:at + n, :c.shape[1]], signs[at:at + n, :c.shape[1]] = c, sg
            atoms[at:at + n, :a.shape[1]], asigns[at:at + n, :a.shape[1]] = a, asg
            at += n
        return cells, signs, atoms, asigns

    def _block(self, per_dim):
        """The cubes of one choice of spanned dimensions: the product of every dimension's options."""
        lat = self.lat
        codes = np.zeros((1, 1), dtype=np.int64)
        signs = np.ones((1, 1), dtype=np.int64)
        acodes = np.zeros((1, 1), dtype=np.int64)
        asigns = np.ones((1, 1), dtype=np.int64)
        for d, (node, sign, anode, asign) in enumerate(per_dim):
            n = codes.shape[0] * node.shape[0]
            codes = (codes[:, None, :, None] + node[None, :, None, :] * lat.strides[d]).reshape(n, -1)
            signs = (signs[:, None, :, None] * sign[None, :, None, :]).reshape(n, -1)
            acodes = (acodes[:, None, :, None] + anode[None, :, None, :] * lat.strides[d]).reshape(n, -1)
            asigns = (asigns[:, None, :, None] * asign[None, :, None, :]).reshape(n, -1)
        keep = signs != 0
        cells = np.where(keep, lat.cell_of[np.where(keep, codes, 0)], -1)
        akeep = asigns != 0
        return cells, signs, np.where(akeep, lat.atom_of[np.where(akeep, acodes, 0)], -1), asigns

    @staticmethod
    def _marked(mark: np.ndarray, chosen: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Per entry of ``where`` (ids, padding mapped to 0), whether it is one of ``chosen``: what
        ``np.isin(where, chosen)`` says wherever ``where`` is not padding."""
        mark[chosen] = True
        out = mark[where]
        mark[chosen] = False
        return out

    # Protection --------------------------------------------------------------------------------
    def protect(self, cell: int, amount: int, *, free_only: bool = False, found=None, size: int = SHORTLIST):
        """Cubes moving ``cell`` by ``amount`` (signed): ``(move, cells changed, cost)``, or None.
        With ``free_only`` only cubes that change hidden cells alone are used. ``found``: the
        candidates, if already built for this cell (``candidates``; up and down share them)."""
        need = abs(amount)
        cubes = self.candidates(cell, size, free_only) if found is None else found
        if cubes is None:
            return None
        direction = 1 if amount > 0 else -1
        limiting, capacity = cubes.capacity(direction)
        # Only cubes that can move are searched: a cube that cannot move now never can (capacities
        # only fall as steps are taken; under ``free_only`` costs stay 0 or not). ``live`` numbers them.
        live = np.flatnonzero(capacity > 0)
        if not live.size:
            return None
        cells, valid, weights, atoms, avail = cubes.cells, cubes.valid, cubes.weights, cubes.atoms, cubes.avail
        safe, safe_atoms = cubes.safe_cells, cubes.safe_atoms
        if live.size < capacity.size:
            cells, valid, weights, atoms, avail, safe, safe_atoms = (
                a[live] for a in (cells, valid, weights, atoms, avail, safe, safe_atoms))
            limiting, capacity = limiting[live], capacity[live]
        open_ = valid & ~self.hidden[safe]  # cells each cube would newly hide
        cost = np.where(open_, weights, 0.0).sum(axis=1)
        chosen: list[tuple[int, int]] = []
        total_cost = 0.0
        remaining = need
        while remaining > 0:
            usable = capacity > 0
            if free_only:
                usable &= cost == 0
            rows = np.flatnonzero(usable)
            if not rows.size:
                return None
            # The cheapest cube; among those, the one moving furthest (up to what remains); then the first.
            rows = rows[cost[rows] == cost[rows].min()]
            if rows.size > 1:
                reach = np.minimum(capacity[rows], remaining)
                rows = rows[reach == reach.max()]
            best = int(rows[0])
            step = int(min(capacity[best], remaining))
            chosen.append((int(live[best]), step))
            total_cost += float(cost[best])
            remaining -= step
            if remaining:
                # The next cube pays nothing for cells this one hides, and shares its atoms' people.
                open_ &= ~self._marked(self._cell_mark, cells[best][valid[best]], safe)  # padding: not open
                # A cube's atoms differ; padding never limits, so what it reads does not matter.
                avail = avail - step * self._marked(self._atom_mark, atoms[best][limiting[best]], safe_atoms)
                capacity = np.where(limiting, avail, NO_LIMIT).min(axis=1)
                keep = np.flatnonzero(capacity > 0)
                live, cells, valid, weights, atoms, avail, safe, safe_atoms = (
                    a[keep] for a in (live, cells, valid, weights, atoms, avail, safe, safe_atoms))
                open_, limiting, capacity = open_[keep], limiting[keep], capacity[keep]
                cost = np.where(open_, weights, 0.0).sum(axis=1)
        if len(chosen) == 1:  # one cube: its atoms and cells are distinct, each moved by its sign
            best, step = chosen[0]
            keep = cubes.atoms[best] >= 0
            move = Move(cubes.atoms[best][keep], direction * step * cubes.asigns[best][keep])
            return move, set(cubes.cells[best][cubes.valid[best]].tolist()), total_cost
        coefficient: dict[int, int] = {}
        change: dict[int, int] = {}
        for best, step in chosen:
            for a, s in zip(cubes.atoms[best].tolist(), cubes.asigns[best].tolist(), strict=True):
                if a >= 0:
                    coefficient[a] = coefficient.get(a, 0) + direction * step * s
            for c, s in zip(cubes.cells[best].tolist(), cubes.signs[best].tolist(), strict=True):
                if c >= 0:
                    change[c] = change.get(c, 0) + direction * step * s
        move = Move(np.fromiter(coefficient, dtype=np.int64), np.fromiter(coefficient.values(), dtype=np.int64))
        return move, {c for c, v in change.items() if v}, total_cost
