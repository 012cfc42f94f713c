"""The clean-up's bookkeeping of which moves change which cells (``secondary._Uses``, arrays
built once for England's 20 million entries) agrees with the obvious version: a set of moves per
cell, and a move's group taken from the set of its cells' groups."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.disclosure.secondary import _Uses

CELLS = 40


@st.composite
def moves(draw):
    n = draw(st.integers(0, 30))
    out = {}
    for i in range(n):
        cells = draw(st.sets(st.integers(0, CELLS - 1), max_size=8))
        out[(i // 2, 4 if i % 2 == 0 else -4)] = (None, cells, 0.0)
    return out


@settings(max_examples=200, deadline=None)
@given(moves(), st.lists(st.integers(-1, 3), min_size=CELLS, max_size=CELLS), st.sets(st.integers(0, CELLS - 1)))
def test_the_array_bookkeeping_agrees_with_sets_per_cell(found, groups, asked):
    part = np.array(groups)
    uses = _Uses(found)
    users: dict[int, set] = {}
    for key, (_, cells, _) in found.items():
        for c in cells:
            users.setdefault(c, set()).add(key)
    assert uses.used(CELLS).tolist() == [bool(users.get(c)) for c in range(CELLS)]
    assert uses.of(sorted(asked)) == {c: users[c] for c in asked if users.get(c)}
    for key, group in zip(uses.keys, uses.owners(part).tolist(), strict=True):
        inside = {int(part[c]) for c in found[key][1]} - {-1}
        assert group == (inside.pop() if len(inside) == 1 else -1)
