"""The joint engine (pipeline.disclosure.joint) on small tables: what it returns passes the audit,
never costs more than the cube engine's pattern it starts from, and when it says "optimal" no
cheaper pattern protects every primary in its model (checked by trying every pattern)."""

from itertools import combinations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.disclosure import PROFILES, apply_primary, audit_release
from pipeline.disclosure.audit import protection_levels
from pipeline.disclosure.joint import _Attacker, apply_pattern, protect_joint
from pipeline.disclosure.release import ABSENT, PRIMARY
from pipeline.disclosure.secondary import protect
from tests.spec.test_disclosure_properties import tables


def _weight(release, hidden):
    values = release.values().astype(float)
    free = release.status != PRIMARY
    return float((1 + values)[hidden & free].sum())


def _protects(release, hidden) -> bool:
    """Every primary can move by its levels under ``hidden`` in the joint engine's own model
    (its attacker LP over the whole table)."""
    table = release.table
    x = table.matrix.tocsc()
    counts = table.atoms["count"].to_numpy().astype(np.int64)
    values = release.values().astype(np.int64)
    model = _Attacker(x, np.arange(x.shape[0]), counts, release.status != ABSENT)
    for p in np.flatnonzero(release.status == PRIMARY):
        down, up = protection_levels(int(values[p]), release.profile.protection_width)
        for amount in (up, -down) if down else (up,):
            found = model.check(int(p), amount, hidden, values)
            if found is None or found[0] > 1e-6:
                return False
    return True


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from(["safehaven", "acro"]))
def test_the_joint_pattern_passes_the_audit_costs_no_more_than_cube_and_its_optimum_is_the_optimum(table,
                                                                                                   profile):
    cube = protect(apply_primary(table, PROFILES[profile]), "cube")
    release = apply_primary(table, PROFILES[profile])
    if not (release.status == PRIMARY).any():
        return
    chosen = protect(apply_primary(table, PROFILES[profile]), "joint", time_limit=20)
    assert audit_release(chosen).passed and _weight(chosen, chosen.hidden) <= _weight(cube, cube.hidden) + 1e-9
    found = protect_joint(release, start=cube.hidden.copy(), time_limit=20)
    assert found is not None
    hidden, moves, result = found
    assert result.protected and _weight(release, hidden) <= _weight(cube, cube.hidden) + 1e-9
    joint = apply_pattern(release, hidden, moves)
    assert audit_release(joint).passed
    free = np.flatnonzero(joint.status != PRIMARY)
    if result.optimal and free.size <= 12:
        cheaper = _weight(release, hidden) - 1e-9
        base = release.status == PRIMARY
        for k in range(free.size + 1):
            for cells in combinations(free.tolist(), k):
                pattern = base.copy()
                pattern[list(cells)] = True
                if _weight(release, pattern) < cheaper:
                    assert not _protects(release, pattern), cells


def test_out_of_time_the_joint_engine_gives_way_to_the_cube_pattern():
    from benchmarks.disclosure_tables import ward_table

    table = ward_table(n_wards=1, people=10_500, per_authority=None, per_region=None)
    release = apply_primary(table, PROFILES["safehaven"])
    assert protect_joint(release, time_limit=0) is None
    cube = protect(apply_primary(table, PROFILES["safehaven"]), "cube")
    chosen = protect(apply_primary(table, PROFILES["safehaven"]), "joint", time_limit=0)
    assert (chosen.hidden == cube.hidden).all() and audit_release(chosen).passed
