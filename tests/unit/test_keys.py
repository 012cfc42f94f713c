"""Keystore and domain keys: encryption at rest, HKDF domains, rotation, and no leaks."""

import json
import logging
import pickle

import pytest

from pipeline.errors import KeystoreError
from pipeline.keys import (
    KeyDomain,
    KeyEncryptionKey,
    LocalKeystore,
    derive_domain_key,
    open_keystore,
)
from pipeline.pseudonymise import pseudonym
from pipeline.settings import Settings


@pytest.fixture
def store(tmp_path):
    return LocalKeystore.create(tmp_path / "keys" / "keystore.json", KeyEncryptionKey(passphrase="correct horse"))


def test_hkdf_domains_are_separate_and_deterministic():
    master = bytes(range(32))
    a = derive_domain_key(master, KeyDomain.LINKAGE, 1)
    assert a.material == derive_domain_key(master, KeyDomain.LINKAGE, 1).material
    assert len(a.material) == 64 and a.material.decode().isalnum()
    others = {derive_domain_key(master, d, 1).material for d in KeyDomain} | {derive_domain_key(master, KeyDomain.LINKAGE, 2).material}
    assert len(others) == len(KeyDomain) + 1
    assert pseudonym("4505577104", a.material) != pseudonym("4505577104", derive_domain_key(master, KeyDomain.REIDENTIFICATION, 1).material)


def test_keystore_file_holds_no_secret_in_clear(store, tmp_path):
    key = store.domain_key(KeyDomain.LINKAGE)
    text = store.path.read_text()
    assert key.material.decode() not in text
    assert "correct horse" not in text
    assert oct(store.path.stat().st_mode)[-3:] == "600"
    reopened = LocalKeystore(store.path, KeyEncryptionKey(passphrase="correct horse"))
    assert reopened.domain_key(KeyDomain.LINKAGE).material == key.material


def test_wrong_passphrase_or_kek_is_refused(store):
    with pytest.raises(KeystoreError):
        LocalKeystore(store.path, KeyEncryptionKey(passphrase="wrong"))
    with pytest.raises(KeystoreError):
        LocalKeystore.create(store.path, KeyEncryptionKey(passphrase="x"))  # never overwritten


def test_tampered_master_fails_integrity(store):
    doc = json.loads(store.path.read_text())
    doc["masters"][0]["version"] = 7  # ciphertext bound to version 1 by its AAD
    doc["masters"][0]["status"] = "active"
    store.path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError):
        LocalKeystore(store.path, KeyEncryptionKey(passphrase="correct horse")).domain_key(KeyDomain.LINKAGE)


def test_rotation_keeps_old_and_new_usable_then_retires(store):
    old = store.domain_key(KeyDomain.LINKAGE)
    assert store.rotate() == 2
    assert store.usable_versions() == [1, 2] and store.active_version() == 2
    new = store.domain_key(KeyDomain.LINKAGE)
    assert new.fingerprint != old.fingerprint
    assert store.domain_key(KeyDomain.LINKAGE, 1).material == old.material
    store.retire(1)
    assert store.usable_versions() == [2]
    with pytest.raises(KeystoreError):
        store.domain_key(KeyDomain.LINKAGE, 1)
    assert "ciphertext" not in json.loads(store.path.read_text())["masters"][0]
    with pytest.raises(KeystoreError):
        store.retire(2)


def test_keys_never_show_their_material(store, caplog):
    key = store.domain_key(KeyDomain.LINKAGE)
    secret = key.material.decode()
    assert secret not in repr(key) and secret not in str(key) and secret not in f"{key}"
    assert secret not in repr(store)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        pickle.dumps(store)
    with caplog.at_level(logging.INFO):
        logging.getLogger("safehaven.test").info("using %s", key)
    assert secret not in caplog.text


def test_settings_redact_secrets(tmp_path):
    s = Settings(data_root=tmp_path, keystore_passphrase="hunter2-passphrase", kek="ab" * 32)
    dumped = repr(s) + str(s) + s.model_dump_json()
    assert "hunter2-passphrase" not in dumped and "ab" * 32 not in dumped


def test_kek_from_environment_text(tmp_path):
    s = Settings(data_root=tmp_path, kek="0f" * 32)
    created = open_keystore(s, create_demo=True)
    assert open_keystore(s).domain_key(KeyDomain.AUDIT).material == created.domain_key(KeyDomain.AUDIT).material
    with pytest.raises(KeystoreError):
        KeyEncryptionKey.from_text("not-a-key", None)
    with pytest.raises(KeystoreError) as exc:
        KeyEncryptionKey.from_text(None, None)
    assert "SAFEHAVEN_KEK" in str(exc.value)


def test_demo_keystore_is_labelled(tmp_path):
    store = open_keystore(Settings(data_root=tmp_path), create_demo=True)
    assert "DEMO" in store.label


def test_data_keys_are_random_per_generation_and_can_be_destroyed(store):
    first = store.data_key("warehouse-g1", create=True)
    assert store.data_key("warehouse-g1") == first and len(first) == 32
    second = store.data_key("warehouse-g2", create=True)
    assert second != first
    assert first.hex() not in store.path.read_text()
    store.destroy_data_key("warehouse-g1")
    with pytest.raises(KeystoreError):
        store.data_key("warehouse-g1")
    with pytest.raises(KeystoreError):
        store.data_key("warehouse-g1", create=True)  # a destroyed generation is never re-created
    assert store.data_key("warehouse-g2") == second


def test_two_keystore_handles_never_lose_each_others_keys(store):
    """Flows open the keystore in several tasks and processes: a change made through one
    handle is seen by the others, and a later change through a stale handle keeps it."""
    other = LocalKeystore(store.path, KeyEncryptionKey(passphrase="correct horse"))
    first = store.data_key("warehouse-g1", create=True)
    assert other.data_key("warehouse-g1") == first  # created after `other` was opened
    other.data_key("mart-person-1", create=True)
    store.data_key("mart-person-2", create=True)  # through the handle that has not seen mart-person-1
    assert other.data_key_names("mart-person-") == ["mart-person-1", "mart-person-2"]
    other.destroy_data_key("warehouse-g1")
    with pytest.raises(KeystoreError):
        store.data_key("warehouse-g1")  # shredded through the other handle
    with pytest.raises(KeystoreError):
        store.data_key("warehouse-g1", create=True)  # a destroyed name is never issued again


def test_threads_sharing_one_handle_never_lose_each_others_keys(store):
    """Ingest creates staged-file keys from several threads through one keystore handle. A
    thread reloading the handle's document while another writes must not drop the other's key
    (it did once: a staged file was left with no key, unreadable)."""
    from concurrent.futures import ThreadPoolExecutor

    names = [f"staged:feed/table/2024-{i:03d}__v1" for i in range(500)]

    def make(name):
        key = store.data_key(name, create=True)
        store.data_key_names("staged:")  # reloads, as other readers do, in between
        return key

    with ThreadPoolExecutor(max_workers=16) as pool:
        made = dict(zip(names, pool.map(make, names), strict=True))
    fresh = LocalKeystore(store.path, KeyEncryptionKey(passphrase="correct horse"))
    assert fresh.data_key_names("staged:") == sorted(names)
    assert all(fresh.data_key(name) == key for name, key in made.items())
