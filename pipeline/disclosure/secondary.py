"""Secondary (complementary) suppression by linear programming, then a clean-up pass.

For each primary cell and each direction, the engine asks the attacker's question backwards
(Fischetti and Salazar's incremental method, as sdcTable's heuristic does): what is the
cheapest change of atom counts ``δ`` that moves this cell by its protection level while every
*published* cell stays the same? Each cell's change is ``Xᵀδ = d⁺ - d⁻``; moving a published
cell costs its weight, a hidden one nothing; atoms stay non-negative. Every cell the solution
moves is hidden. The attacker can then not pin the primary more tightly, because the same move
is open to them (``pipeline.disclosure.audit`` checks it independently).

Weights keep the table useful: hiding a cell costs ``1 + count`` (small inner cells go first,
margins last). One HiGHS model serves every solve (only bounds and costs change, so each solve
starts from the last basis), and HiGHS is deterministic: the same table gives the same pattern.

Clean-up tries to publish each secondary cell again, largest first. A cell can be published if
every primary move that used it has a zero-cost alternative without it (a cell no move uses
needs no solve). Afterwards every secondary cell is needed: publishing any one of them makes
the audit fail.
"""

from __future__ import annotations

import highspy
import numpy as np

from pipeline.disclosure.audit import protection_levels
from pipeline.disclosure.release import PRIMARY, SAFE, SECONDARY, Release

__all__ = ["protect"]

EPS = 1e-6


class _Mover:
    """The protection LP for one table, kept in one HiGHS instance."""

    def __init__(self, release: Release):
        x = release.table.matrix.tocsc().astype(float)
        self.n_atoms, self.n_cells = x.shape
        self.weights = 1.0 + release.values().astype(float)
        inf = highspy.kHighsInf
        n, m = self.n_atoms, self.n_cells
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n + 2 * m, m
        cost = np.where(release.hidden, 0.0, self.weights)
        lp.col_cost_ = np.concatenate([np.zeros(n), cost, cost])
        lp.col_lower_ = np.concatenate([-release.table.atoms["count"].to_numpy().astype(float), np.zeros(2 * m)])
        lp.col_upper_ = np.full(n + 2 * m, inf)
        lp.row_lower_ = np.zeros(m)
        lp.row_upper_ = np.zeros(m)
        # Columns: δ_a appears in every cell containing atom a; d⁺_c with -1 and d⁻_c with +1 in row c.
        cells_of_atom = x.tocsr()
        starts = np.concatenate([cells_of_atom.indptr, cells_of_atom.indptr[-1] + 1 + np.arange(2 * m)])
        index = np.concatenate([cells_of_atom.indices, np.arange(m), np.arange(m)])
        value = np.concatenate([cells_of_atom.data, -np.ones(m), np.ones(m)])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = starts.astype(np.int32)
        lp.a_matrix_.index_ = index.astype(np.int32)
        lp.a_matrix_.value_ = value
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.passModel(lp)

    def set_hidden(self, cell: int, hidden: bool) -> None:
        w = 0.0 if hidden else float(self.weights[cell])
        for col in (self.n_atoms + cell, self.n_atoms + self.n_cells + cell):
            self.highs.changeColCost(col, w)

    def move(self, cell: int, amount: float) -> tuple[float, set[int]]:
        """(cost, cells moved) of the cheapest move of ``cell`` by ``amount``."""
        h, up, down = self.highs, self.n_atoms + cell, self.n_atoms + self.n_cells + cell
        inf = highspy.kHighsInf
        h.changeColBounds(up, max(amount, 0.0), max(amount, 0.0))
        h.changeColBounds(down, max(-amount, 0.0), max(-amount, 0.0))
        try:
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                raise RuntimeError(f"cannot protect cell {cell}: {h.modelStatusToString(h.getModelStatus())}")
            values = np.asarray(h.getSolution().col_value)
            cost = h.getInfo().objective_function_value
        finally:
            h.changeColBounds(up, 0.0, inf)
            h.changeColBounds(down, 0.0, inf)
        d = values[self.n_atoms:self.n_atoms + self.n_cells] + values[self.n_atoms + self.n_cells:]
        return cost, set(np.flatnonzero(d > EPS).tolist())


def protect(release: Release) -> Release:
    """Hide secondary cells so that every primary can move by its protection levels, then clean up."""
    width = release.profile.protection_width
    mover = _Mover(release)
    values = release.values()
    moves: dict[tuple[int, int], set[int]] = {}
    for p in np.flatnonzero(release.status == PRIMARY):
        down, up = protection_levels(int(values[p]), width)
        for amount in (up, -down) if down else (up,):
            _, moved = mover.move(int(p), float(amount))
            moves[(int(p), amount)] = moved
            for c in moved:
                if release.status[c] == SAFE:
                    release.status[c] = SECONDARY
                    mover.set_hidden(c, True)
    _cleanup(release, mover, moves)
    for c in np.flatnonzero(release.status == SECONDARY):
        protects = sorted({_name(release, p) for (p, _), cells in moves.items() if c in cells})
        release.reasons[c] = [f"SECONDARY(protects {', '.join(protects)})"]
    return release


def _cleanup(release: Release, mover: _Mover, moves: dict[tuple[int, int], set[int]]) -> None:
    """One pass, largest first: publish a secondary cell if every move that used it has a free
    alternative. One pass is enough: publishing more cells never frees a move. Cells no move
    uses are published without a solve."""
    values = release.values()
    for cell in sorted(np.flatnonzero(release.status == SECONDARY), key=lambda c: (-values[c], c)):
        cell = int(cell)
        affected = [key for key, cells in moves.items() if cell in cells]
        mover.set_hidden(cell, False)
        replacement = {}
        for key in affected:
            cost, moved = mover.move(*key)
            if cost > EPS:
                mover.set_hidden(cell, True)
                break
            replacement[key] = moved
        else:
            release.status[cell] = SAFE
            moves.update(replacement)
    # A cell kept early may be left unused by moves re-solved later: publish it too.
    used = set().union(*moves.values()) if moves else set()
    for cell in np.flatnonzero(release.status == SECONDARY):
        if int(cell) not in used:
            release.status[cell] = SAFE
            mover.set_hidden(int(cell), False)


def _name(release: Release, cell: int) -> str:
    row = release.table.cells.row(int(cell), named=True)
    return "/".join(str(row[d]) for d in release.table.dim_names)
