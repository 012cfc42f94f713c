"""Keyed pseudonyms: HMAC-SHA256 under a domain key, truncated to 128 bits.

    pseudonym = first 16 bytes of HMAC-SHA256(domain_key, "nhs-number:v1:" + nhs10), as 32 hex

A domain key is 64 lower-case hex characters and the HMAC key is those ASCII bytes (256 bits
of entropy), so the same pseudonym can be reproduced by any HMAC implementation, including
polars-hash, whose HMAC takes its key as text. ``pseudonym`` is the reference; ``hmac_expr``
is the fast path (polars-hash, in Rust, parallel); tests hold them to agree.

Each distinct NHS number is hashed once and joined back (``pseudonymise_column``), so the
cost is per person, not per row.

The display form, for case-finding letters and phone calls, is four groups of four Crockford characters and a check symbol, e.g. ``P1-67EP-5TKB-WP0C-PPVA-~``:
Crockford base32 of the first 80 bits with a mod-37 check symbol. It always has letters and
dashes in 4-character groups, so it can never be mistaken for (or redacted as) an NHS number.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import polars as pl

__all__ = [
    "MESSAGE_PREFIX",
    "display_form",
    "hmac_expr",
    "hmac_sha256",
    "keyed_hash",
    "parse_display_form",
    "pseudonym",
    "pseudonymise_column",
]

MESSAGE_PREFIX = "nhs-number:v1:"
PSEUDONYM_HEX = 32  # 128 bits
_NHS10 = re.compile(r"^\d{10}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CHECK_SYMBOLS = _CROCKFORD + "*~$=U"
_DECODE = {c: i for i, c in enumerate(_CROCKFORD)} | {"O": 0, "I": 1, "L": 1}


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104); the primitive every pseudonym and keyed hash uses."""
    return hmac.new(key, message, hashlib.sha256).digest()


def keyed_hash(value: str, domain_key: bytes, prefix: str) -> str:
    """128-bit keyed hash of ``prefix + value`` as 32 lower-case hex characters."""
    return hmac_sha256(domain_key, (prefix + value).encode("utf-8")).hex()[:PSEUDONYM_HEX]


def pseudonym(nhs_number: str, domain_key: bytes) -> str:
    """The pseudonym of a normalised, valid 10-digit NHS number (32 lower-case hex chars)."""
    if not isinstance(nhs_number, str) or not _NHS10.match(nhs_number):
        # Never echo the value: it may be an NHS number.
        raise ValueError("pseudonym() takes a normalised 10-digit NHS number; classify it first")
    return keyed_hash(nhs_number, domain_key, MESSAGE_PREFIX)


def _text_key(domain_key: bytes) -> str:
    try:
        return domain_key.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("the fast path needs a text domain key (64 hex characters); use a keystore key") from None


def hmac_expr(expr: pl.Expr, domain_key: bytes, prefix: str) -> pl.Expr:
    """Polars expression: 128-bit keyed hash of ``prefix + expr`` (null stays null).

    The key sits inside the expression: never serialise, log or cache a plan built with it
    (``LazyFrame.serialize()`` would contain it). Build it, collect, and drop it.
    """
    import polars_hash  # noqa: F401 - registers the ``chash`` expression namespace

    return (pl.lit(prefix) + expr).chash.hmac_sha256(key=_text_key(domain_key)).str.slice(0, PSEUDONYM_HEX)


def pseudonymise_column(frame, digits_column: str, domain_key: bytes, out: str):
    """Add ``out``: the pseudonym of each valid NHS number in ``digits_column`` (null otherwise).

    Each distinct number is hashed once and joined back. Works on a DataFrame or a LazyFrame.
    """
    distinct = frame.select(pl.col(digits_column).drop_nulls().unique())
    hashed = distinct.with_columns(hmac_expr(pl.col(digits_column), domain_key, MESSAGE_PREFIX).alias(out))
    return frame.join(hashed, on=digits_column, how="left", nulls_equal=False, maintain_order="left")


def display_form(pseudonym_hex: str, version: int = 1) -> str:
    """``P<version>-`` then Crockford base32 of the first 80 bits in four groups of four, then a check symbol."""
    if not re.fullmatch(r"[0-9a-f]{32}", pseudonym_hex or ""):
        raise ValueError("display_form() takes a 32-hex-character pseudonym")
    value = int(pseudonym_hex[:20], 16)  # 80 bits
    chars = "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(75, -1, -5))
    groups = "-".join(chars[i : i + 4] for i in range(0, 16, 4))
    return f"P{version}-{groups}-{_CHECK_SYMBOLS[value % 37]}"


def parse_display_form(text: str) -> tuple[int, str]:
    """``(version, first 20 hex of the pseudonym)`` from a display form typed by a person.

    Accepts lower case and Crockford's look-alikes (O for 0, I and L for 1); raises
    ``ValueError`` when the check symbol does not match (a mistyped character or a swap).
    """
    cleaned = text.strip().upper().replace(" ", "")
    match = re.fullmatch(r"P(\d+)-?((?:[0-9A-Z]{4}-?){4})([0-9A-Z*~$=U])", cleaned)
    if not match:
        raise ValueError("not a pseudonym display form (like P1-67EP-5TKB-WP0C-PPVA-~)")
    body = match.group(2).replace("-", "")
    try:
        value = 0
        for ch in body:
            value = value * 32 + _DECODE[ch]
    except KeyError:
        raise ValueError("the display form has a character outside Crockford base32") from None
    check = match.group(3).replace("O", "0").replace("I", "1").replace("L", "1")
    if _CHECK_SYMBOLS[value % 37] != check:
        raise ValueError("the display form's check symbol does not match: a character was mistyped")
    return int(match.group(1)), f"{value:020x}"
