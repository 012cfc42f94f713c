"""Domain keys: HKDF-SHA256 from a master secret, one domain per purpose.

    domain key = hex(HKDF-SHA256(master, salt="safehaven-keys-v1",
                                 info="safehaven/<domain>/v<version>", length=32))

The key is the 64-character hex text; HMAC uses its ASCII bytes (see
``pipeline.pseudonymise.pseudonyms``). Pseudonyms from different domains cannot be joined.

A ``DomainKey`` never shows its material: ``repr``/``str`` give the key id and fingerprint,
and it refuses to be pickled, so it cannot end up in a Prefect result, a cache or a log.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["DomainKey", "KeyDomain", "derive_domain_key", "fingerprint_of"]

HKDF_SALT = b"safehaven-keys-v1"


class KeyDomain(StrEnum):
    """One key domain per purpose or recipient."""

    LINKAGE = "riskstrat/linkage"  # person pseudonyms for risk stratification
    POSTCODE = "riskstrat/postcode"  # keyed postcode hash for rescue linkage
    LOCAL_ID = "riskstrat/local-id"  # council client identifiers
    MART = "riskstrat/mart"  # person pseudonyms as analysts see them in marts
    REIDENTIFICATION = "riskstrat/reidentification"  # GP list-match requests
    CASE_FINDING = "riskstrat/case-finding"  # person pseudonyms in case-finding packs
    PACK_SIGNING = "riskstrat/pack-signing"  # seed of the Ed25519 key that signs case-finding packs
    CERTIFICATE_SIGNING = "retention/certificate-signing"  # seed of the Ed25519 key that signs destruction certificates
    AUDIT = "audit/hashing"  # hashing values the audit log must refer to
    STORAGE = "storage/data-encryption"  # data-encryption keys per dataset generation


def fingerprint_of(material: bytes) -> str:
    """A 16-hex-character fingerprint: identifies a key without revealing it."""
    return hmac.new(material, b"safehaven-key-fingerprint", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class DomainKey:
    domain: str
    version: int
    material: bytes = field(repr=False, compare=False)

    @property
    def key_id(self) -> str:
        return f"{self.domain}@v{self.version}"

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.material)

    def __repr__(self) -> str:
        return f"DomainKey(key_id={self.key_id!r}, fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("domain keys cannot be pickled: pass key ids, not keys, between steps")

    def __getstate__(self):
        raise TypeError("domain keys cannot be serialised")


def derive_domain_key(master: bytes, domain: str | KeyDomain, version: int) -> DomainKey:
    domain = str(domain)
    okm = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=f"safehaven/{domain}/v{version}".encode()
    ).derive(master)
    return DomainKey(domain=domain, version=version, material=okm.hex().encode("ascii"))
