"""Upgrade a keystore made before keys were wrapped per role (``safehaven-keystore/1``: every
secret under one key-encryption key) to the per-role format, keeping every master version and
data key (so every warehouse, staged file and mart stays readable) and the old file beside it
only until the new one is written."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.errors import KeystoreError
from pipeline.keys.credentials import Credential, KeyEncryptionKey
from pipeline.keys.domains import KeyDomain, derive_domain_key
from pipeline.keys.roles import CERTIFICATE_SIGNING, IG_LEAD
from pipeline.keys.store import FORMAT_V1, LocalKeystore, certificate_public_key

__all__ = ["upgrade_v1"]


def _old_kek(doc: dict, kek: KeyEncryptionKey) -> AESGCM:
    """The format-1 key-encryption key, through the credential's own derivation."""
    params = doc["kek"]
    if (params.get("kind") == "scrypt") != (kek.kind == "scrypt"):
        raise KeystoreError("the old keystore was sealed with a " + ("passphrase: give it as SAFEHAVEN_KEYSTORE_PASSPHRASE"
                            if params.get("kind") == "scrypt" else "key: give it as SAFEHAVEN_KEK"))
    return kek._aes({"salt": params.get("salt"), "scrypt": {k: params.get(k) for k in ("n", "r", "p")}})


def upgrade_v1(path: Path, old: KeyEncryptionKey, credentials: dict[str, Credential], holders,
               default: Credential | None = None) -> LocalKeystore:
    """Re-wrap a format-1 keystore for roles; ``credentials`` (or ``default``) seal each role."""
    path = Path(path)
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT_V1:
        raise KeystoreError(f"{path} is not a {FORMAT_V1} keystore")
    aes = _old_kek(doc, old)

    def opened(entry: dict, aad: str) -> bytes:
        try:
            return aes.decrypt(base64.b64decode(entry["nonce"]), base64.b64decode(entry["ciphertext"]), aad.encode())
        except InvalidTag:
            raise KeystoreError(f"the old key-encryption key does not open {path}") from None

    opened(doc["check"], "safehaven keystore check")
    masters = {m["version"]: opened(m, f"safehaven-master:v{m['version']}")
               for m in doc["masters"] if m["status"] != "retired"}
    data = {n: opened(e, f"safehaven-data-key:{n}") for n, e in doc.get("data_keys", {}).items()
            if e.get("status") != "destroyed"}
    staging = path.with_name(path.name + ".upgrading")
    staging.unlink(missing_ok=True)
    store = LocalKeystore.create(staging, default, doc.get("label", ""), credentials=credentials,
                                 roles=holders.roles, holders=holders)
    active = next(m["version"] for m in doc["masters"] if m["status"] == "active")
    # The certificate key stays the one that signed the old certificates (it came from the master).
    seed = hashlib.sha256(derive_domain_key(masters[active], KeyDomain.CERTIFICATE_SIGNING, active).material).digest()
    with store._changing() as new:
        new["created"] = doc.get("created", new["created"])
        new["secrets"][CERTIFICATE_SIGNING] = {"created": new["created"], "public": base64.b64encode(
            certificate_public_key(seed)).decode(), "wrapped": store._wrapped(new, "secret", CERTIFICATE_SIGNING,
                                                                                 seed, (IG_LEAD,))}
        new["masters"] = []
        for m in doc["masters"]:
            entry = {k: m[k] for k in ("version", "status", "created", "retired") if k in m}
            if m["version"] in masters:
                entry["wrapped"] = store._wrapped(new, "master", f"v{m['version']}", masters[m["version"]],
                                                  holders(f"master-v{m['version']}"))
            new["masters"].append(entry)
        for name, e in doc.get("data_keys", {}).items():
            entry = {k: e[k] for k in ("status", "created", "destroyed") if k in e}
            if name in data:
                entry["wrapped"] = store._wrapped(new, "data-key", name, data[name], holders(name))
            new["data_keys"][name] = entry
    os.replace(staging, path)
    return LocalKeystore(path, default, credentials=credentials, holders=holders)
