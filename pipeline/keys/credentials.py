"""Credentials: what unlocks one role's private key in the keystore.

A credential seals and opens a small secret (the role's X25519 private key) with AES-256-GCM.
It is the *key-encryption key* of that role, and it can live in one of three places:

- ``KeyEncryptionKey(key=...)``: 32 bytes given in the environment (hex or base64);
- ``KeyEncryptionKey(passphrase=...)``: derived with scrypt from a passphrase;
- ``Pkcs11Credential``: an AES key inside a hardware security module or any PKCS#11 token
  (SoftHSM2 in the tests), named by a PKCS#11 URI (RFC 7512). The key never leaves the token:
  the token encrypts and decrypts. Another key manager implements the same two methods.

``credential_from_text`` reads the forms the settings accept: 64 hex or 44 base64 characters,
``passphrase:<text>`` or ``pkcs11:token=<label>;object=<key label>?module-path=<library>&pin-source=env:<VAR>``.
"""

from __future__ import annotations

import base64
import os
import secrets
from typing import Protocol
from urllib.parse import parse_qsl, unquote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pipeline.errors import KeystoreError

__all__ = ["Credential", "KeyEncryptionKey", "Pkcs11Credential", "credential_from_text"]

SCRYPT = {"n": 2**15, "r": 8, "p": 1}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


class WrongCredential(KeystoreError):
    """The credential does not open what it was given."""


class Credential(Protocol):
    """Seals and opens a small secret; ``kind`` names where the key-encryption key lives."""

    kind: str

    def seal(self, secret: bytes, aad: bytes) -> dict: ...

    def open(self, sealed: dict, aad: bytes) -> bytes: ...


class KeyEncryptionKey:
    """A key-encryption key held by this process: 32 bytes, or scrypt of a passphrase. Holds the
    secret without ever showing it."""

    def __init__(self, *, key: bytes | None = None, passphrase: str | None = None):
        if (key is None) == (passphrase is None):
            raise KeystoreError("give exactly one of a key-encryption key or a passphrase")
        if key is not None and len(key) != 32:
            raise KeystoreError("a key-encryption key must be 32 bytes (64 hex or 44 base64 characters)")
        self._key, self._passphrase = key, passphrase
        self._derived: dict[str, bytes] = {}  # salt -> key: one scrypt per salt per process
        self._salt: str | None = None  # the salt this credential seals with (one per instance)

    @classmethod
    def from_text(cls, kek: str | None, passphrase: str | None = None) -> KeyEncryptionKey:
        """From settings: a key (hex or base64) wins over a passphrase."""
        if kek:
            text = kek.strip()
            if text.startswith("passphrase:"):
                return cls(passphrase=text.removeprefix("passphrase:"))
            try:
                raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
            except ValueError:
                raise KeystoreError("a key-encryption key must be 32 bytes as 64 hex or base64 characters, "
                                    "'passphrase:<text>' or a 'pkcs11:' URI") from None
            return cls(key=raw)
        if passphrase:
            return cls(passphrase=passphrase)
        raise KeystoreError(
            "no key-encryption key: set SAFEHAVEN_KEK (32 bytes, hex or base64, or a pkcs11: URI) or "
            "SAFEHAVEN_KEYSTORE_PASSPHRASE; looked in the environment and the command line"
        )

    @property
    def kind(self) -> str:
        return "key" if self._key is not None else "scrypt"

    def _aes(self, sealed: dict) -> AESGCM:
        if self._key is not None:
            return AESGCM(self._key)
        salt = sealed["salt"]
        if salt not in self._derived:
            params = sealed.get("scrypt", SCRYPT)
            kdf = Scrypt(salt=_unb64(salt), length=32, n=params["n"], r=params["r"], p=params["p"])
            self._derived[salt] = kdf.derive(self._passphrase.encode("utf-8"))
        return AESGCM(self._derived[salt])

    def seal(self, secret: bytes, aad: bytes) -> dict:
        sealed: dict = {"kind": self.kind}
        if self._passphrase is not None:
            self._salt = self._salt or _b64(secrets.token_bytes(16))
            sealed |= {"salt": self._salt, "scrypt": SCRYPT}
        nonce = secrets.token_bytes(12)
        return sealed | {"nonce": _b64(nonce), "ciphertext": _b64(self._aes(sealed).encrypt(nonce, secret, aad))}

    def open(self, sealed: dict, aad: bytes) -> bytes:
        if sealed.get("kind") != self.kind:
            raise WrongCredential(f"sealed with a {sealed.get('kind')} credential, given a {self.kind} one")
        try:
            return self._aes(sealed).decrypt(_unb64(sealed["nonce"]), _unb64(sealed["ciphertext"]), aad)
        except InvalidTag:
            raise WrongCredential("the credential does not open it") from None

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(kind={self.kind!r})"

    def __reduce__(self):
        raise TypeError("key-encryption keys cannot be pickled")


class Pkcs11Credential:
    """An AES key in a PKCS#11 token: the token seals (AES-GCM) and opens; the key never leaves it.

    ``uri``: ``pkcs11:token=<token label>;object=<key label>?module-path=<library .so>&pin-source=env:<VAR>``
    (``pin-value=`` works too, for tests; a PIN in an environment variable keeps it out of the URI).
    ``create_key`` makes the AES-256 key in the token (sensitive, not extractable) if it is not there."""

    kind = "pkcs11"

    def __init__(self, uri: str):
        if not uri.startswith("pkcs11:"):
            raise KeystoreError("a PKCS#11 credential is a 'pkcs11:' URI")
        path, _, query = uri.removeprefix("pkcs11:").partition("?")
        attrs = dict(part.split("=", 1) for part in path.split(";") if "=" in part)
        params = dict(parse_qsl(query, keep_blank_values=True))
        self.token = unquote(attrs.get("token", ""))
        self.label = unquote(attrs.get("object", ""))
        self.module = params.get("module-path") or os.environ.get("SAFEHAVEN_PKCS11_MODULE", "")
        if not (self.token and self.label and self.module):
            raise KeystoreError("a pkcs11: URI needs token=<label>;object=<key label> and module-path=<library> "
                                "(or SAFEHAVEN_PKCS11_MODULE)")
        source = params.get("pin-source", "")
        if source.startswith("env:"):
            self._pin = os.environ.get(source.removeprefix("env:"))
            if self._pin is None:
                raise KeystoreError(f"the PKCS#11 PIN variable {source.removeprefix('env:')} is not set")
        else:
            self._pin = params.get("pin-value")

    def _session(self, rw: bool = False):
        import pkcs11

        try:
            token = pkcs11.lib(self.module).get_token(token_label=self.token)
            return token.open(user_pin=self._pin, rw=rw)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise KeystoreError(f"PKCS#11 token '{self.token}' ({self.module}): {type(exc).__name__}") from None

    def create_key(self) -> None:
        import pkcs11
        from pkcs11 import Attribute, KeyType

        with self._session(rw=True) as session:
            try:
                session.get_key(label=self.label, key_type=KeyType.AES)
                return
            except pkcs11.NoSuchKey:
                pass
            session.generate_key(KeyType.AES, 256, label=self.label, store=True,
                                 template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})

    def _crypt(self, encrypt: bool, data: bytes, nonce: bytes, aad: bytes) -> bytes:
        import pkcs11
        from pkcs11 import KeyType, Mechanism
        from pkcs11.mechanisms import GCMParams

        with self._session() as session:
            try:
                key = session.get_key(label=self.label, key_type=KeyType.AES)
            except pkcs11.PKCS11Error:
                raise KeystoreError(f"no AES key '{self.label}' in PKCS#11 token '{self.token}'") from None
            try:
                op = key.encrypt if encrypt else key.decrypt
                return bytes(op(data, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad)))
            except pkcs11.PKCS11Error:
                raise WrongCredential(f"PKCS#11 key '{self.label}' does not open it") from None

    def seal(self, secret: bytes, aad: bytes) -> dict:
        nonce = secrets.token_bytes(12)
        return {"kind": self.kind, "token": self.token, "object": self.label, "nonce": _b64(nonce),
                "ciphertext": _b64(self._crypt(True, secret, nonce, aad))}

    def open(self, sealed: dict, aad: bytes) -> bytes:
        if sealed.get("kind") != self.kind:
            raise WrongCredential(f"sealed with a {sealed.get('kind')} credential, given a PKCS#11 key")
        return self._crypt(False, _unb64(sealed["ciphertext"]), _unb64(sealed["nonce"]), aad)

    def __repr__(self) -> str:
        return f"Pkcs11Credential(token={self.token!r}, object={self.label!r})"

    def __reduce__(self):
        raise TypeError("credentials cannot be pickled")


def credential_from_text(kek: str | None, passphrase: str | None = None) -> Credential:
    """The credential a setting names: a ``pkcs11:`` URI, a key, ``passphrase:<text>``, or the
    separate passphrase setting."""
    if kek and kek.strip().startswith("pkcs11:"):
        return Pkcs11Credential(kek.strip())
    return KeyEncryptionKey.from_text(kek, passphrase)
