"""A role's key-encryption key in an HSM (issue 20): PKCS#11 against a real SoftHSM2 token.

The token is made per test in a folder of its own (``SOFTHSM2_CONF``); ``make test`` installs
SoftHSM2 (Debian's ``softhsm2``). The AES key is generated inside the token, marked sensitive and
not extractable, and does every seal and open there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from pipeline.errors import KeystoreError
from pipeline.keys import (
    KeyEncryptionKey,
    KeyHolders,
    LocalKeystore,
    Pkcs11Credential,
    credential_from_text,
)
from tests.cli import run_cli
from tests.conftest import CONTRACTS

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
NAME = "lib"

if not (os.path.exists(MODULE) and shutil.which("softhsm2-util")):
    raise RuntimeError("SoftHSM2 is missing: `make hsm` installs it (`make test` and `make test-integration` do)")


@pytest.fixture(scope="module")
def token(tmp_path_factory):
    """A SoftHSM2 token labelled ``safehaven`` for this module, user PIN in SAFEHAVEN_TEST_PIN.
    One per process: SoftHSM reads SOFTHSM2_CONF once, when the library is first initialised."""
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    before = {k: os.environ.get(k) for k in ("SOFTHSM2_CONF", "SAFEHAVEN_TEST_PIN")}
    os.environ |= {"SOFTHSM2_CONF": str(conf), "SAFEHAVEN_TEST_PIN": "4321"}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "safehaven", "--pin", "4321",
                    "--so-pin", "8765"], check=True, capture_output=True)
    yield conf
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _uri(label: str, pin: str = "pin-source=env:SAFEHAVEN_TEST_PIN") -> str:
    return f"pkcs11:token=safehaven;object={label}?module-path={MODULE}&{pin}"


def test_a_role_whose_credential_is_an_hsm_key_opens_its_keys_and_nothing_else(token, tmp_path):
    import pkcs11
    from pkcs11 import Attribute, KeyType

    analyst = credential_from_text(_uri(f"analyst-kek-{NAME}"))
    assert isinstance(analyst, Pkcs11Credential)
    analyst.create_key()
    analyst.create_key()  # idempotent: the key is made once
    holders = KeyHolders.from_contracts(CONTRACTS)
    engineer = KeyEncryptionKey(key=os.urandom(32))
    store = LocalKeystore.create(tmp_path / "keystore.json", engineer, credentials={"analyst": analyst},
                                 roles=holders.roles, holders=holders)
    person = store.data_key("mart-person-1", create=True)
    store.data_key("warehouse-g1", create=True)
    assert store.role_status()[0] | {"changed": ""} == {
        "role": "analyst", "credential": "pkcs11", "shared": False, "changed": "", "masters": 0, "data_keys": 1,
        "env": "SAFEHAVEN_KEK_ANALYST", "held": True}

    alone = LocalKeystore(store.path, credentials={"analyst": credential_from_text(_uri(f"analyst-kek-{NAME}"))},
                          holders=holders)
    assert alone.roles == ("analyst",) and alone.data_key("mart-person-1") == person
    with pytest.raises(KeystoreError, match="held by engineer"):
        alone.data_key("warehouse-g1")
    # The engineer's local key does not open the analyst's role, nor another HSM key, nor a wrong PIN.
    with pytest.raises(KeystoreError, match="for role 'analyst'"):
        LocalKeystore(store.path, credentials={"analyst": engineer})
    other = credential_from_text(_uri("someone-else"))
    other.create_key()
    with pytest.raises(KeystoreError, match="for role 'analyst'"):
        LocalKeystore(store.path, credentials={"analyst": other})
    with pytest.raises(KeystoreError, match="PKCS#11 token 'safehaven'"):
        LocalKeystore(store.path, credentials={"analyst": credential_from_text(_uri(f"analyst-kek-{NAME}", "pin-value=0000"))})

    # The key lives in the token only: sensitive, never extractable.
    with pkcs11.lib(MODULE).get_token(token_label="safehaven").open(user_pin="4321") as session:
        key = session.get_key(label=f"analyst-kek-{NAME}", key_type=KeyType.AES)
        assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]


def test_keys_init_and_credential_change_through_the_cli_with_an_hsm(token, tmp_path):
    """`safehaven keys init` with the IG lead's credential in the HSM, then the analyst moved into
    it by `safehaven keys credential`: the engineer's keys are untouched throughout."""
    root = tmp_path / "data"
    engineer = os.urandom(32).hex()
    env = {"SAFEHAVEN_KEK": engineer, "SAFEHAVEN_KEK_IG_LEAD": _uri("ig-lead-kek"),
           "SAFEHAVEN_KEK_ANALYST": "passphrase:an analyst's long passphrase", "SOFTHSM2_CONF": str(token),
           "SAFEHAVEN_TEST_PIN": "4321"}
    made = run_cli("keys", "init", root=root, env=env)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "pkcs11" in made.stdout and "shares the" in made.stdout  # super-user has none of its own
    holders = KeyHolders.from_contracts(CONTRACTS)
    path = root / "keys" / "keystore.json"
    roles = json.loads(path.read_text())["roles"]
    assert {r: (e["credential"], e["shared"]) for r, e in roles.items()} == {
        "engineer": ("key", False), "ig-lead": ("pkcs11", False), "analyst": ("scrypt", False),
        "super-user": ("key", True)}
    assert LocalKeystore(path, credentials={"ig-lead": credential_from_text(_uri("ig-lead-kek"))},
                         holders=holders).certificate_signing_seed()

    moved = run_cli("keys", "credential", "--role", "analyst", root=root,
                    env=env | {"SAFEHAVEN_NEW_KEK": _uri(f"analyst-kek-{NAME}")})
    assert moved.returncode == 0, moved.stdout + moved.stderr
    with pytest.raises(KeystoreError, match="for role 'analyst'"):
        LocalKeystore(path, credentials={"analyst": credential_from_text(env["SAFEHAVEN_KEK_ANALYST"])})
    LocalKeystore(path, credentials={"analyst": credential_from_text(_uri(f"analyst-kek-{NAME}"))})
    engineer_store = LocalKeystore(path, credentials={"engineer": credential_from_text(engineer)}, holders=holders)
    assert engineer_store.domain_key("riskstrat/linkage").fingerprint
    audit = (root / "audit" / "audit.jsonl").read_text()
    assert '"keys.credential_changed"' in audit and engineer not in audit and "4321" not in audit
