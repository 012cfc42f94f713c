"""The keystore: master secrets, versioned, and data-encryption keys, each wrapped for the roles
that may use it; domain keys derived on demand.

``Keystore`` is the interface (a KMS or HSM can implement it). ``LocalKeystore`` keeps everything
in one JSON file under the data root (``keys/keystore.json``):

- each *role* (engineer, analyst, super-user, ig-lead, ...) has an X25519 key pair: the public
  half in the file, the private half sealed by the role's own *credential* (its key-encryption
  key: a key or passphrase from the environment, or an AES key in a PKCS#11 token; see
  ``credentials``);
- every secret (a master version, a data-encryption key, the certificate-signing seed) is
  wrapped for each role that holds it (``roles.KeyHolders``): X25519 with an ephemeral key,
  HKDF-SHA256, AES-256-GCM bound to the secret's name and the role. Anyone may wrap a new key
  for a role (the engineer's link run makes the governance mart's key for the IG lead alone);
  only the role's credential unwraps it.

So a process opened with the analyst's credential can unwrap the keys of the marts analysts
read and nothing else: not the warehouse, not a staged delivery, not a master secret (so no
linkage key). Changing one role's credential reseals that role's private key only.

Rotation: ``rotate()`` adds master version n+1 as active and marks n as *retiring*: both stay
usable during the overlap, so ingest can write an old-to-new pseudonym bridge; ``retire(n)``
then makes n unusable. A retired master's ciphertext is deleted from the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipeline.errors import KeystoreError
from pipeline.keys.credentials import Credential, WrongCredential, _b64, _unb64
from pipeline.keys.domains import DomainKey, KeyDomain, derive_domain_key
from pipeline.keys.roles import CERTIFICATE_SIGNING, ENGINEER, IG_LEAD, KeyHolders, role_env

__all__ = ["DEMO_PASSPHRASE", "FORMAT", "Keystore", "LocalKeystore"]

FORMAT = "safehaven-keystore/2"
FORMAT_V1 = "safehaven-keystore/1"
DEMO_PASSPHRASE = "safehaven-demo-keystore: synthetic data only, this passphrase is public"  # noqa: S105 - public by design
DEFAULT_ROLES = (ENGINEER, IG_LEAD, "analyst", "super-user")
_WRAP_INFO = b"safehaven-keystore/2 wrap"



def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _wrap_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_WRAP_INFO).derive(shared))


def wrap_for(public: bytes, secret: bytes, aad: bytes) -> dict:
    """``secret`` sealed to a role's public key (ECIES: X25519, HKDF-SHA256, AES-256-GCM)."""
    ephemeral = X25519PrivateKey.generate()
    epk = _raw_public(ephemeral.public_key())
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    nonce = secrets.token_bytes(12)
    return {"epk": _b64(epk), "nonce": _b64(nonce), "ciphertext": _b64(_wrap_key(shared, epk, public).encrypt(nonce, secret, aad))}


def unwrap_with(private: X25519PrivateKey, wrapped: dict, aad: bytes) -> bytes:
    epk = _unb64(wrapped["epk"])
    shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
    return _wrap_key(shared, epk, _raw_public(private.public_key())).decrypt(
        _unb64(wrapped["nonce"]), _unb64(wrapped["ciphertext"]), aad)


def certificate_public_key(seed: bytes) -> bytes:
    """The public half of the Ed25519 key (seed: the IG lead's signing secret) that signs certificates."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _aad(kind: str, name: str, role: str) -> bytes:
    return f"safehaven-{kind}:{name}:for:{role}".encode()


class Keystore(Protocol):
    """What the pipeline needs from a keystore (a KMS-backed one implements the same)."""

    def domain_key(self, domain: KeyDomain | str, version: int | None = None) -> DomainKey: ...

    def active_version(self) -> int: ...

    def usable_versions(self) -> list[int]: ...

    def data_key(self, name: str, create: bool = False) -> bytes: ...

    def data_key_names(self, prefix: str = "", include_destroyed: bool = False) -> list[str]: ...

    def destroy_data_key(self, name: str, missing_ok: bool = False) -> None: ...


class LocalKeystore:
    """Roles, master secrets and data keys in one file; see the module docstring.

    Open it with the credentials of the roles this process acts as: ``credentials`` maps a role
    to its credential; a single ``kek`` is tried on every role (a keystore whose roles share one
    credential, as the demo's do). ``holders`` says which roles a new data key is wrapped for."""

    def __init__(self, path: Path, kek: Credential | None = None, *, credentials: dict[str, Credential] | None = None,
                 holders: Callable[[str], Iterable[str]] | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise KeystoreError(f"no keystore at {self.path}; create one with 'safehaven keys init'")
        self._doc = self._read()
        if self._doc.get("format") == FORMAT_V1:
            raise KeystoreError(f"{self.path} was made before keys were wrapped per role: run "
                                "'safehaven keys upgrade' once, with SAFEHAVEN_KEK (the old key-encryption key) and "
                                "each role's new credential set")
        if self._doc.get("format") != FORMAT:
            raise KeystoreError(f"{self.path} is not a {FORMAT} file")
        self.holders = holders or KeyHolders()
        self._private: dict[str, X25519PrivateKey] = {}
        roles = self._doc["roles"]
        if credentials:
            for role, credential in credentials.items():
                if role not in roles:
                    raise KeystoreError(f"{self.path} has no role '{role}' (it has {', '.join(sorted(roles))})")
                try:
                    self._private[role] = self._open_role(role, credential)
                except WrongCredential:
                    raise KeystoreError(f"the credential given for role '{role}' ({role_env(role)}) does not open "
                                        f"{self.path}") from None
        if kek is not None:
            for role in roles:
                if role not in self._private:
                    with contextlib.suppress(WrongCredential):
                        self._private[role] = self._open_role(role, kek)
        if not self._private:
            raise KeystoreError(f"the key-encryption key or passphrase does not open {self.path}")
        self._masters: dict[int, bytes] = {}

    def _open_role(self, role: str, credential: Credential) -> X25519PrivateKey:
        raw = credential.open(self._doc["roles"][role]["private"], _aad("role", role, role))
        return X25519PrivateKey.from_private_bytes(raw)

    # Creating ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, kek: Credential | None = None, label: str = "", *,
               credentials: dict[str, Credential] | None = None, roles: Iterable[str] = DEFAULT_ROLES,
               holders: Callable[[str], Iterable[str]] | None = None) -> LocalKeystore:
        """A new keystore with a key pair per role, each sealed by ``credentials[role]`` (or
        ``kek`` for the roles not named), the first master version and the certificate-signing seed."""
        path = Path(path)
        if path.exists():
            raise KeystoreError(f"a keystore already exists at {path}; it is never overwritten")
        credentials = dict(credentials or {})
        roles = sorted(set(roles) | set(credentials) | {ENGINEER, IG_LEAD})
        missing = [r for r in roles if r not in credentials and kek is None]
        if missing:
            raise KeystoreError(f"no credential for role(s) {', '.join(missing)}: set {', '.join(role_env(r) for r in missing)}")
        doc = {"format": FORMAT, "label": label, "created": _now(), "roles": {}, "masters": [], "secrets": {},
               "data_keys": {}}
        for role in roles:
            private = X25519PrivateKey.generate()
            raw = _raw_private(private)
            credential = credentials.get(role, kek)
            doc["roles"][role] = {"public": _b64(_raw_public(private.public_key())), "credential": credential.kind,
                                  "shared": role not in credentials, "changed": _now(),
                                  "private": credential.seal(raw, _aad("role", role, role))}
        signing = secrets.token_bytes(32)
        doc["secrets"][CERTIFICATE_SIGNING] = {"created": _now(), "public": _b64(certificate_public_key(signing)),
                                               "wrapped": cls._wrapped(doc, "secret", CERTIFICATE_SIGNING, signing,
                                                                       (IG_LEAD,))}
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        cls._write(path, doc)
        store = cls(path, kek, credentials=credentials, holders=holders)
        store._add_master()
        return store

    @staticmethod
    def _wrapped(doc: dict, kind: str, name: str, secret: bytes, roles: Iterable[str]) -> dict:
        out = {}
        for role in roles:
            if role not in doc["roles"]:
                raise KeystoreError(f"no role '{role}' in the keystore to wrap {kind} '{name}' for: the mart "
                                    "contracts name a role the keystore was made without")
            out[role] = wrap_for(_unb64(doc["roles"][role]["public"]), secret, _aad(kind, name, role))
        return out

    def _unwrap(self, kind: str, name: str, wrapped: dict) -> bytes:
        for role, private in self._private.items():
            if role in wrapped:
                try:
                    return unwrap_with(private, wrapped[role], _aad(kind, name, role))
                except InvalidTag:
                    raise KeystoreError(f"{kind} '{name}' failed its integrity check") from None
        holders = ", ".join(f"{r} ({role_env(r)})" for r in sorted(wrapped)) or "no role"
        raise KeystoreError(f"{kind} '{name}' is held by {holders}; this process holds the credential of "
                            f"{', '.join(sorted(self._private))} only")

    @contextlib.contextmanager
    def _changing(self):
        """Change the keystore safely across instances, threads and processes: under an
        exclusive flock (one per open, so threads of one process exclude each other too),
        re-read the file into a document of the caller's own, let the caller change it, write
        it atomically. The caller's document, never the shared ``self._doc``, is written: a
        thread reloading ``self._doc`` meanwhile must not make another thread's change vanish."""
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                doc = self._read()
                yield doc
                self._write(self.path, doc)
                self._doc = doc
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict:
        return json.loads(self.path.read_text())

    def _reload(self) -> dict:
        """Refresh ``self._doc`` from disk and return that snapshot (read it, not ``self._doc``,
        which another thread may replace at any moment)."""
        self._doc = doc = self._read()
        return doc

    @staticmethod
    def _write(path: Path, doc: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keystore-")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _add_master(self) -> int:
        with self._changing() as doc:
            version = max((m["version"] for m in doc["masters"]), default=0) + 1
            secret = secrets.token_bytes(32)
            for m in doc["masters"]:
                if m["status"] == "active":
                    m["status"] = "retiring"
            doc["masters"].append({"version": version, "status": "active", "created": _now(),
                                   "wrapped": self._wrapped(doc, "master", f"v{version}", secret, (ENGINEER,))})
        return version

    # Roles and credentials ---------------------------------------------------------------
    @property
    def roles(self) -> tuple[str, ...]:
        """The roles whose credential this process holds."""
        return tuple(sorted(self._private))

    def change_credential(self, role: str, credential: Credential) -> None:
        """Reseal ``role``'s private key under a new credential (the old one must have opened it).
        Every key wrapped for the role stays as it is; no other role is touched."""
        if role not in self._private:
            raise KeystoreError(f"changing role '{role}''s credential needs its current one ({role_env(role)})")
        raw = _raw_private(self._private[role])
        with self._changing() as doc:
            doc["roles"][role] |= {"private": credential.seal(raw, _aad("role", role, role)),
                                   "credential": credential.kind, "shared": False, "changed": _now()}

    # Rotation ----------------------------------------------------------------------------
    def rotate(self) -> int:
        """Add a new active master version; the previous one stays usable until retired."""
        return self._add_master()

    def retire(self, version: int) -> None:
        """Make ``version`` unusable and delete its ciphertext. The active version cannot be."""
        with self._changing() as doc:
            for m in doc["masters"]:
                if m["version"] == version:
                    if m["status"] == "active":
                        raise KeystoreError("rotate before retiring the active master version")
                    m["status"] = "retired"
                    m["retired"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                    m.pop("wrapped", None)
                    self._masters.pop(version, None)
                    return
        raise KeystoreError(f"no master version {version}")

    # Data-encryption keys ----------------------------------------------------------------
    def data_key(self, name: str, create: bool = False) -> bytes:
        """A random 32-byte data-encryption key for one dataset generation (e.g. a warehouse
        file), wrapped for the roles ``holders(name)`` names. Random, not derived, so it can be
        destroyed on its own: destroying it crypto-shreds every copy of that generation. Made by
        a process that need not hold it (the engineer makes the governance mart's key)."""
        doc = self._reload()  # another process may have created or destroyed it since we opened
        entry = doc.get("data_keys", {}).get(name)
        if entry is None and create:
            with self._changing() as doc:
                keys = doc.setdefault("data_keys", {})
                entry = keys.get(name)
                if entry is None:
                    secret = secrets.token_bytes(32)
                    keys[name] = {"status": "active", "created": _now(),
                                  "wrapped": self._wrapped(doc, "data-key", name, secret, self.holders(name))}
                    return secret
        if entry is None or entry.get("status") == "destroyed":
            raise KeystoreError(f"no usable data-encryption key '{name}'")
        return self._unwrap("data-key", name, entry["wrapped"])

    def holds(self, name: str) -> bool:
        """Whether this process can unwrap data key ``name``."""
        entry = self._reload().get("data_keys", {}).get(name) or {}
        return any(role in entry.get("wrapped", {}) for role in self._private)

    def data_key_names(self, prefix: str = "", include_destroyed: bool = False) -> list[str]:
        """Names of the data-encryption keys starting with ``prefix`` (usable ones only,
        unless ``include_destroyed``)."""
        return sorted(n for n, e in self._reload().get("data_keys", {}).items()
                      if n.startswith(prefix) and (include_destroyed or e.get("status") != "destroyed"))

    def destroy_data_key(self, name: str, missing_ok: bool = False) -> None:
        """Delete a data-encryption key's ciphertext for good (crypto-shredding)."""
        with self._changing() as doc:
            entry = doc.get("data_keys", {}).get(name)
            if entry is None:
                if missing_ok:
                    return
                raise KeystoreError(f"no data-encryption key '{name}'")
            entry.update(status="destroyed", destroyed=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
            entry.pop("wrapped", None)

    # Reading -----------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self._doc.get("label", "")

    def active_version(self) -> int:
        return next(m["version"] for m in self._doc["masters"] if m["status"] == "active")

    def usable_versions(self) -> list[int]:
        return sorted(m["version"] for m in self._doc["masters"] if m["status"] in {"active", "retiring"})

    def status(self) -> list[dict]:
        """Versions, states and dates, with the linkage key id and fingerprint of each usable one."""
        out = []
        for m in self._doc["masters"]:
            row = {k: m[k] for k in ("version", "status", "created") if k in m}
            if m["status"] != "retired" and ENGINEER in self._private:
                key = self.domain_key(KeyDomain.LINKAGE, m["version"])
                row |= {"linkage_key_id": key.key_id, "linkage_fingerprint": key.fingerprint}
            out.append(row)
        return out

    def _master(self, version: int) -> bytes:
        if version not in self._masters:
            entry = next((m for m in self._doc["masters"] if m["version"] == version), None)
            if entry is None or entry["status"] == "retired":
                raise KeystoreError(f"master version {version} is not usable (missing or retired)")
            self._masters[version] = self._unwrap("master", f"v{version}", entry["wrapped"])
        return self._masters[version]

    def certificate_signing_seed(self) -> bytes:
        """The Ed25519 seed that signs destruction certificates: the IG lead's alone."""
        return self._unwrap("secret", CERTIFICATE_SIGNING, self._doc["secrets"][CERTIFICATE_SIGNING]["wrapped"])

    def domain_key(self, domain: KeyDomain | str, version: int | None = None) -> DomainKey:
        """A domain key, derived from a master secret (the engineer's)."""
        if str(domain) == str(KeyDomain.CERTIFICATE_SIGNING):
            raise KeystoreError("certificates are signed with the IG lead's own key: certificate_signing_seed()")
        version = self.active_version() if version is None else version
        return derive_domain_key(self._master(version), domain, version)

    def certificate_signing_public_key(self) -> bytes:
        """The raw Ed25519 public key that checks destruction certificates (public: anyone may check)."""
        return _unb64(self._doc["secrets"][CERTIFICATE_SIGNING]["public"])

    def role_status(self) -> list[dict]:
        """Each role: its credential's kind, whether it still shares the credential it was made
        with, when it last changed, and what is wrapped for it (counts, never keys)."""
        doc = self._reload()
        out = []
        for role, entry in sorted(doc["roles"].items()):
            keys = sum(1 for e in doc.get("data_keys", {}).values() if role in e.get("wrapped", {}))
            masters = sum(1 for m in doc["masters"] if role in m.get("wrapped", {}))
            out.append({"role": role, "credential": entry["credential"], "shared": entry.get("shared", False),
                        "changed": entry.get("changed", ""), "masters": masters, "data_keys": keys,
                        "env": role_env(role), "held": role in self._private})
        return out

    def __repr__(self) -> str:
        return f"LocalKeystore(path={str(self.path)!r}, active=v{self.active_version()})"

    def __reduce__(self):
        raise TypeError("keystores cannot be pickled")
