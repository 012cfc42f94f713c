"""NHS number status: normalise and classify, in plain Python (the reference) and as a
polars expression (the fast path). ``tests/unit/test_nhs_number.py`` holds the public test
vectors and a Hypothesis test that the two paths agree on generated inputs.

Classification order (first match wins):

1. ``missing``: null, blank, or a "no value" token (``NULL``, ``N/A``, ``UNKNOWN``, ...);
2. ``invalid_format``: not 10 digits, ``### ### ####`` or ``###-###-####`` after trimming
   (integers and spreadsheet floats only under an explicit column policy);
3. ``placeholder``: repeated digits (every one passes modulus 11) or a known dummy;
4. ``invalid_checksum``: modulus 11 with weights 10..2 fails (a check value of 10 is invalid);
5. ``test_range``: the never-issued 9xx range (synthetic and test patients);
6. ``out_of_range``: not in a configured issued range;
7. ``valid``.

Only ``valid`` numbers may be pseudonymised into the linkable space.
"""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from enum import StrEnum

import polars as pl

__all__ = [
    "ISSUED_RANGES",
    "ColumnPolicy",
    "NhsNumberStatus",
    "classify_nhs_number",
    "normalise_nhs_number",
    "with_nhs_number_status",
]


class NhsNumberStatus(StrEnum):
    VALID = "valid"
    MISSING = "missing"
    INVALID_FORMAT = "invalid_format"
    INVALID_CHECKSUM = "invalid_checksum"
    PLACEHOLDER = "placeholder"
    TEST_RANGE = "test_range"
    OUT_OF_RANGE = "out_of_range"


class ColumnPolicy(StrEnum):
    """How a delivery's NHS number column may be written. Text is the default; integers (lost
    leading zeros) and spreadsheet floats are accepted only when a column is declared so."""

    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"


#: Issued UK ranges (uk-fci/nhs-number constants): Scotland CHI, Northern Ireland H&C,
#: England/Wales/Isle of Man. Anything else that is not the 9xx test range is out of range.
ISSUED_RANGES: tuple[tuple[int, int], ...] = (
    (100_000_000, 3_112_999_999),
    (3_200_000_000, 3_999_999_999),
    (4_000_000_000, 4_999_999_999),
    (6_000_000_000, 7_999_999_999),
)
TEST_RANGE = (9_000_000_000, 9_999_999_999)
MISSING_TOKENS = frozenset({"", "NULL", "NONE", "N/A", "NA", "UNKNOWN", "NOT KNOWN", "NOTKNOWN", "-"})
DUMMIES = frozenset({"0123456789", "1234567890"} | {str(d) * 10 for d in range(10)})
WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
_TEXT_SHAPE = re.compile(r"^(?:\d{10}|\d{3} \d{3} \d{4}|\d{3}-\d{3}-\d{4})$")
_INTEGER_SHAPE = re.compile(r"^\d{1,10}$")


def _checksum_ok(digits: str) -> bool:
    # Single-pass form of the Data Dictionary algorithm: sum((11 - i) * d_i) over all ten
    # digits is 0 mod 11 exactly when the check digit is right (a check of 10 can never pass).
    return sum(w * int(d) for w, d in zip(WEIGHTS, digits, strict=True)) % 11 == 0


def normalise_nhs_number(value: object, policy: ColumnPolicy = ColumnPolicy.TEXT) -> str | None:
    """Ten digits, or None when the value is missing or not in an accepted shape."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if policy is ColumnPolicy.TEXT or value < 0 or value >= 10**10:
            return None
        return f"{value:010d}"
    if isinstance(value, float):
        if policy is not ColumnPolicy.FLOAT or not value.is_integer() or not 0 <= value < 1e10:
            return None
        return f"{int(value):010d}"
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if _TEXT_SHAPE.match(text):
        return text.replace(" ", "").replace("-", "")
    if policy is ColumnPolicy.INTEGER and _INTEGER_SHAPE.match(text):
        return text.zfill(10)
    if policy is ColumnPolicy.FLOAT:
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
        if number.is_finite() and number == number.to_integral_value() and 0 <= number < 10**10:
            return f"{int(number):010d}"
    return None


def classify_nhs_number(
    value: object,
    policy: ColumnPolicy = ColumnPolicy.TEXT,
    allow_test_range: bool = False,
    issued_ranges: tuple[tuple[int, int], ...] = ISSUED_RANGES,
) -> NhsNumberStatus:
    """The status of one delivered NHS number (the reference implementation)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NhsNumberStatus.MISSING
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        if text.upper() in MISSING_TOKENS:
            return NhsNumberStatus.MISSING
    digits = normalise_nhs_number(value, policy)
    if digits is None:
        return NhsNumberStatus.INVALID_FORMAT
    if digits in DUMMIES:
        return NhsNumberStatus.PLACEHOLDER
    if not _checksum_ok(digits):
        return NhsNumberStatus.INVALID_CHECKSUM
    number = int(digits)
    if TEST_RANGE[0] <= number <= TEST_RANGE[1]:
        return NhsNumberStatus.VALID if allow_test_range else NhsNumberStatus.TEST_RANGE
    if not any(lo <= number <= hi for lo, hi in issued_ranges):
        return NhsNumberStatus.OUT_OF_RANGE
    return NhsNumberStatus.VALID


def with_nhs_number_status(
    frame: pl.DataFrame | pl.LazyFrame,
    column: str,
    policy: ColumnPolicy = ColumnPolicy.TEXT,
    allow_test_range: bool = False,
    issued_ranges: tuple[tuple[int, int], ...] = ISSUED_RANGES,
    status: str = "nhs_number_status",
    digits: str = "nhs_number_digits",
):
    """Add ``status`` and ``digits`` columns to a frame of delivered values: the fast path.

    ``digits`` is the normalised ten-digit text for *valid* numbers and null otherwise, so a
    caller cannot pseudonymise anything else by accident. Each intermediate is computed once
    (a chained expression would recompute the normalisation for every reference to it).
    """
    lazy = frame.lazy()
    text = pl.col("__nhs_text")
    lazy = lazy.with_columns(
        __nhs_text=pl.col(column).cast(pl.String).str.normalize("NFKC").str.strip_chars()
    )
    shaped = text.str.contains(r"^(?:\d{10}|\d{3} \d{3} \d{4}|\d{3}-\d{3}-\d{4})$")
    found = pl.when(shaped).then(text.str.replace_all(r"[ -]", ""))
    if policy is ColumnPolicy.INTEGER:
        found = found.when(text.str.contains(r"^\d{1,10}$")).then(text.str.zfill(10))
    elif policy is ColumnPolicy.FLOAT:
        as_float = text.cast(pl.Float64, strict=False)
        whole = as_float.is_not_null() & (as_float == as_float.floor()) & (as_float >= 0) & (as_float < 1e10)
        found = found.when(whole).then(as_float.cast(pl.Int64).cast(pl.String).str.zfill(10))
    lazy = lazy.with_columns(
        __nhs_missing=text.is_null() | text.str.to_uppercase().is_in(list(MISSING_TOKENS)),
        __nhs_digits=found.otherwise(None),
    ).with_columns(__nhs_number=pl.col("__nhs_digits").cast(pl.Int64))
    number = pl.col("__nhs_number")
    checksum = sum(w * ((number // 10 ** (9 - i)) % 10) for i, w in enumerate(WEIGHTS)) % 11
    in_issued = pl.lit(False)
    for lo, hi in issued_ranges:
        in_issued = in_issued | number.is_between(lo, hi)
    test_status = NhsNumberStatus.VALID if allow_test_range else NhsNumberStatus.TEST_RANGE
    lazy = lazy.with_columns(
        pl.when(pl.col("__nhs_missing")).then(pl.lit(NhsNumberStatus.MISSING.value))
        .when(pl.col("__nhs_digits").is_null()).then(pl.lit(NhsNumberStatus.INVALID_FORMAT.value))
        .when(pl.col("__nhs_digits").is_in(list(DUMMIES))).then(pl.lit(NhsNumberStatus.PLACEHOLDER.value))
        .when(checksum != 0).then(pl.lit(NhsNumberStatus.INVALID_CHECKSUM.value))
        .when(number.is_between(*TEST_RANGE)).then(pl.lit(test_status.value))
        .when(~in_issued).then(pl.lit(NhsNumberStatus.OUT_OF_RANGE.value))
        .otherwise(pl.lit(NhsNumberStatus.VALID.value))
        .alias(status)
    ).with_columns(
        pl.when(pl.col(status) == NhsNumberStatus.VALID.value).then(pl.col("__nhs_digits")).alias(digits)
    ).drop("__nhs_text", "__nhs_missing", "__nhs_digits", "__nhs_number")
    return lazy.collect() if isinstance(frame, pl.DataFrame) else lazy
