"""The audit: an attacker who knows everything a release shows, by linear programming.

Unknowns are the atom counts ``z >= 0``. Every shown cell constrains the sum of its atoms to
the interval the showing implies (an exact value; a rounded value's interval; for a hidden
cell, whatever the symbol tells: "1 to 7" under HES, anything under secondary suppression).
For each hidden cell the attacker minimises and maximises its sum (HiGHS, through highspy); integer
counts make the interval ``[ceil(lo), floor(hi)]``. A hidden cell fails if its interval is
exact, or, for a primary cell, if it cannot move by its protection levels (``protection_levels``:
together the profile's ``protection_width``, half each way where the count allows).

To scale, atoms whose own cell is shown exactly are fixed and substituted, and the remaining
unknowns split into connected components (atoms linked by a shared constraint); each hidden
cell is solved only over the components it touches, whose LPs are small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import highspy
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from pipeline.disclosure.release import SECONDARY, Release

__all__ = ["AuditResult", "CellCertificate", "audit_release", "protection_levels"]

EPS = 1e-7


@dataclass(frozen=True)
class CellCertificate:
    cell: int
    key: dict
    status: str
    reasons: tuple[str, ...]
    value: int | None  # None when only the shown table is known
    lo: float
    hi: float
    required_width: int
    passed: bool

    @property
    def width(self) -> float:
        return self.hi - self.lo


@dataclass
class AuditResult:
    certificates: list[CellCertificate]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.certificates)

    @property
    def failures(self) -> list[CellCertificate]:
        return [c for c in self.certificates if not c.passed]


def protection_levels(value: int, width: int) -> tuple[int, int]:
    """(down, up) a primary cell must be able to move: together ``width``, and as much as half
    of it downwards, since a count cannot go below zero."""
    down = min(value, width // 2)
    return down, max(width - down, 1)


class _Component:
    """One connected component's LP, kept in a HiGHS instance: each hidden cell only changes
    the objective, so every solve after the first starts from the last basis."""

    def __init__(self, atoms, a: sparse.csr_matrix, row_lo, row_hi, col_lo, col_hi):
        self.atoms = atoms
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
        lp.col_cost_ = np.zeros(a.shape[1])
        lp.col_lower_ = np.asarray(col_lo, dtype=float)
        lp.col_upper_ = np.where(np.isinf(col_hi), inf, col_hi).astype(float)
        lp.row_lower_ = np.where(np.isinf(row_lo), -inf, row_lo).astype(float)
        lp.row_upper_ = np.where(np.isinf(row_hi), inf, row_hi).astype(float)
        csc = a.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
        lp.a_matrix_.index_ = csc.indices.astype(np.int32)
        lp.a_matrix_.value_ = csc.data.astype(float)
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("simplex_strategy", 4)  # primal: a cost change keeps the basis primal feasible
        self.highs.passModel(lp)
        self.columns = np.arange(a.shape[1], dtype=np.int32)

    def extremes(self, objective: np.ndarray, key) -> tuple[float, float]:
        """(min, max) of ``objective · z`` over the component."""
        h = self.highs
        h.changeColsCost(self.columns.size, self.columns, objective)
        out = []
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            h.changeObjectiveSense(sense)
            h.run()
            status = h.getModelStatus()
            if status == highspy.HighsModelStatus.kUnbounded:
                out.append(math.inf)
            elif status == highspy.HighsModelStatus.kOptimal:
                out.append(h.getInfo().objective_function_value)
            else:
                raise RuntimeError(f"audit LP failed for cell {key}: {h.modelStatusToString(status)}")
        return out[0], out[1]


def _bounds(release: Release):
    """Per-atom bounds and the constraint system over the atoms that are not fixed."""
    table = release.table
    x = table.matrix.tocsc()
    lo, hi = release.knowledge()
    inner = table.cells["inner"].to_numpy()
    atom_lo, atom_hi = np.zeros(x.shape[0]), np.full(x.shape[0], np.inf)
    # An inner cell is one atom: what is shown about it bounds the atom directly.
    inner_cells = np.flatnonzero(inner)
    atom_of = x[:, inner_cells].tocoo()
    atom_lo[atom_of.row] = np.maximum(atom_lo[atom_of.row], lo[inner_cells[atom_of.col]])
    atom_hi[atom_of.row] = np.minimum(atom_hi[atom_of.row], hi[inner_cells[atom_of.col]])
    return x, lo, hi, atom_lo, atom_hi


def audit_release(release: Release) -> AuditResult:
    """Every hidden cell's deducible interval, and whether it is wide enough."""
    table = release.table
    x, lo, hi, atom_lo, atom_hi = _bounds(release)
    fixed = atom_lo == atom_hi
    free = np.flatnonzero(~fixed)
    fixed_values = np.where(fixed, atom_lo, 0.0)
    # Constraints: every cell whose interval is finite and that has a free atom.
    xf = x[free, :].tocsc()
    offsets = x.T @ fixed_values  # the fixed part of each cell's sum
    has_free = np.diff(xf.indptr) > 0
    constraining = np.flatnonzero(has_free & (np.isfinite(hi) | (lo > 0)))
    a = xf[:, constraining].T.tocsr()  # constraints x free atoms
    c_lo, c_hi = lo[constraining] - offsets[constraining], hi[constraining] - offsets[constraining]
    # Components of free atoms linked through constraints.
    link = (a.T @ a).tocsr() if a.shape[0] else sparse.csr_matrix((free.size, free.size))
    _, comp = connected_components(link, directed=False) if free.size else (0, np.array([], dtype=int))
    row_comp = np.array([comp[a.indices[a.indptr[r]]] if a.indptr[r + 1] > a.indptr[r] else -1
                         for r in range(a.shape[0])], dtype=int)
    values = release.values()
    keys = table.cells.select(table.dim_names).to_dicts()
    width = release.profile.protection_width
    models: dict[int, _Component] = {}
    certificates = []
    for k in np.flatnonzero(release.hidden):
        col = xf[:, k]
        members = col.indices
        k_lo = k_hi = float(offsets[k])
        for component in np.unique(comp[members]) if members.size else []:
            if component not in models:
                atoms = np.flatnonzero(comp == component)
                rows = np.flatnonzero(row_comp == component)
                models[component] = _Component(atoms, a[rows][:, atoms], c_lo[rows], c_hi[rows],
                                               atom_lo[free[atoms]], atom_hi[free[atoms]])
            model = models[component]
            objective = np.asarray(col[model.atoms].todense()).ravel().astype(float)
            low, high = model.extremes(objective, keys[k])
            k_lo += low
            k_hi += high
        lo_k = float(math.ceil(k_lo - EPS))
        hi_k = math.inf if math.isinf(k_hi) else float(math.floor(k_hi + EPS))
        # A primary cell must reach its protection levels both ways (together the profile's
        # width); a hidden cell of a table checked as shown (its count unknown) must be that wide;
        # a secondary cell, there to protect others, must only not be recovered exactly.
        required = 1 if release.status[k] == SECONDARY else max(width, 1)
        if release.status[k] == SECONDARY or release.known is not None:
            passed = hi_k - lo_k >= required
        else:
            down, up = protection_levels(int(values[k]), required)
            passed = lo_k <= values[k] - down and hi_k >= values[k] + up
        certificates.append(CellCertificate(int(k), keys[k], str(release.status[k]), tuple(release.reasons[k]),
                                            None if release.known is not None else int(values[k]), lo_k, hi_k,
                                            required, bool(passed and hi_k > lo_k)))
    return AuditResult(certificates)
