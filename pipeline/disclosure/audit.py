"""The audit: an attacker who knows everything a release shows, by linear programming.

Unknowns are the atom counts ``z >= 0``. Every shown cell constrains the sum of its atoms to
the interval the showing implies (an exact value; a rounded value's interval; for a hidden
cell, whatever the symbol tells: "1 to 7" under HES, anything under secondary suppression).
For each hidden cell the attacker minimises and maximises its sum (scipy's HiGHS); integer
counts make the interval ``[ceil(lo), floor(hi)]``. A hidden cell fails if its interval is
exact or narrower than the profile's ``protection_width``.

To scale, atoms whose own cell is shown exactly are fixed and substituted, and the remaining
unknowns split into connected components (atoms linked by a shared constraint); each hidden
cell is solved only over the components it touches, whose LPs are small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from pipeline.disclosure.release import Release

__all__ = ["AuditResult", "CellCertificate", "audit_release"]

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
    certificates = []
    for k in np.flatnonzero(release.hidden):
        col = xf[:, k]
        members = col.indices
        k_lo = k_hi = float(offsets[k])
        for component in np.unique(comp[members]) if members.size else []:
            atoms = np.flatnonzero(comp == component)
            rows = np.flatnonzero(row_comp == component)
            sub = a[rows][:, atoms]
            objective = np.asarray(col[atoms].todense()).ravel().astype(float)
            bounds = list(zip(atom_lo[free[atoms]], [None if math.isinf(h) else h for h in atom_hi[free[atoms]]],
                              strict=True))
            a_ub = sparse.vstack([sub, -sub]).tocsr()
            b_ub = np.concatenate([c_hi[rows], -c_lo[rows]])
            keep = np.isfinite(b_ub)
            for sign in (1.0, -1.0):
                res = linprog(sign * objective, A_ub=a_ub[keep] if keep.any() else None,
                              b_ub=b_ub[keep] if keep.any() else None, bounds=bounds, method="highs")
                if res.status == 3:  # unbounded above
                    k_hi = math.inf
                    continue
                if res.status != 0:
                    raise RuntimeError(f"audit LP failed for cell {keys[k]}: {res.message}")
                if sign > 0:
                    k_lo += res.fun
                else:
                    k_hi += -res.fun
        lo_k = float(math.ceil(k_lo - EPS))
        hi_k = math.inf if math.isinf(k_hi) else float(math.floor(k_hi + EPS))
        passed = hi_k - lo_k >= max(width, EPS) if width else hi_k > lo_k
        certificates.append(CellCertificate(int(k), keys[k], str(release.status[k]), tuple(release.reasons[k]),
                                            None if release.known is not None else int(values[k]), lo_k, hi_k,
                                            width, bool(passed and hi_k > lo_k)))
    return AuditResult(certificates)
