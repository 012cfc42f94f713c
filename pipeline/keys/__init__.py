"""Keys: a keystore of versioned master secrets, data keys and HKDF-derived domain keys, each
wrapped for the roles that may use it and unlocked by each role's own credential.

Keys never appear in logs, SQL text, serialised plans, settings reprs or Prefect: key objects
show only ids and fingerprints and refuse to be pickled; flows pass key *ids*.
"""

from pipeline.errors import KeystoreError
from pipeline.keys.credentials import (
    Credential,
    KeyEncryptionKey,
    Pkcs11Credential,
    credential_from_text,
)
from pipeline.keys.domains import DomainKey, KeyDomain, derive_domain_key, fingerprint_of
from pipeline.keys.roles import ENGINEER, IG_LEAD, KeyHolders, role_credential_text, role_env
from pipeline.keys.store import DEMO_PASSPHRASE, Keystore, LocalKeystore

__all__ = [
    "ALL_ROLES",
    "DEMO_PASSPHRASE",
    "ENGINEER",
    "IG_LEAD",
    "Credential",
    "DomainKey",
    "KeyDomain",
    "KeyEncryptionKey",
    "KeyHolders",
    "Keystore",
    "LocalKeystore",
    "Pkcs11Credential",
    "credential_from_text",
    "derive_domain_key",
    "fingerprint_of",
    "open_keystore",
    "role_credential",
    "role_env",
]


def role_credential(settings, role: str, demo: bool = False) -> Credential | None:
    """A role's credential from the settings and environment: the engineer's is SAFEHAVEN_KEK or
    SAFEHAVEN_KEYSTORE_PASSPHRASE; another role's is SAFEHAVEN_KEK_<ROLE> (a key, 'passphrase:...'
    or a 'pkcs11:' URI). With ``demo``, a role with none set gets the demo keystore's public passphrase."""
    if role == ENGINEER:
        kek = settings.kek.get_secret_value() if settings.kek else None
        passphrase = settings.keystore_passphrase.get_secret_value() if settings.keystore_passphrase else None
    else:
        kek, passphrase = role_credential_text(role), None
    if kek or passphrase:
        return credential_from_text(kek, passphrase)
    return _demo_credential() if demo else None


_DEMO: list = []


def _demo_credential() -> KeyEncryptionKey:
    """One demo credential per process, so every role of the demo keystore costs one scrypt."""
    if not _DEMO:
        _DEMO.append(KeyEncryptionKey(passphrase=DEMO_PASSPHRASE))
    return _DEMO[0]


#: ``open_keystore(..., roles=ALL_ROLES)``: every role the keystore has (tools that must read every
#: file, like the tests' leak scans; a deployment never holds them all in one place).
ALL_ROLES = ("*",)


def open_keystore(settings, create_demo: bool = False, roles: tuple[str, ...] = (ENGINEER,)) -> LocalKeystore:
    """The keystore at ``settings.keystore_path``, opened with the credentials of ``roles`` only.
    With ``create_demo``, a missing keystore is created as a clearly labelled demo keystore (every
    role under the public demo passphrase unless its own credential is set; synthetic data only),
    and a role with no credential set falls back to that passphrase."""
    holders = KeyHolders.from_contracts(settings.contracts_dir)
    if tuple(roles) == ALL_ROLES:
        roles = tuple(sorted(_roles_on_disk(settings.keystore_path))) or holders.roles
    if create_demo and not settings.keystore_path.exists():
        credentials = {r: c for r in holders.roles if (c := role_credential(settings, r)) is not None}
        LocalKeystore.create(settings.keystore_path, _demo_credential(),
                             label="DEMO KEYSTORE: synthetic data only. Never use it for real extracts.",
                             credentials=credentials, roles=holders.roles, holders=holders)
        return LocalKeystore(settings.keystore_path, holders=holders,
                             credentials={r: credentials.get(r, _demo_credential()) for r in roles})
    credentials = {}
    for role in roles:
        credential = role_credential(settings, role, demo=create_demo)
        shared = _roles_on_disk(settings.keystore_path).get(role, {}).get("shared")
        if credential is None and role != ENGINEER and shared:
            credential = role_credential(settings, ENGINEER)  # one operator, one credential (keys status warns)
        if credential is None:
            raise KeystoreError(f"no credential for role '{role}': set {role_env(role)}"
                                + (" (or SAFEHAVEN_KEYSTORE_PASSPHRASE)" if role == ENGINEER else "")
                                + "; looked in the environment and the command line")
        credentials[role] = credential
    return LocalKeystore(settings.keystore_path, credentials=credentials, holders=holders)



def _roles_on_disk(path) -> dict:
    """The keystore file's role entries (public data only), or {} when there is none to read."""
    import json

    try:
        return json.loads(path.read_text())["roles"]
    except (OSError, ValueError, KeyError):
        return {}
