"""NHS number status, keyed pseudonyms and their display form.

Public: ``classify_nhs_number(value) -> NhsNumberStatus`` and
``pseudonym(nhs_number, domain_key) -> str`` (32 lower-case hex characters).
"""

from pipeline.pseudonymise.nhs_number import (
    ColumnPolicy,
    NhsNumberStatus,
    classify_nhs_number,
    normalise_nhs_number,
    with_nhs_number_status,
)
from pipeline.pseudonymise.pseudonyms import (
    MESSAGE_PREFIX,
    display_form,
    hmac_expr,
    hmac_sha256,
    keyed_hash,
    parse_display_form,
    pseudonym,
    pseudonymise_column,
)

__all__ = [
    "MESSAGE_PREFIX",
    "ColumnPolicy",
    "NhsNumberStatus",
    "classify_nhs_number",
    "display_form",
    "hmac_expr",
    "hmac_sha256",
    "keyed_hash",
    "normalise_nhs_number",
    "parse_display_form",
    "pseudonym",
    "pseudonymise_column",
    "with_nhs_number_status",
]
