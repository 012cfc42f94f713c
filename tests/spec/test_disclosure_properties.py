"""Properties of secondary suppression on random hierarchical tables (Hypothesis): afterwards
the audit always passes, and publishing any one secondary cell again makes it fail."""

import numpy as np
import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.disclosure import (
    PROFILES,
    SAFE,
    SECONDARY,
    Dimension,
    apply_primary,
    audit_release,
    build_table,
)
from pipeline.disclosure.secondary import protect


@st.composite
def tables(draw):
    n_rows = draw(st.integers(2, 4))
    n_cols = draw(st.integers(2, 4))
    grouped = draw(st.booleans())
    rows = [f"r{i}" for i in range(n_rows)]
    if grouped and n_rows >= 3:
        row_dim = Dimension.grouped("row", {"g1": rows[:2], "g2": rows[2:]})
    else:
        row_dim = Dimension.flat("row", rows)
    col_dim = Dimension.flat("col", [f"c{j}" for j in range(n_cols)])
    small = st.integers(0, 9)
    counts = [draw(st.one_of(small, st.integers(10, 60))) for _ in range(n_rows * n_cols)]
    frame = pl.DataFrame([(r, c, counts[i * n_cols + j]) for i, r in enumerate(rows)
                          for j, c in enumerate(col_dim.leaves)], schema=["row", "col", "count"], orient="row")
    return build_table(frame, [row_dim, col_dim])


def _zeros_under_acro():
    """Found by this test: the cube engine left r0/c1 (8) short through the hidden zero r1/c1;
    the cube pattern is now held to the audit and re-protected by the LP engine when it fails."""
    rows = ["r0", "r1", "r2", "r3"]
    counts = {("r0", "c0"): 10, ("r0", "c1"): 8, ("r1", "c0"): 0, ("r1", "c1"): 0, ("r2", "c0"): 10,
              ("r2", "c1"): 0, ("r3", "c0"): 0, ("r3", "c1"): 2}
    frame = pl.DataFrame([(r, c, v) for (r, c), v in counts.items()], schema=["row", "col", "count"], orient="row")
    return build_table(frame, [Dimension.grouped("row", {"g1": rows[:2], "g2": rows[2:]}),
                               Dimension.flat("col", ["c0", "c1"])])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from(["safehaven", "acro"]), st.sampled_from(("cube", "lp")))  # joint: its own test
@example(_zeros_under_acro(), "acro", "cube")
def test_after_secondary_suppression_the_audit_passes_and_every_secondary_is_needed(table, profile_name, method):
    release = protect(apply_primary(table, PROFILES[profile_name]), method)
    assert audit_release(release).passed
    for cell in np.flatnonzero(release.status == SECONDARY):
        release.status[cell] = SAFE
        assert not audit_release(release).passed, release.table.cells.row(int(cell), named=True)
        release.status[cell] = SECONDARY
