"""The audit: an attacker who knows everything a release shows, by linear programming.

Unknowns are the atom counts ``z >= 0``. Every shown cell constrains the sum of its atoms to
the interval the showing implies (an exact value; a rounded value's interval; for a hidden
cell, whatever the symbol tells: "1 to 7" under HES, anything under secondary suppression).
For each hidden cell the attacker minimises and maximises its sum (HiGHS, through highspy); integer
counts make the interval ``[ceil(lo), floor(hi)]``. A hidden cell fails if its interval is
exact, or, for a primary cell, if it cannot move by its protection levels (``protection_levels``:
together the profile's ``protection_width``, half each way where the count allows; under a
``sliding`` profile, only the interval's width counts).

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

from pipeline.disclosure.highs import run_warm, warm_lp
from pipeline.disclosure.lattice import Lattice
from pipeline.disclosure.release import SECONDARY, Release

__all__ = ["AuditResult", "CellCertificate", "audit_release", "protection_levels", "recoverable_by_subtraction"]

EPS = 1e-7
LP_ATOMS = 4000  # larger components are audited through verified moves (the LP grows faster than linearly)


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
    method: str = "lp"  # "lp": the exact interval; "moves": an interval the attacker cannot narrow (certified)

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

    def by_method(self) -> dict[str, int]:
        """How many hidden cells each method certified (``lp``, ``moves``)."""
        counts: dict[str, int] = {}
        for c in self.certificates:
            counts[c.method] = counts.get(c.method, 0) + 1
        return counts


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
        self.highs = warm_lp()  # primal simplex: a cost change keeps the basis primal feasible
        self.highs.passModel(lp)
        self.columns = np.arange(a.shape[1], dtype=np.int32)

    def extremes(self, objective: np.ndarray, key) -> tuple[float, float]:
        """(min, max) of ``objective · z`` over the component."""
        h = self.highs
        h.changeColsCost(self.columns.size, self.columns, objective)
        out = []
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            h.changeObjectiveSense(sense)
            status = run_warm(h)
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


def verified_reach(release: Release, x, lo, hi, atom_lo, atom_hi, chunk: int = 20000):
    """Per cell, how far the release's recorded moves take it down and up, counting only moves
    that are consistent with everything shown: each is checked here, independently of the engine
    that found it (atoms within their bounds, every cell within what the release tells of it)."""
    n_atoms, n_cells = x.shape
    down, up = np.zeros(n_cells), np.zeros(n_cells)
    moves = list((release.moves or {}).values())
    counts = release.table.atoms["count"].to_numpy().astype(float)
    values = release.values().astype(float)
    xt = x.T.tocsr()
    for start in range(0, len(moves), chunk):
        part = moves[start:start + chunk]
        lengths = [m.atoms.size for m in part]
        cols = np.repeat(np.arange(len(part)), lengths)
        rows = np.concatenate([m.atoms for m in part]) if part else np.array([], dtype=np.int64)
        data = np.concatenate([m.coefficients for m in part]).astype(float) if part else np.array([])
        delta = sparse.csc_matrix((data, (rows, cols)), shape=(n_atoms, len(part)))
        moved_atoms = counts[rows] + data
        bad_atom = (moved_atoms < atom_lo[rows] - EPS) | (moved_atoms > atom_hi[rows] + EPS)
        change = (xt @ delta).tocoo()
        keep = np.abs(change.data) > EPS
        c_row, c_col, c_val = change.row[keep], change.col[keep], change.data[keep]
        moved = values[c_row] + c_val
        bad_cell = (moved < lo[c_row] - EPS) | (moved > hi[c_row] + EPS)
        valid = np.ones(len(part), dtype=bool)
        valid[cols[bad_atom]] = False
        valid[c_col[bad_cell]] = False
        ok = valid[c_col]
        np.minimum.at(down, c_row[ok], c_val[ok])
        np.maximum.at(up, c_row[ok], c_val[ok])
    return down, up


def audit_release(release: Release) -> AuditResult:
    """Every hidden cell's deducible interval, and whether it is wide enough. Components of more
    than ``LP_ATOMS`` free atoms (England-scale tables are one) are audited through the release's
    recorded moves instead, each verified here: a verified move proves the attacker cannot rule
    out the values it reaches, so the interval is at least that wide; a cell the moves do not
    certify is still solved by LP."""
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
    # Atoms and constraints as one bipartite graph: linear in the non-zeros (aᵀa would square
    # every national margin's atoms).
    graph = sparse.bmat([[None, a.T], [a, None]], format="csr") if a.shape[0] else \
        sparse.csr_matrix((free.size, free.size))
    _, labels = connected_components(graph, directed=False) if free.size else (0, np.array([], dtype=int))
    comp = labels[:free.size]
    nonempty = np.diff(a.indptr) > 0
    row_comp = np.full(a.shape[0], -1, dtype=np.int64)
    row_comp[nonempty] = comp[a.indices[a.indptr[:-1][nonempty]]]
    values = release.values()
    hidden = np.flatnonzero(release.targets)
    keys = dict(zip(hidden.tolist(), table.cells[hidden].select(table.dim_names).to_dicts(), strict=True))
    width = release.profile.protection_width
    models: dict[int, _Component] = {}
    certificates = []
    sizes = np.bincount(comp) if free.size else np.array([], dtype=int)
    # Per cell, the largest component among its free atoms.
    largest = np.zeros(x.shape[1], dtype=np.int64)
    if free.size:
        col_of = np.repeat(np.arange(xf.shape[1]), np.diff(xf.indptr))
        np.maximum.at(largest, col_of, sizes[comp[xf.indices]])
    by_moves = set()
    if release.moves and (release.known is None or release.joint) and (largest[hidden] > LP_ATOMS).any():
        reach = verified_reach(release, x, lo, hi, atom_lo, atom_hi)
        for k in hidden[largest[hidden] > LP_ATOMS].tolist():
            certificate = _certified(release, k, keys[k], values, reach, width)
            if certificate.passed:
                certificates.append(certificate)
                by_moves.add(k)
    for k in hidden.tolist():
        if k in by_moves:
            continue
        col = xf[:, k]
        members = col.indices
        touched = np.unique(comp[members]) if members.size else np.array([], dtype=int)
        k_lo = k_hi = float(offsets[k])
        for component in touched:
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
        value = None if release.known is not None and not release.joint else int(values[k])
        certificates.append(CellCertificate(int(k), keys[k], str(release.status[k]), tuple(release.reasons[k]),
                                            value, lo_k, hi_k, _required(release, k, width),
                                            _passes(release, k, value or 0, lo_k, hi_k, width)))
    return AuditResult(sorted(certificates, key=lambda c: c.cell))


def moves_protect(release: Release) -> bool:
    """True if the release's recorded moves, each verified as in ``verified_reach``, alone give
    every hidden cell its protection: a quick proof, linear in the moves, that the audit passes.
    False says only that the moves do not prove it (the LP audit may still pass)."""
    if not release.moves:
        return False
    x, lo, hi, atom_lo, atom_hi = _bounds(release)
    down, up = verified_reach(release, x, lo, hi, atom_lo, atom_hi)
    values = release.values()
    width = release.profile.protection_width
    return all(_passes(release, k, int(values[k]), values[k] + down[k], values[k] + up[k], width)
               for k in np.flatnonzero(release.targets).tolist())


def _required(release: Release, k: int, width: int) -> int:
    if release.levels is not None and release.status[k] != SECONDARY:
        return int(release.levels[0][k] + release.levels[1][k])
    return 1 if release.status[k] == SECONDARY else max(width, 1)


def _passes(release: Release, k: int, value: int, lo_k: float, hi_k: float, width: int) -> bool:
    """A primary cell must reach its protection levels both ways (together the profile's width);
    a hidden cell of a table checked as shown (its count unknown) must be that wide; a secondary
    cell, there to protect others, must only not be recovered exactly."""
    required = _required(release, k, width)
    sliding = release.profile.sliding and release.levels is None
    if release.status[k] == SECONDARY or (release.known is not None and not release.joint) or sliding:
        passed = hi_k - lo_k >= required
    else:
        if release.levels is not None:
            down, up = int(release.levels[0][k]), int(release.levels[1][k])
        else:
            down, up = protection_levels(value, required)
        passed = lo_k <= value - down and hi_k >= value + up
    return bool(passed and hi_k > lo_k)


def _certified(release: Release, k: int, key: dict, values, reach, width: int) -> CellCertificate:
    down, up = reach
    value = int(values[k])
    lo_k, hi_k = float(math.ceil(value + down[k] - EPS)), float(math.floor(value + up[k] + EPS))
    return CellCertificate(int(k), key, str(release.status[k]), tuple(release.reasons[k]), value, lo_k, hi_k,
                           _required(release, k, width), _passes(release, k, value, lo_k, hi_k, width), "moves")


def recoverable_by_subtraction(release: Release) -> np.ndarray:
    """Hidden cells anyone can recover with one subtraction: the only hidden child, along some
    dimension, of a published cell (a margin minus its other, published, parts). The attack a
    reader with a spreadsheet makes; the LP audit finds these and everything subtler."""
    lat = Lattice(release.table)
    hidden = release.hidden
    targets = release.targets
    codes = lat.cell_nodes @ lat.strides
    out = np.zeros(hidden.size, dtype=bool)
    for d in range(lat.k):
        nodes = lat.cell_nodes[:, d]
        child = np.flatnonzero(nodes != 0)
        parent = lat.cell_of[codes[child] + (lat.parent[d][nodes[child]] - nodes[child]) * lat.strides[d]]
        hidden_children = np.bincount(parent, weights=hidden[child], minlength=hidden.size)
        alone = targets[child] & ~hidden[parent] & (hidden_children[parent] == 1)
        out[child[alone]] = True
    return out
