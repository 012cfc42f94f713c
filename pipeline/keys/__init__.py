"""Keys: a keystore of versioned master secrets and HKDF-derived domain keys.

Keys never appear in logs, SQL text, serialised plans, settings reprs or Prefect: key objects
show only ids and fingerprints and refuse to be pickled; flows pass key *ids*.
"""

from pipeline.keys.domains import DomainKey, KeyDomain, derive_domain_key, fingerprint_of
from pipeline.keys.store import DEMO_PASSPHRASE, KeyEncryptionKey, Keystore, LocalKeystore

__all__ = [
    "DEMO_PASSPHRASE",
    "DomainKey",
    "KeyDomain",
    "KeyEncryptionKey",
    "Keystore",
    "LocalKeystore",
    "derive_domain_key",
    "fingerprint_of",
    "open_keystore",
]


def open_keystore(settings, create_demo: bool = False) -> LocalKeystore:
    """The keystore at ``settings.keystore_path``. With ``create_demo``, a missing keystore is
    created as a clearly labelled demo keystore (public passphrase, synthetic data only)."""
    kek_text = settings.kek.get_secret_value() if settings.kek else None
    passphrase = settings.keystore_passphrase.get_secret_value() if settings.keystore_passphrase else None
    if create_demo and not settings.keystore_path.exists():
        if not (kek_text or passphrase):
            passphrase = DEMO_PASSPHRASE
        kek = KeyEncryptionKey.from_text(kek_text, passphrase)
        return LocalKeystore.create(
            settings.keystore_path, kek,
            label="DEMO KEYSTORE: synthetic data only. Never use it for real extracts.",
        )
    if create_demo and not (kek_text or passphrase):
        passphrase = DEMO_PASSPHRASE
    return LocalKeystore(settings.keystore_path, KeyEncryptionKey.from_text(kek_text, passphrase))
