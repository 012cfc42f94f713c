"""`safehaven keys upgrade`: a keystore from before roles (format 1: every secret under one
key-encryption key) is refused with the fix, and upgrading keeps every master and data key (so
existing files stay readable), the certificate key, and wraps each for its roles."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pipeline.errors import KeystoreError
from pipeline.keys import KeyDomain, KeyEncryptionKey, KeyHolders, LocalKeystore, derive_domain_key
from pipeline.keys.upgrade import upgrade_v1
from tests.conftest import CONTRACTS


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _v1(path, passphrase: str, masters: dict[int, bytes], data: dict[str, bytes]) -> None:
    """A format-1 keystore as the earlier version wrote it."""
    params = {"kind": "scrypt", "salt": _b64(secrets.token_bytes(16)), "n": 2**14, "r": 8, "p": 1}
    kek = Scrypt(salt=base64.b64decode(params["salt"]), length=32, n=params["n"], r=8, p=1).derive(passphrase.encode())

    def seal(secret: bytes, aad: str) -> dict:
        nonce = secrets.token_bytes(12)
        return {"nonce": _b64(nonce), "ciphertext": _b64(AESGCM(kek).encrypt(nonce, secret, aad.encode()))}

    check = b"safehaven keystore check"
    doc = {"format": "safehaven-keystore/1", "label": "", "created": "2026-01-01T00:00:00+00:00", "kek": params,
           "check": seal(check, check.decode()),
           "masters": [{"version": v, "status": "active" if v == max(masters) else "retiring",
                        "created": "2026-01-01T00:00:00+00:00", **seal(s, f"safehaven-master:v{v}")}
                       for v, s in masters.items()],
           "data_keys": {n: {"status": "active", "created": "2026-01-01T00:00:00+00:00",
                             **seal(k, f"safehaven-data-key:{n}")} for n, k in data.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_a_format_1_keystore_is_refused_with_the_fix_then_upgraded_keeping_every_key(tmp_path):
    path = tmp_path / "keys" / "keystore.json"
    masters = {1: secrets.token_bytes(32), 2: secrets.token_bytes(32)}
    data = {"warehouse-g3": secrets.token_bytes(32), "mart-person-20260101T000000Z": secrets.token_bytes(32),
            "mart-governance-20260101T000000Z": secrets.token_bytes(32)}
    _v1(path, "the old passphrase", masters, data)
    old = KeyEncryptionKey(passphrase="the old passphrase")
    with pytest.raises(KeystoreError, match="safehaven keys upgrade"):
        LocalKeystore(path, old)
    holders = KeyHolders.from_contracts(CONTRACTS)
    with pytest.raises(KeystoreError, match="does not open"):
        upgrade_v1(path, KeyEncryptionKey(passphrase="wrong"), {}, holders, default=KeyEncryptionKey(passphrase="x"))

    analyst = KeyEncryptionKey(key=secrets.token_bytes(32))
    ig_lead = KeyEncryptionKey(key=secrets.token_bytes(32))
    store = upgrade_v1(path, old, {"engineer": old, "analyst": analyst, "ig-lead": ig_lead}, holders, default=old)
    assert store.usable_versions() == [1, 2] and store.active_version() == 2
    for v, secret in masters.items():
        assert store.domain_key(KeyDomain.LINKAGE, v).material == derive_domain_key(secret, KeyDomain.LINKAGE, v).material
    engineer = LocalKeystore(path, credentials={"engineer": KeyEncryptionKey(passphrase="the old passphrase")},
                             holders=holders)
    assert engineer.data_key("warehouse-g3") == data["warehouse-g3"]
    assert engineer.data_key("mart-person-20260101T000000Z") == data["mart-person-20260101T000000Z"]
    with pytest.raises(KeystoreError, match="held by ig-lead"):
        engineer.data_key("mart-governance-20260101T000000Z")
    alone = LocalKeystore(path, credentials={"analyst": analyst}, holders=holders)
    assert alone.data_key("mart-person-20260101T000000Z") == data["mart-person-20260101T000000Z"]
    with pytest.raises(KeystoreError):
        alone.data_key("warehouse-g3")
    # The certificate key is the one the old keystore signed with (from its active master).
    lead = LocalKeystore(path, credentials={"ig-lead": ig_lead}, holders=holders)
    old_seed = hashlib.sha256(derive_domain_key(masters[2], KeyDomain.CERTIFICATE_SIGNING, 2).material).digest()
    assert lead.certificate_signing_seed() == old_seed
    assert not path.with_name(path.name + ".upgrading").exists()
    assert "the old passphrase" not in path.read_text()
