"""The keystore: master secrets, versioned, encrypted at rest; domain keys derived on demand.

``Keystore`` is the interface (a KMS or HSM can implement it). ``LocalKeystore`` keeps master
secrets in one JSON file under the data root (``keys/keystore.json``), each encrypted with
AES-256-GCM under a key-encryption key (KEK) that never touches the disk: either 32 bytes from
``SAFEHAVEN_KEK`` (hex or base64), or derived with scrypt from ``SAFEHAVEN_KEYSTORE_PASSPHRASE``.

Rotation: ``rotate()`` adds master version n+1 as active and marks n as *retiring*: both stay
usable during the overlap, so ingest can write an old-to-new pseudonym bridge; ``retire(n)``
then makes n unusable. A retired master's ciphertext is deleted from the file.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pipeline.errors import KeystoreError
from pipeline.keys.domains import DomainKey, KeyDomain, derive_domain_key

__all__ = ["DEMO_PASSPHRASE", "FORMAT", "KeyEncryptionKey", "Keystore", "LocalKeystore"]

FORMAT = "safehaven-keystore/1"
DEMO_PASSPHRASE = "safehaven-demo-keystore: synthetic data only, this passphrase is public"  # noqa: S105 - public by design
_CHECK = b"safehaven keystore check"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


class KeyEncryptionKey:
    """Where the KEK comes from; holds the secret without ever showing it."""

    def __init__(self, *, key: bytes | None = None, passphrase: str | None = None):
        if (key is None) == (passphrase is None):
            raise KeystoreError("give exactly one of a key-encryption key or a passphrase")
        if key is not None and len(key) != 32:
            raise KeystoreError("a key-encryption key must be 32 bytes (64 hex or 44 base64 characters)")
        self._key, self._passphrase = key, passphrase

    @classmethod
    def from_text(cls, kek: str | None, passphrase: str | None) -> KeyEncryptionKey:
        """From settings: ``SAFEHAVEN_KEK`` wins over ``SAFEHAVEN_KEYSTORE_PASSPHRASE``."""
        if kek:
            text = kek.strip()
            try:
                raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
            except ValueError:
                raise KeystoreError("SAFEHAVEN_KEK must be 32 bytes as 64 hex or base64 characters") from None
            return cls(key=raw)
        if passphrase:
            return cls(passphrase=passphrase)
        raise KeystoreError(
            "no key-encryption key: set SAFEHAVEN_KEK (32 bytes, hex or base64) or "
            "SAFEHAVEN_KEYSTORE_PASSPHRASE; looked in the environment and the command line"
        )

    @property
    def kind(self) -> str:
        return "key" if self._key is not None else "scrypt"

    def derive(self, params: dict) -> bytes:
        if self._key is not None:
            return self._key
        kdf = Scrypt(salt=_unb64(params["salt"]), length=32, n=params["n"], r=params["r"], p=params["p"])
        return kdf.derive(self._passphrase.encode("utf-8"))

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(kind={self.kind!r})"

    def __reduce__(self):
        raise TypeError("key-encryption keys cannot be pickled")


class Keystore(Protocol):
    """What the pipeline needs from a keystore (a KMS-backed one implements the same)."""

    def domain_key(self, domain: KeyDomain | str, version: int | None = None) -> DomainKey: ...

    def active_version(self) -> int: ...

    def usable_versions(self) -> list[int]: ...

    def data_key(self, name: str, create: bool = False) -> bytes: ...

    def data_key_names(self, prefix: str = "", include_destroyed: bool = False) -> list[str]: ...

    def destroy_data_key(self, name: str, missing_ok: bool = False) -> None: ...


class LocalKeystore:
    """Master secrets in an encrypted file; see the module docstring."""

    def __init__(self, path: Path, kek: KeyEncryptionKey):
        self.path = Path(path)
        if not self.path.exists():
            raise KeystoreError(f"no keystore at {self.path}; create one with 'safehaven keys init'")
        self._doc = json.loads(self.path.read_text())
        if self._doc.get("format") != FORMAT:
            raise KeystoreError(f"{self.path} is not a {FORMAT} file")
        self._kek = kek.derive(self._doc["kek"])
        try:
            AESGCM(self._kek).decrypt(_unb64(self._doc["check"]["nonce"]), _unb64(self._doc["check"]["ciphertext"]), _CHECK)
        except InvalidTag:
            raise KeystoreError(
                f"the key-encryption key or passphrase does not open {self.path}"
            ) from None
        self._masters: dict[int, bytes] = {}

    # Creating ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, kek: KeyEncryptionKey, label: str = "") -> LocalKeystore:
        path = Path(path)
        if path.exists():
            raise KeystoreError(f"a keystore already exists at {path}; it is never overwritten")
        params = {"kind": kek.kind}
        if kek.kind == "scrypt":
            params |= {"salt": _b64(secrets.token_bytes(16)), "n": 2**15, "r": 8, "p": 1}
        raw_kek = kek.derive(params)
        nonce = secrets.token_bytes(12)
        doc = {
            "format": FORMAT,
            "label": label,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "kek": params,
            "check": {"nonce": _b64(nonce), "ciphertext": _b64(AESGCM(raw_kek).encrypt(nonce, _CHECK, _CHECK))},
            "masters": [],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        cls._write(path, doc)
        store = cls(path, kek)
        store._add_master()
        return store

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
            nonce = secrets.token_bytes(12)
            aad = f"safehaven-master:v{version}".encode()
            for m in doc["masters"]:
                if m["status"] == "active":
                    m["status"] = "retiring"
            doc["masters"].append({
                "version": version,
                "status": "active",
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "nonce": _b64(nonce),
                "ciphertext": _b64(AESGCM(self._kek).encrypt(nonce, secret, aad)),
            })
        return version

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
                    m.pop("nonce", None)
                    m.pop("ciphertext", None)
                    self._masters.pop(version, None)
                    return
        raise KeystoreError(f"no master version {version}")

    # Data-encryption keys ----------------------------------------------------------------
    def data_key(self, name: str, create: bool = False) -> bytes:
        """A random 32-byte data-encryption key for one dataset generation (e.g. a warehouse
        file), stored wrapped under the KEK. Random, not derived, so it can be destroyed on its
        own: destroying it crypto-shreds every copy of that generation."""
        doc = self._reload()  # another process may have created or destroyed it since we opened
        entry = doc.get("data_keys", {}).get(name)
        aad = f"safehaven-data-key:{name}".encode()
        if entry is None and create:
            with self._changing() as doc:
                keys = doc.setdefault("data_keys", {})
                entry = keys.get(name)
                if entry is None:
                    secret, nonce = secrets.token_bytes(32), secrets.token_bytes(12)
                    keys[name] = {"status": "active", "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                  "nonce": _b64(nonce),
                                  "ciphertext": _b64(AESGCM(self._kek).encrypt(nonce, secret, aad))}
                    return secret
        if entry is None or entry.get("status") == "destroyed":
            raise KeystoreError(f"no usable data-encryption key '{name}'")
        try:
            return AESGCM(self._kek).decrypt(_unb64(entry["nonce"]), _unb64(entry["ciphertext"]), aad)
        except InvalidTag:
            raise KeystoreError(f"data-encryption key '{name}' failed its integrity check") from None

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
            entry.pop("nonce", None)
            entry.pop("ciphertext", None)

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
            if m["status"] != "retired":
                key = self.domain_key(KeyDomain.LINKAGE, m["version"])
                row |= {"linkage_key_id": key.key_id, "linkage_fingerprint": key.fingerprint}
            out.append(row)
        return out

    def _master(self, version: int) -> bytes:
        if version not in self._masters:
            entry = next((m for m in self._doc["masters"] if m["version"] == version), None)
            if entry is None or entry["status"] == "retired":
                raise KeystoreError(f"master version {version} is not usable (missing or retired)")
            aad = f"safehaven-master:v{version}".encode()
            try:
                self._masters[version] = AESGCM(self._kek).decrypt(_unb64(entry["nonce"]), _unb64(entry["ciphertext"]), aad)
            except InvalidTag:
                raise KeystoreError(f"master version {version} failed its integrity check") from None
        return self._masters[version]

    def domain_key(self, domain: KeyDomain | str, version: int | None = None) -> DomainKey:
        version = self.active_version() if version is None else version
        return derive_domain_key(self._master(version), domain, version)

    def __repr__(self) -> str:
        return f"LocalKeystore(path={str(self.path)!r}, active=v{self.active_version()})"

    def __reduce__(self):
        raise TypeError("keystores cannot be pickled")
