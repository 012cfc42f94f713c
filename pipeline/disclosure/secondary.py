"""Secondary (complementary) suppression by linear programming, then a clean-up pass.

For each hidden cell the audit still fails, and each direction, the engine asks the attacker's
question backwards (Fischetti and Salazar's incremental method, as sdcTable's heuristic does):
what is the cheapest change of atom counts ``δ`` that moves this cell by its protection level
while every *published* cell stays the same? Each cell's change is ``Xᵀδ = d⁺ - d⁻``; moving a
published cell costs its weight, a hidden one nothing; atoms stay non-negative. Every cell the
solution moves is hidden. Once that holds for each protected cell and direction, the attacker
cannot pin it more tightly, because the same move is open to them.

Weights keep the table useful: hiding a cell costs ``1 + count`` (small inner cells go first,
margins last). HiGHS is deterministic, so the same table gives the same pattern.

The clean-up pass tries to publish each secondary cell again, largest first, and keeps it
published if the audit still passes. After it, every secondary cell is needed: publishing any
one of them makes the audit fail (hiding is monotone: fewer hidden cells never widen an
interval).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from pipeline.disclosure.audit import audit_release
from pipeline.disclosure.release import SAFE, SECONDARY, Release

__all__ = ["cleanup", "protect", "protection_levels"]

EPS = 1e-6


def protection_levels(value: int, width: int) -> tuple[int, int]:
    """(down, up) moves that together give an interval of at least ``width``; a count cannot go
    below zero, so what it cannot give downwards it must give upwards."""
    down = min(value, width // 2)
    return down, max(width - down, 1)


def _moves(release: Release, cell: int, amount: float) -> np.ndarray:
    """Cells the cheapest move of ``cell`` by ``amount`` (published cells fixed) must change."""
    table = release.table
    x = table.matrix.tocsc().astype(float)
    n_atoms, n_cells = x.shape
    values = release.values().astype(float)
    weights = np.where(release.hidden, 0.0, 1.0 + values)
    # variables: δ (atoms), d⁺ (cells), d⁻ (cells)
    cost = np.concatenate([np.zeros(n_atoms), weights, weights])
    eye = sparse.identity(n_cells, format="csr")
    a_eq = sparse.hstack([x.T, -eye, eye]).tocsr()
    b_eq = np.zeros(n_cells)
    target = sparse.csr_matrix(([1.0, -1.0], ([0, 0], [n_atoms + cell, n_atoms + n_cells + cell])),
                               shape=(1, n_atoms + 2 * n_cells))
    a_eq = sparse.vstack([a_eq, target]).tocsr()
    b_eq = np.append(b_eq, amount)
    atoms = table.atoms["count"].to_numpy().astype(float)
    bounds = [(-a, None) for a in atoms] + [(0, None)] * (2 * n_cells)
    res = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"cannot protect cell {cell}: {res.message}")
    d = res.x[n_atoms:n_atoms + n_cells] + res.x[n_atoms + n_cells:]
    return np.flatnonzero(d > EPS)


def protect(release: Release) -> Release:
    """Hide secondary cells until the audit passes, then clean up."""
    width = release.profile.protection_width
    for _ in range(len(release.status)):  # each round hides at least one more cell
        result = audit_release(release)
        if result.passed:
            break
        for cert in result.failures:
            down, up = protection_levels(cert.value, width)
            for amount in (up, -down) if down else (up,):
                if amount > 0 and cert.hi >= cert.value + amount or amount < 0 and cert.lo <= cert.value + amount:
                    continue
                for c in _moves(release, cert.cell, float(amount)):
                    if release.status[c] == SAFE:
                        release.status[c] = SECONDARY
                        release.reasons[c] = [f"SECONDARY(protects {_name(release, cert.cell)})"]
                    elif release.status[c] == SECONDARY and f"SECONDARY(protects {_name(release, cert.cell)})" \
                            not in release.reasons[c]:
                        release.reasons[c].append(f"SECONDARY(protects {_name(release, cert.cell)})")
    else:  # pragma: no cover - every round hides a cell, so this cannot run out
        raise RuntimeError("secondary suppression did not converge")
    return cleanup(release)


def cleanup(release: Release) -> Release:
    """Publish again every secondary cell the audit can do without, largest first."""
    values = release.values()
    order = sorted(np.flatnonzero(release.status == SECONDARY), key=lambda c: (-values[c], c))
    for cell in order:
        release.status[cell] = SAFE
        if audit_release(release).passed:
            release.reasons[cell] = []
        else:
            release.status[cell] = SECONDARY
    return release


def _name(release: Release, cell: int) -> str:
    row = release.table.cells.row(cell, named=True)
    return "/".join(str(row[d]) for d in release.table.dim_names)

