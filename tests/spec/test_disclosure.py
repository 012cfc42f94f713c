"""Disclosure control, small tables in, statuses and audit intervals out: every primary rule and
profile, zeros, single-person cells, and hidden cells an attacker can recover exactly."""

import numpy as np
import polars as pl
import pytest

from pipeline.disclosure import (
    PRIMARY,
    PROFILES,
    SAFE,
    SECONDARY,
    Dimension,
    apply_primary,
    audit_release,
    build_table,
    count_people,
)
from pipeline.disclosure.rules import (
    dominance,
    frequency,
    midpoint6,
    p_percent,
    round_half_up,
    rounding_interval,
)

ROWS, COLS = ["A", "B", "C"], ["x", "y", "z"]


def _table(grid, rows=ROWS, cols=COLS):
    dims = [Dimension.flat("row", rows), Dimension.flat("col", cols)]
    counts = pl.DataFrame([(r, c, grid[i][j]) for i, r in enumerate(rows) for j, c in enumerate(cols)],
                          schema=["row", "col", "count"], orient="row")
    return build_table(counts, dims)


def _hide(release, *cells, status=SECONDARY):
    for row, col in cells:
        release.status[release.table.cell_index(row=row, col=col)] = status
    return release


def _intervals(result):
    return {(c.key["row"], c.key["col"]): (c.lo, c.hi) for c in result.certificates}


# Rules ---------------------------------------------------------------------------------------
def test_frequency_threshold_edges_and_zeros():
    counts = np.array([0, 1, 7, 8])
    assert frequency(counts, 7).tolist() == [False, True, True, False]
    assert frequency(counts, 7, protect_zeros=True).tolist() == [True, True, True, False]


def test_rounding_half_up_and_what_a_rounded_number_tells():
    assert round_half_up(np.array([0, 2, 3, 7, 8, 12, 13]), 5).tolist() == [0, 0, 5, 5, 10, 10, 15]
    assert round_half_up(np.array([4, 5, 14, 15]), 10).tolist() == [0, 10, 10, 20]
    lo, hi = rounding_interval(np.array([0, 5, 10]), 5)
    assert lo.tolist() == [0, 3, 8] and hi.tolist() == [2, 7, 12]
    # Every integer in the interval rounds back to the published value.
    for a, low, high in zip([5, 10], lo[1:], hi[1:], strict=True):
        assert set(round_half_up(np.arange(low, high + 1), 5)) == {a}
        assert round_half_up(np.array([low - 1, high + 1]), 5).tolist() != [a, a]


def test_midpoint6():
    assert midpoint6(np.array([0, 1, 6, 7, 12, 13])).tolist() == [0, 3, 3, 9, 9, 15]


def test_dominance_and_p_percent():
    # (2, 90): two contributors with 95 of 100 dominate; 85 of 100 do not.
    assert dominance(np.array([95, 85]), np.array([100, 100]), 90).tolist() == [True, False]
    # p 10%: the rest (X - x1 - x2) must exceed 10% of the largest.
    assert p_percent(np.array([80, 50]), np.array([15, 20]), np.array([100, 100]), 10).tolist() == [True, False]


# Profiles ------------------------------------------------------------------------------------
def test_hes_2018_stars_one_to_seven_rounds_the_rest_keeps_zero():
    release = apply_primary(_table([[0, 1, 7], [8, 12, 13], [2, 100, 3]]), PROFILES["nhs-hes-2018"])
    shown = dict(zip(map(tuple, release.table.cells.select("row", "col").rows()), release.shown(), strict=True))
    assert [shown[("A", c)] for c in COLS] == ["0", "*", "*"]
    assert [shown[("B", c)] for c in COLS] == ["10", "10", "15"]
    assert shown[("C", "x")] == "*" and shown[("Total", "Total")] == "145"
    lo, hi = release.knowledge()
    i = release.table.cell_index(row="A", col="y")
    assert (lo[i], hi[i]) == (1, 7)  # "*" itself says 1 to 7: no secondary suppression
    j = release.table.cell_index(row="B", col="x")
    assert (lo[j], hi[j]) == (8, 12)
    z = release.table.cell_index(row="A", col="x")
    assert (lo[z], hi[z]) == (0, 0)


def test_opensafely_redacts_zero_too_and_acro_uses_ten():
    table = _table([[0, 1, 7], [8, 9, 10], [20, 30, 40]])
    open_safely = apply_primary(table, PROFILES["opensafely"])
    acro = apply_primary(table, PROFILES["acro"])
    status = lambda r, row, col: r.status[table.cell_index(row=row, col=col)]
    assert [status(open_safely, "A", c) for c in COLS] == [PRIMARY, PRIMARY, PRIMARY]
    assert status(open_safely, "B", "x") == SAFE
    assert [status(acro, "B", c) for c in COLS] == [PRIMARY, PRIMARY, SAFE]
    assert status(acro, "A", "x") == PRIMARY  # zeros are disclosive under ACRO's defaults
    lo, hi = open_safely.knowledge()
    i = table.cell_index(row="A", col="x")
    assert (lo[i], hi[i]) == (0, 7)


def test_a_single_person_cell_is_primary_under_every_profile():
    table = _table([[1, 50, 50], [50, 50, 50], [50, 50, 50]])
    for profile in PROFILES.values():
        assert apply_primary(table, profile).status[table.cell_index(row="A", col="x")] == PRIMARY, profile.name


# The audit -----------------------------------------------------------------------------------
def test_ukhsa_table_1d_is_fully_recovered():
    """UKHSA's worked example: A/Over 30 = 129 - 111 - 17 = 1, then the whole 0-30 column."""
    table = _table([[10, 1], [13, 111], [15, 17]], cols=["0-30", "Over 30"])
    release = _hide(apply_primary(table, PROFILES["safehaven"]), ("A", "0-30"), ("B", "0-30"), ("C", "0-30"))
    result = audit_release(release)
    assert not result.passed
    assert _intervals(result) == {("A", "0-30"): (10, 10), ("A", "Over 30"): (1, 1), ("B", "0-30"): (13, 13),
                                  ("C", "0-30"): (15, 15)}
    assert {c.status for c in result.certificates} == {PRIMARY, SECONDARY}


def test_one_hidden_cell_is_its_margin_minus_the_published_cells():
    release = apply_primary(_table([[3, 20, 30], [40, 50, 60], [70, 80, 90]]), PROFILES["safehaven"])
    result = audit_release(release)
    assert _intervals(result) == {("A", "x"): (3, 3)} and not result.passed
    assert result.failures[0].reasons == ("PRIMARY_FREQ(n=3 <= 7)",)


def test_a_rectangle_of_hidden_cells_protects_the_primary():
    release = _hide(apply_primary(_table([[3, 20, 30], [40, 50, 60], [70, 80, 90]]), PROFILES["safehaven"]),
                    ("A", "y"), ("B", "x"), ("B", "y"))
    result = audit_release(release)
    # Moving t people round the rectangle keeps every margin: A/x can be 0 .. 3 + min(20, 40).
    assert _intervals(result)[("A", "x")] == (0, 23)
    assert result.passed


def test_a_rectangle_too_thin_for_the_protection_width_fails():
    release = _hide(apply_primary(_table([[3, 2, 30], [4, 50, 60], [70, 80, 90]]), PROFILES["safehaven"]),
                    ("A", "y"), ("B", "x"), ("B", "y"))
    result = audit_release(release)
    interval = _intervals(result)[("A", "x")]
    assert interval == (0, 5)  # not exact, but narrower than the 8 the profile requires
    assert not result.passed and any(c.key == {"row": "A", "col": "x"} for c in result.failures)


def test_protected_zeros_pinned_by_the_margins_fail():
    """A zero row is hidden (zeros protected), but the column totals minus the other rows pin it."""
    profile = PROFILES["acro"]
    release = apply_primary(_table([[0, 0, 0], [40, 50, 60], [70, 80, 90]]), profile)
    result = audit_release(release)
    assert not result.passed
    assert all((c.lo, c.hi) == (0, 0) for c in result.certificates if c.key["row"] == "A")


def test_hes_star_semantics_are_part_of_the_attack():
    """Under HES a row shown as '*', '*', '0' with total '10' leaves each star in 3..7: the
    symbol's own range (1..7) and the rounded total (8..12) narrow it."""
    release = apply_primary(_table([[4, 6, 0], [40, 50, 60], [70, 80, 90]]), PROFILES["nhs-hes-2018"])
    result = audit_release(release)
    intervals = _intervals(result)
    assert intervals[("A", "x")] == (1, 7) and intervals[("A", "y")] == (1, 7)
    assert result.passed  # not exact; HES asks for nothing more


def test_people_are_counted_once_not_per_row():
    frame = pl.DataFrame({"person_id": ["p1", "p1", "p2", "p3"], "row": ["A", "A", "A", "B"],
                          "col": ["x", "x", "y", "x"]})
    dims = [Dimension.flat("row", ["A", "B"]), Dimension.flat("col", ["x", "y"])]
    counts = count_people(frame, dims)
    table = build_table(counts, dims)
    assert table.cells["count"][table.cell_index(row="A", col="x")] == 1
    assert table.cells["count"][table.cell_index()] == 3
    with pytest.raises(ValueError, match="more than one cell"):
        count_people(frame.vstack(pl.DataFrame({"person_id": ["p1"], "row": ["B"], "col": ["y"]})), dims)


def test_hierarchies_give_margins_at_every_level():
    dims = [Dimension.grouped("ward", {"North": ["w1", "w2"], "South": ["w3"]}), Dimension.flat("sex", ["1", "2"])]
    counts = pl.DataFrame({"ward": ["w1", "w2", "w3", "w1"], "sex": ["1", "1", "2", "2"], "count": [5, 6, 7, 8]})
    table = build_table(counts, dims)
    assert table.cells.height == (3 + 2 + 1) * 3  # wards, localities, total x two sexes and total
    assert table.cells["count"][table.cell_index(ward="North", sex="1")] == 11
    assert table.cells["count"][table.cell_index(ward="North")] == 19
    assert table.cells["count"][table.cell_index()] == 26
    with pytest.raises(ValueError, match="not leaves"):
        build_table(counts.with_columns(ward=pl.lit("North")).unique(["ward", "sex"]), dims)


def test_acros_delete_and_recompute_leaks_next_to_ours():
    """ACRO 'suppresses' by deleting the records behind unsafe cells and recomputing totals, so its
    totals are totals of what is shown. Anyone with the true totals from another output (a
    population count by row, last month's table) subtracts and recovers the hidden cell. Ours
    keeps the true margins and hides complementary cells, and the audit proves it holds even
    with every true margin public."""
    from pipeline.disclosure.secondary import protect

    grid = [[3, 20, 30], [40, 50, 60], [70, 80, 90]]
    table = _table(grid)
    unsafe = [[v < 10 for v in row] for row in grid]
    acro_shown = [[None if u else v for v, u in zip(row, us, strict=True)] for row, us in zip(grid, unsafe, strict=True)]
    acro_row_totals = [sum(v for v in row if v is not None) for row in acro_shown]
    true_row_totals = [sum(row) for row in grid]
    assert acro_row_totals[0] != true_row_totals[0]  # ACRO's total silently changes
    recovered = true_row_totals[0] - acro_row_totals[0]  # the true total from any other output
    assert recovered == grid[0][0] == 3  # the single-person-scale cell, recovered exactly
    # The same leak, found by our audit: hide only the unsafe cell and let the true margins be known.
    leaky = apply_primary(table, PROFILES["acro"])
    assert not audit_release(leaky).passed
    # Ours: complementary cells hidden, true margins published, audit passes.
    ours = protect(apply_primary(table, PROFILES["acro"]))
    result = audit_release(ours)
    assert result.passed and (ours.status == SECONDARY).sum() >= 3
    a_x = next(c for c in result.certificates if c.key == {"row": "A", "col": "x"})
    assert a_x.hi - a_x.lo >= PROFILES["acro"].protection_width


# Engines, recorded moves and the moves audit -----------------------------------------------------
def _ward_table(n_wards=6, per_authority=3, seed=3):
    from benchmarks.disclosure_tables import ward_table

    return ward_table(n_wards, people=400, per_authority=per_authority, per_region=None, seed=seed)


@pytest.mark.parametrize("method", ["cube", "lp"])
def test_every_recorded_move_keeps_the_published_cells_and_reaches_the_protection(method):
    from pipeline.disclosure.audit import protection_levels
    from pipeline.disclosure.secondary import protect

    table = _ward_table(4, per_authority=2) if method == "cube" else _ward_table(2, per_authority=None)
    release = protect(apply_primary(table, PROFILES["safehaven"]), method)
    x = table.matrix.tocsc().astype(float)
    atoms = table.atoms["count"].to_numpy()
    values = release.values()
    for (cell, amount), move in release.moves.items():
        delta = np.zeros(x.shape[0])
        delta[move.atoms] = move.coefficients
        change = x.T @ delta
        assert np.allclose(change[~release.hidden], 0), "a move changes a published cell"
        assert (atoms + delta >= -1e-9).all(), "a move takes a count below zero"
        assert change[cell] == pytest.approx(amount)
        down, up = protection_levels(int(values[cell]), PROFILES["safehaven"].protection_width)
        assert amount in (up, -down)


def test_suppression_is_deterministic():
    from pipeline.disclosure.secondary import protect

    table = _ward_table()
    first = protect(apply_primary(table, PROFILES["safehaven"])).status
    second = protect(apply_primary(table, PROFILES["safehaven"])).status
    assert (first == second).all()


def test_the_moves_audit_agrees_with_the_lp_and_never_claims_more(monkeypatch):
    """Above LP_ATOMS the audit certifies cells by the recorded moves. On a table small enough for
    both, every cell passes both ways and each moves interval lies inside the exact LP one."""
    from pipeline.disclosure import audit as audit_module
    from pipeline.disclosure.secondary import protect

    release = protect(apply_primary(_ward_table(), PROFILES["safehaven"]))
    exact = audit_release(release)
    monkeypatch.setattr(audit_module, "LP_ATOMS", 0)
    by_moves = audit_release(release)
    assert exact.passed and by_moves.passed
    assert {c.method for c in exact.certificates} == {"lp"} and {c.method for c in by_moves.certificates} == {"moves"}
    for lp, mv in zip(exact.certificates, by_moves.certificates, strict=True):
        assert lp.cell == mv.cell and lp.lo <= mv.lo and mv.hi <= lp.hi


def test_the_moves_audit_checks_each_move_itself(monkeypatch):
    """A move that would change a published cell proves nothing: the audit checks every move
    against the table, not the engine's word, and falls back to the LP for what is left."""
    from pipeline.disclosure import audit as audit_module
    from pipeline.disclosure.cube import Move
    from pipeline.disclosure.secondary import protect

    release = protect(apply_primary(_ward_table(), PROFILES["safehaven"]))
    monkeypatch.setattr(audit_module, "LP_ATOMS", 0)
    x = release.table.matrix.tocsc()
    published_atom = int(np.flatnonzero(np.asarray(x[:, np.flatnonzero(~release.hidden & release.table.cells["inner"]
                                                                          .to_numpy())].sum(axis=1)).ravel())[0])
    forged = {key: Move(np.append(m.atoms, published_atom), np.append(m.coefficients, 1))
              for key, m in release.moves.items()}
    release.moves = forged
    result = audit_release(release)
    assert {c.method for c in result.certificates} == {"lp"}  # no forged move certified anything
    assert result.passed  # the LP, which needs no moves, still proves the release


def test_one_subtraction_finds_the_spreadsheet_attack():
    from pipeline.disclosure.audit import recoverable_by_subtraction

    release = apply_primary(_table([[3, 20, 30], [40, 50, 60], [70, 80, 90]]), PROFILES["safehaven"])
    found = recoverable_by_subtraction(release)
    assert found.sum() == 1 and found[release.table.cell_index(row="A", col="x")]
    rectangle = _hide(release, ("A", "y"), ("B", "x"), ("B", "y"))
    assert not recoverable_by_subtraction(rectangle).any()


def test_the_pattern_is_the_same_with_one_process_or_two():
    """Large tables are protected per region in forked workers; every region starts from the same
    pattern, so the number of processes (the machine) cannot change what is published."""
    from benchmarks.disclosure_tables import ward_table
    from pipeline.disclosure.audit import recoverable_by_subtraction
    from pipeline.disclosure.secondary import protect

    table = ward_table(8, people=600, per_authority=2, per_region=2, seed=5)  # two regions, four authorities
    one = protect(apply_primary(table, PROFILES["safehaven"]), workers=1)
    two = protect(apply_primary(table, PROFILES["safehaven"]), workers=2)
    assert (one.status == two.status).all()
    assert one.moves.keys() == two.moves.keys()
    assert audit_release(two).passed and not recoverable_by_subtraction(two).any()


# Across releases -----------------------------------------------------------------------------
GRID = [[3, 20, 30], [40, 50, 60], [70, 80, 90]]


def _people(grid=GRID, rows=ROWS, cols=COLS):
    """One row per person, so releases can be counted from the people themselves."""
    return pl.DataFrame([(f"p{r}{c}{i}", row, col) for r, row in enumerate(rows) for c, col in enumerate(cols)
                         for i in range(grid[r][c])], schema=["person_id", "row", "col"], orient="row")


def test_differencing_between_two_releases_is_caught_and_then_protected(tmp_path):
    """Each release hides a rectangle round A/x and passes alone. Together, what one shows
    (A/y, A/z) gives away A/x = A/Total - A/y - A/z. The ledger's joint audit catches it; then
    the new release is protected around what the first already published."""
    from pipeline.disclosure.ledger import ReleaseLedger, apply_joint

    ledger = ReleaseLedger(tmp_path / "disclosure")
    first = _hide(apply_primary(_table(GRID), PROFILES["safehaven"]), ("A", "y"), ("B", "x"), ("B", "y"))
    assert audit_release(first).passed
    ledger.record(first, name="by row and column, April", population="mart-7")
    second = _hide(apply_primary(_table(GRID), PROFILES["safehaven"]), ("A", "z"), ("C", "x"), ("C", "z"))
    assert audit_release(second).passed  # alone, it is fine

    joint = ledger.joint(second, _people(), population="mart-7")
    result = audit_release(joint)
    assert not result.passed
    assert {"row": "A", "col": "x"} in [c.key for c in result.failures]

    fresh = ledger.joint(apply_primary(_table(GRID), PROFILES["safehaven"]), _people(), population="mart-7")
    from pipeline.disclosure.secondary import protect

    protected = protect(fresh)
    assert audit_release(protected).passed
    mine = apply_joint(protected, apply_primary(_table(GRID), PROFILES["safehaven"]))
    shown_before = {k for k, s in zip(first.table.cells.select("row", "col").rows(), first.status, strict=True)
                    if s == SAFE}
    hidden_now = {k for k, s in zip(mine.table.cells.select("row", "col").rows(), mine.status, strict=True)
                  if s != SAFE}
    assert not shown_before & hidden_now  # what is out stays out: protection works round it
    assert ("A", "x") in hidden_now


def test_releases_of_another_population_are_not_joined_and_a_changed_file_is_refused(tmp_path):
    from pipeline.disclosure.ledger import ReleaseLedger
    from pipeline.errors import AuditTampered

    ledger = ReleaseLedger(tmp_path / "disclosure")
    first = _hide(apply_primary(_table(GRID), PROFILES["safehaven"]), ("A", "y"), ("B", "x"), ("B", "y"))
    entry = ledger.record(first, name="April", population="mart-7")
    second = _hide(apply_primary(_table(GRID), PROFILES["safehaven"]), ("A", "z"), ("C", "x"), ("C", "z"))
    assert audit_release(ledger.joint(second, _people(), population="mart-8")).passed
    assert [e.name for e in ledger.entries("mart-7")] == ["April"]
    path = tmp_path / "disclosure" / "releases" / entry.file
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(AuditTampered, match="April"):
        ledger.entries()


# Magnitude tables ----------------------------------------------------------------------------
def _costs():
    """Social care cost per person by ward and tier: in North/high one person has almost all of it."""
    rows = []
    for w, ward in enumerate(["North", "South", "East"]):
        for t, tier in enumerate(["high", "low"]):
            for i in range(12 if tier == "low" else 10):
                rows.append((f"p{w}{t}{i}", ward, tier, 1000 + 37 * i + 101 * w))
    rows.append(("whale", "North", "high", 250_000))
    rows.append(("lone", "East", "low", 0))
    return pl.DataFrame(rows, schema=["person_id", "ward", "tier", "cost"], orient="row")


def test_magnitude_rules_flag_dominance_and_p_percent_with_their_protection_levels():
    from pipeline.disclosure.release import apply_magnitude_primary
    from pipeline.disclosure.table import build_magnitude_table

    dims = [Dimension.flat("ward", ["North", "South", "East"]), Dimension.flat("tier", ["high", "low"])]
    table = build_magnitude_table(_costs(), dims, "cost")
    north_high = table.cell_index(ward="North", tier="high")
    cells = table.cells.row(north_high, named=True)
    assert cells["contributors"] == 11 and cells["top1"] == 250_000 and cells["top2"] == 1333
    release = apply_magnitude_primary(table, PROFILES["acro"])
    assert release.status[north_high] == PRIMARY
    assert set(release.reasons[north_high]) == {"PRIMARY_DOMINANCE(2 largest > 90%)", "PRIMARY_P(p=10%)"}
    total, x1, x2 = cells["count"], cells["top1"], cells["top2"]
    p_level = 0.10 * x1 - (total - x1 - x2)
    dom_level = 100 * (x1 + x2) / 90 - total
    assert release.levels[1][north_high] == int(np.ceil(max(p_level, dom_level)))
    # The margins the whale dominates are primary too; an undominated cell is safe.
    assert release.status[table.cell_index(ward="North")] == PRIMARY
    assert release.status[table.cell_index(ward="South", tier="low")] == SAFE


def test_a_protected_magnitude_table_passes_its_audit_and_the_whale_cannot_be_estimated():
    from pipeline.disclosure.release import apply_magnitude_primary
    from pipeline.disclosure.secondary import protect
    from pipeline.disclosure.table import build_magnitude_table

    dims = [Dimension.flat("ward", ["North", "South", "East"]), Dimension.flat("tier", ["high", "low"])]
    release = protect(apply_magnitude_primary(build_magnitude_table(_costs(), dims, "cost"), PROFILES["acro"]))
    result = audit_release(release)
    assert result.passed
    whale = next(c for c in result.certificates if c.key == {"ward": "North", "tier": "high"})
    value = release.values()[whale.cell]
    assert whale.lo <= value - release.levels[0][whale.cell] and whale.hi >= value + release.levels[1][whale.cell]
    assert not audit_release(apply_magnitude_primary(build_magnitude_table(_costs(), dims, "cost"),
                                                     PROFILES["acro"])).passed
