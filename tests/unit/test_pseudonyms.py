"""Pseudonyms: RFC 4231 through our HMAC, our published vector, the fast path agrees, and the
display form never looks like an NHS number."""

import re

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.logs import NHS_NUMBER_SHAPE
from pipeline.pseudonymise import (
    MESSAGE_PREFIX,
    display_form,
    hmac_expr,
    hmac_sha256,
    parse_display_form,
    pseudonym,
    pseudonymise_column,
)

# RFC 4231 test cases 1-4, 6, 7 (HMAC-SHA-256 outputs).
RFC4231 = [
    (bytes([0x0B] * 20), b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (bytes([0xAA] * 20), bytes([0xDD] * 50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), bytes([0xCD] * 50), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (bytes([0xAA] * 131), b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (bytes([0xAA] * 131),
     (b"This is a test using a larger than block-size key and a larger than block-size data. "
      b"The key needs to be hashed before being used by the HMAC algorithm."),
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


@pytest.mark.parametrize(("key", "message", "expected"), RFC4231)
def test_rfc4231_through_our_hmac(key, message, expected):
    assert hmac_sha256(key, message).hex() == expected


@pytest.mark.parametrize(("key", "message", "expected"), [v for v in RFC4231 if (v[0] + v[1]).isascii()])
def test_rfc4231_through_the_fast_path(key, message, expected):
    # The fast path hashes prefix + value; put the whole message in the value, no prefix.
    out = pl.DataFrame({"m": [message.decode()]}).select(hmac_expr(pl.col("m"), key, ""))
    assert out.item() == expected[:32]


#: Published vector (docs/PSEUDONYMS.md): domain key text, number, pseudonym, display form.
VECTOR_KEY = b"5a1aac47fe8ef87916eb521766c2a1c5ade68b8be306b19c623b7c2e76ab32d7"
#: Cross-checked with `printf 'nhs-number:v1:9434765919' | openssl dgst -sha256 -hmac <key>`.
VECTORS = [
    ("9434765919", "31dd62ea6be580cb5b6a7964194b72b0", "P1-67EP-5TKB-WP0C-PPVA-~"),
    ("4505577104", "07b3ac0bdf4b4381cc3fbd41e8b59f61", "P1-0YST-R2YZ-9D1R-3K1Z-R"),
]


@pytest.mark.parametrize(("number", "expected", "shown"), VECTORS)
def test_published_vector(number, expected, shown):
    assert pseudonym(number, VECTOR_KEY) == expected
    assert hmac_sha256(VECTOR_KEY, (MESSAGE_PREFIX + number).encode()).hex().startswith(expected)
    assert display_form(expected) == shown
    fast = pl.DataFrame({"d": [number]}).select(hmac_expr(pl.col("d"), VECTOR_KEY, MESSAGE_PREFIX)).item()
    assert fast == expected


def test_pseudonym_refuses_anything_but_ten_digits_and_never_echoes():
    with pytest.raises(ValueError) as exc:
        pseudonym("943 476 5919", VECTOR_KEY)
    assert "943" not in str(exc.value)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="0123456789", min_size=10, max_size=10), min_size=1, max_size=50),
       st.binary(min_size=32, max_size=32))
def test_fast_path_agrees_with_reference_and_hashes_each_distinct_value_once(numbers, raw):
    key = raw.hex().encode()
    frame = pl.DataFrame({"d": numbers + [None]})
    out = pseudonymise_column(frame, "d", key, "pid")
    assert out.height == frame.height and out["d"].to_list() == frame["d"].to_list()
    for number, pid in zip(out["d"], out["pid"], strict=True):
        assert pid == (pseudonym(number, key) if number else None)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_display_form_round_trips_and_never_looks_like_an_nhs_number(raw):
    pid = raw.hex()
    shown = display_form(pid)
    # As written (and as the redaction filter sees it), never NHS-number shaped.
    assert not NHS_NUMBER_SHAPE.search(shown) and not re.search(r"\d{5}", shown)
    assert re.fullmatch(r"P1-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z*~$=]", shown)
    assert parse_display_form(shown.lower()) == (1, pid[:20])


def test_display_form_catches_a_mistyped_character():
    shown = display_form("4a3c7f6c4c9ff0da24bb0c7bbc9c8a9a")
    body = list(shown)
    body[5] = "Z" if body[5] != "Z" else "Y"
    with pytest.raises(ValueError):
        parse_display_form("".join(body))
