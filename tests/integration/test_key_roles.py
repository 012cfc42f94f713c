"""Role separation by keys (issue 20): each role's credential opens its own files and nothing else.

On a copy of the demo's data root, every role is given a credential of its own (the demo made them
all under its public passphrase), then each is tried alone against every encrypted file there: the
warehouse, each staged delivery, each mart. What a role may open is what the mart contracts and
``KeyHolders`` say, and every other file stays shut, with the keys wrapped for other roles tried
directly with the role's private key too (not only through the keystore's own checks)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from pipeline.errors import KeystoreError
from pipeline.ingest.staging import read_staged
from pipeline.keys import (
    DEMO_PASSPHRASE,
    KeyDomain,
    KeyEncryptionKey,
    KeyHolders,
    LocalKeystore,
    role_env,
)
from pipeline.keys.store import _aad, unwrap_with
from pipeline.linkage.warehouse import connect
from pipeline.retention.verify import file_key_name
from tests.cli import SYNTHETIC, run_cli
from tests.conftest import CONTRACTS, REPO, copy_root, synthetic_settings

ROLES = ("analyst", "engineer", "ig-lead", "super-user")


def _opens(settings, keystore, path) -> bool:
    """Whether ``keystore`` opens the file for real (DuckDB attaches it and lists its tables; a
    staged Parquet file decrypts)."""
    try:
        if path.suffix == ".parquet":
            return read_staged(settings.staging, path, keystore).num_rows >= 0
        key = keystore.data_key(file_key_name(settings, path))
    except KeystoreError:
        return False
    con = connect()
    try:
        con.execute(f"ATTACH '{path}' AS f (ENCRYPTION_KEY $k, READ_ONLY)", {"k": key.hex()})
        return con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'f'").fetchone()[0] > 0
    finally:
        con.close()


def _kind(settings, path) -> str:
    if path.suffix == ".parquet":
        return "staged"
    if path.parent == settings.warehouse_dir:
        return "warehouse"
    return f"mart:{path.parent.name}"


@pytest.fixture(scope="module")
def separated(demo_root, tmp_path_factory):
    """A copy of the demo root whose roles each have a credential of their own."""
    root = copy_root(demo_root, tmp_path_factory.mktemp("roles") / "demo")
    settings = synthetic_settings(root)
    holders = KeyHolders.from_contracts(CONTRACTS)
    store = LocalKeystore(settings.keystore_path, KeyEncryptionKey(passphrase=DEMO_PASSPHRASE), holders=holders)
    assert set(store.roles) == set(ROLES)
    credentials = {role: secrets.token_bytes(32) for role in ROLES}
    for role in ROLES:
        store.change_credential(role, KeyEncryptionKey(key=credentials[role]))
    files = sorted(p for p in root.rglob("*") if p.is_file() and file_key_name(settings, p))
    return settings, holders, credentials, files


def test_each_role_opens_its_own_files_and_nothing_else(separated):
    settings, holders, credentials, files = separated
    kinds = {_kind(settings, p) for p in files}
    assert {"staged", "warehouse", "mart:person", "mart:linkage", "mart:governance"} <= kinds, kinds
    with pytest.raises(KeystoreError, match="does not open"):  # the demo passphrase no longer opens any role
        LocalKeystore(settings.keystore_path, KeyEncryptionKey(passphrase=DEMO_PASSPHRASE))
    may = {"engineer": {"staged", "warehouse", "mart:person", "mart:linkage"},
           "analyst": {"mart:person"}, "super-user": {"mart:person", "mart:linkage"},
           "ig-lead": {"mart:governance", "mart:linkage"}}
    for role in ROLES:
        alone = LocalKeystore(settings.keystore_path, credentials={role: KeyEncryptionKey(key=credentials[role])},
                              holders=holders)
        opened = {_kind(settings, p) for p in files if _opens(settings, alone, p)}
        shut = {_kind(settings, p) for p in files if not _opens(settings, alone, p)}
        assert opened == may[role], (role, opened)
        assert shut == kinds - may[role], (role, shut)
        # The linkage key (and every domain from a master) is the engineer's alone; the
        # certificate-signing key the IG lead's alone.
        for check, owner in ((lambda s: s.domain_key(KeyDomain.LINKAGE), "engineer"),
                             (lambda s: s.certificate_signing_seed(), "ig-lead")):
            if role == owner:
                check(alone)
            else:
                with pytest.raises(KeystoreError, match="is held by"):
                    check(alone)
        # Another role's credential does not open this role.
        for other in ROLES:
            if other != role:
                with pytest.raises(KeystoreError, match=f"for role '{role}'"):
                    LocalKeystore(settings.keystore_path, credentials={role: KeyEncryptionKey(key=credentials[other])})


def test_keys_wrapped_for_other_roles_do_not_unwrap_with_a_roles_private_key(separated):
    """Below the keystore's own bookkeeping: the analyst's private key, tried on every wrap in the
    file made for another role, fails AES-GCM's check."""
    settings, _holders, credentials, _ = separated
    doc = json.loads(settings.keystore_path.read_text())
    raw = KeyEncryptionKey(key=credentials["analyst"]).open(doc["roles"]["analyst"]["private"],
                                                            _aad("role", "analyst", "analyst"))
    private = X25519PrivateKey.from_private_bytes(raw)
    wraps = [("master", f"v{m['version']}", m["wrapped"]) for m in doc["masters"] if "wrapped" in m]
    wraps += [("data-key", n, e["wrapped"]) for n, e in doc["data_keys"].items() if "wrapped" in e]
    wraps += [("secret", n, e["wrapped"]) for n, e in doc["secrets"].items()]
    tried = 0
    for kind, name, wrapped in wraps:
        for role, blob in wrapped.items():
            if role == "analyst":
                continue
            for aad_role in (role, "analyst"):
                with pytest.raises(InvalidTag):
                    unwrap_with(private, blob, _aad(kind, name, aad_role))
                tried += 1
    assert tried > 20


def test_changing_one_roles_credential_leaves_the_others_working(separated, tmp_path):
    settings, holders, credentials, files = separated
    root = copy_root(settings.data_root, tmp_path / "rotated")
    settings = synthetic_settings(root)
    store = LocalKeystore(settings.keystore_path, credentials={"analyst": KeyEncryptionKey(key=credentials["analyst"])},
                          holders=holders)
    new = secrets.token_bytes(32)
    store.change_credential("analyst", KeyEncryptionKey(key=new))
    with pytest.raises(KeystoreError, match="for role 'analyst'"):
        LocalKeystore(settings.keystore_path, credentials={"analyst": KeyEncryptionKey(key=credentials["analyst"])})
    person = next(p for p in files if _kind(settings, p) == "mart:person").relative_to(separated[0].data_root)
    for role, key in (("analyst", new), *((r, credentials[r]) for r in ROLES if r != "analyst")):
        alone = LocalKeystore(settings.keystore_path, credentials={role: KeyEncryptionKey(key=key)}, holders=holders)
        assert _opens(settings, alone, root / person) == (role != "ig-lead")

    # The CLI, as an analyst runs it: only the analyst's credential in the environment (no
    # engineer's, no demo fallback for the analyst: its own credential is the only one that opens it).
    env = SYNTHETIC | {role_env("analyst"): new.hex()}
    out = run_cli("query", "--role", "analyst", "SELECT count(*) AS n FROM people", root=root, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    wrong = run_cli("query", "--role", "super-user", "SELECT count(*) AS n FROM people", root=root,
                    env=SYNTHETIC | {role_env("super-user"): new.hex()})
    assert wrong.returncode != 0 and "does not open" in wrong.stderr and "Traceback" not in wrong.stderr


def test_plain_duckdb_snippet_from_the_readme_opens_the_marts_with_the_analysts_credential(separated, tmp_path):
    """The README's snippet, run as written in a fresh Python with only the analyst's credential:
    it reads the person mart read-only and cannot reach the linkage mart or write."""
    settings, _holders, credentials, _ = separated
    root = copy_root(settings.data_root, tmp_path / "snippet")
    readme = (REPO / "README.md").read_text()
    snippet = readme.split("<!-- analyst-snippet -->")[1].split("```python")[1].split("```")[0]
    probe = textwrap.dedent(snippet) + textwrap.dedent("""
        import duckdb
        assert con.sql("SELECT count(*) FROM person.people").fetchone()[0] > 1000
        for bad in ("SELECT * FROM linkage.record_linkage", "DELETE FROM person.people"):
            try:
                con.sql(bad).fetchall()
            except duckdb.Error as exc:
                print("refused:", type(exc).__name__)
            else:
                raise SystemExit("not refused: " + bad)
        """)
    env = {k: v for k, v in SYNTHETIC.items() if not k.startswith("SAFEHAVEN_KEK")}
    env |= {"SAFEHAVEN_DATA_ROOT": str(root), role_env("analyst"): credentials["analyst"].hex()}
    out = subprocess.run([sys.executable, "-c", probe], env=os.environ.copy() | env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.count("refused:") == 2
    entry = json.loads((root / "audit" / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["event"] == "marts.attached" and entry["details"]["role"] == "analyst"
    assert entry["details"]["marts"] == ["person"]
