"""NHS number status: public test vectors, and the fast path agrees with the reference."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.pseudonymise import (
    ColumnPolicy,
    NhsNumberStatus,
    classify_nhs_number,
    with_nhs_number_status,
)

S = NhsNumberStatus

# uk-fci/nhs-number vectors and the research note's table (shared/research/pseudo_linkage.md §3).
PUBLIC_VECTORS = [
    ("9434765919", S.TEST_RANGE),  # valid check digit 9; never issued (9xx)
    ("4505577104", S.VALID),
    ("9876543210", S.TEST_RANGE),
    ("1234567890", S.PLACEHOLDER),  # check digit would be 10: also invalid
    ("4000000632", S.VALID),  # England, Wales, Isle of Man
    ("0101011113", S.VALID),  # Scotland CHI
    ("3462950622", S.VALID),  # Northern Ireland H&C
    ("8453035113", S.OUT_OF_RANGE),  # Republic of Ireland IHI, not an NHS number
    ("9234760735", S.TEST_RANGE),
    ("9990000018", S.TEST_RANGE),
    ("0000000000", S.PLACEHOLDER),  # every repdigit passes modulus 11
    ("1111111111", S.PLACEHOLDER),
    ("4505577105", S.INVALID_CHECKSUM),
    ("450 557 7104", S.VALID),
    ("450-557-7104", S.VALID),
    (" 4505577104 ", S.VALID),
    ("450 5577104", S.INVALID_FORMAT),
    ("45055771040", S.INVALID_FORMAT),
    ("450557710X", S.INVALID_FORMAT),
    ("", S.MISSING),
    (None, S.MISSING),
    ("Not known", S.MISSING),
]


@pytest.mark.parametrize(("value", "status"), PUBLIC_VECTORS)
def test_public_vectors(value, status):
    assert classify_nhs_number(value) is status


def test_synthetic_runs_may_accept_the_test_range():
    assert classify_nhs_number("9434765919", allow_test_range=True) is S.VALID
    assert classify_nhs_number("9999999999", allow_test_range=True) is S.PLACEHOLDER


def test_integers_and_floats_only_by_column_policy():
    assert classify_nhs_number(101011113) is S.INVALID_FORMAT
    assert classify_nhs_number(101011113, ColumnPolicy.INTEGER) is S.VALID
    assert classify_nhs_number("101011113", ColumnPolicy.INTEGER) is S.VALID
    assert classify_nhs_number("4505577104.0") is S.INVALID_FORMAT
    assert classify_nhs_number("4505577104.0", ColumnPolicy.FLOAT) is S.VALID
    assert classify_nhs_number("4.505577104E+09", ColumnPolicy.FLOAT) is S.VALID
    assert classify_nhs_number("4505577104.5", ColumnPolicy.FLOAT) is S.INVALID_FORMAT


def test_check_digit_detects_every_single_substitution_and_adjacent_swap():
    base = "4505577104"
    for i in range(10):
        for d in "0123456789":
            if d != base[i]:
                assert classify_nhs_number(base[:i] + d + base[i + 1 :]) is not S.VALID
    for i in range(9):
        if base[i] != base[i + 1]:
            swapped = base[:i] + base[i + 1] + base[i] + base[i + 2 :]
            assert classify_nhs_number(swapped) is not S.VALID


def _fast(values, policy=ColumnPolicy.TEXT, allow=False):
    frame = pl.DataFrame({"v": pl.Series(values, dtype=pl.String)})
    return with_nhs_number_status(frame, "v", policy, allow, status="s", digits="d").select("s", "d")


@pytest.mark.parametrize(("value", "status"), PUBLIC_VECTORS)
def test_fast_path_on_public_vectors(value, status):
    out = _fast([value])
    assert out["s"][0] == status.value
    assert (out["d"][0] is not None) == (status is S.VALID)


digit_strings = st.text(alphabet="0123456789", min_size=9, max_size=11)
ten = st.text(alphabet="0123456789", min_size=10, max_size=10)
shaped = ten.map(lambda d: f"{d[:3]} {d[3:6]} {d[6:]}") | ten.map(lambda d: f"{d[:3]}-{d[3:6]}-{d[6:]}")
junk = st.text(alphabet="0123456789 -.XEe+/n", max_size=14)
values = st.one_of(ten, shaped, digit_strings, junk, st.sampled_from(["", " ", "UNKNOWN", "9999999999", "0123456789"]),
                   st.none(), ten.map(lambda d: d + ".0"), st.integers(0, 10**10).map(str))


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=40), st.sampled_from(list(ColumnPolicy)), st.booleans())
def test_fast_path_agrees_with_the_reference(batch, policy, allow):
    out = _fast(batch, policy, allow)
    for value, fast_status, fast_digits in zip(batch, out["s"], out["d"], strict=True):
        ref = classify_nhs_number(value, policy, allow)
        assert fast_status == ref.value, (value, policy)
        assert (fast_digits is not None) == (ref is S.VALID)
