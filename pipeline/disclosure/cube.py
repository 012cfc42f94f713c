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

__all__ = ["CubeSearch", "Move"]

SHORTLIST = 3  # siblings per dimension (and atoms of a margin) a cube may use
WIDE_SHORTLIST = 16  # ... when no cheap cube was found with the short list


class Move:
    """A change of atom counts: ``atoms`` by ``coefficients`` (integers from cubes, reals from the
    LP engine, whose attacker is the same LP relaxation the audit uses)."""

    __slots__ = ("atoms", "coefficients")

    def __init__(self, atoms: np.ndarray, coefficients: np.ndarray):
        keep = coefficients != 0
        self.atoms, self.coefficients = atoms[keep], coefficients[keep]


def _options(options) -> tuple[np.ndarray, ...]:
    """One dimension's choices as padded arrays: changed nodes and signs, atom nodes and signs."""
    length = max(len(o[0]) for o in options)
    node = np.array([o[0] + [0] * (length - len(o[0])) for o in options], dtype=np.int64)
    sign = np.array([o[1] + [0] * (length - len(o[1])) for o in options], dtype=np.int64)
    anode = np.array([o[2] for o in options], dtype=np.int64)
    asign = np.array([o[3] for o in options], dtype=np.int64)
    return node, sign, anode, asign


class CubeSearch:
    def __init__(self, lattice: Lattice, atom_counts: np.ndarray, weights: np.ndarray, hidden: np.ndarray):
        self.lat = lattice
        self.atom_counts = atom_counts.astype(np.int64)
        self.weights = weights
        self.hidden = hidden  # shared with the engine: updated in place

    # Candidate cubes ---------------------------------------------------------------------------
    def _shortlist(self, nodes: np.ndarray, d: int, size: int) -> list[int]:
        """Hidden neighbours first (free), the fullest first; then the smallest published."""
        lat = self.lat
        sibs = lat.sibling_array(d, int(nodes[d]))
        if not sibs.size:
            return []
        cells = lat.cell_of[int(nodes @ lat.strides) + (sibs - nodes[d]) * lat.strides[d]]
        hidden = self.hidden[cells]
        counts = self.weights[cells] - 1
        order = np.lexsort((sibs, np.where(hidden, -counts, counts), ~hidden))
        return sibs[order[:size]].tolist()

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

    def candidates(self, cell: int, size: int = SHORTLIST):
        """Every cube around ``cell`` over the shortlisted siblings: the cells each changes
        (``-1`` padding) with signs, and its atoms with signs."""
        lat = self.lat
        # A margin moves through its fullest atoms, so a move down has people to take away.
        atoms_in = lat.atoms_under(cell)
        counts = self.atom_counts[atoms_in]
        order = np.lexsort((atoms_in, -counts))[:size]
        through = atoms_in[order][counts[order] > 0] if counts[order[0]] > 0 else atoms_in[order[:1]]
        blocks = [b for a in through for b in self._blocks_through(cell, [int(n) for n in lat.atom_nodes[a]], size)]
        if not blocks:
            return None
        return self._stack(blocks)

    def _blocks_through(self, cell: int, leaf: list[int], size: int):
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
                for u in self._shortlist(nodes, d, size):
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

    # Protection --------------------------------------------------------------------------------
    def protect(self, cell: int, amount: int, *, free_only: bool = False, found=None, size: int = SHORTLIST):
        """Cubes moving ``cell`` by ``amount`` (signed): ``(move, cells changed, cost)``, or None.
        With ``free_only`` only cubes that change hidden cells alone are used. ``found``: the
        candidates, if already built for this cell."""
        need = abs(amount)
        found = self.candidates(cell, size) if found is None else found
        if found is None:
            return None
        cells, signs, atoms, asigns = found
        valid = cells >= 0
        direction = 1 if amount > 0 else -1
        limiting = (asigns == -direction) & (atoms >= 0)  # atoms that lose people under this move
        used: dict[int, int] = {}
        chosen: list[tuple[int, int]] = []
        total_cost = 0.0
        pending = np.zeros(cells.shape, dtype=bool)  # cells this move already hides
        remaining = need
        while remaining > 0:
            avail = self.atom_counts[np.where(atoms >= 0, atoms, 0)]
            if used:
                keys = np.fromiter(used, dtype=np.int64)
                taken = np.zeros_like(avail)
                for key, value in zip(keys, used.values(), strict=True):
                    taken[atoms == key] = value
                avail = avail - taken
            capacity = np.where(limiting, avail, np.iinfo(np.int64).max).min(axis=1)
            cost = np.where(valid & ~pending & ~self.hidden[np.where(valid, cells, 0)],
                            self.weights[np.where(valid, cells, 0)], 0.0).sum(axis=1)
            usable = capacity > 0
            if free_only:
                usable &= cost == 0
            if not usable.any():
                return None
            order = np.lexsort((np.arange(cost.size), -np.minimum(capacity, remaining), np.where(usable, cost, np.inf)))
            best = int(order[0])
            step = int(min(capacity[best], remaining))
            chosen.append((best, step))
            total_cost += float(cost[best])
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
        move = Move(np.fromiter(coefficient, dtype=np.int64), np.fromiter(coefficient.values(), dtype=np.int64))
        return move, {c for c, v in change.items() if v}, total_cost
