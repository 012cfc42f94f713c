"""The command line, run as a person runs it (a subprocess): exit codes and messages."""

import json
import os
import shutil
import subprocess
import sys

import yaml

from tests.conftest import CONTRACTS, ECDS_ROW

SAFEHAVEN = [sys.executable, "-m", "pipeline.cli"]


def run(*args, env=None, cwd=None):
    full_env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", **(env or {})}
    return subprocess.run([*SAFEHAVEN, *args], check=False, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300)


def test_contracts_check_passes_on_the_repository():
    out = run("contracts", "check", "--as-of", "2026-04-15", "--data-root", "/tmp/safehaven-cli-check")
    assert out.returncode == 0, out.stderr
    assert "All 11 contracts pass" in out.stdout


def test_contracts_check_lists_problems_with_file_and_field(tmp_path):
    folder = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, folder)
    doc = yaml.safe_load((folder / "ecds.odcs.yaml").read_text())
    doc["status"] = "retired"
    (folder / "ecds.odcs.yaml").write_text(yaml.safe_dump(doc))
    out = run("contracts", "check", "--contracts-dir", str(folder), "--data-root", str(tmp_path / "d"),
              "--as-of", "2026-04-15")
    assert out.returncode == 2
    assert "ecds.odcs.yaml: status:" in out.stderr


def test_validate_exits_non_zero_when_quarantined_and_names_the_column(tmp_path):
    landing = tmp_path / "data" / "landing" / "ecds"
    landing.mkdir(parents=True)
    path = landing / "ecds_attendances_2025-06_v1.csv"
    row = dict(ECDS_ROW, patient_name="Jean Smith")
    path.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
    out = run("validate", str(path), "--feed", "ecds", "--as-of", "2026-04-15",
              env={"SAFEHAVEN_DATA_ROOT": str(tmp_path / "data")})
    assert out.returncode == 21
    assert "patient_name" in out.stdout and "quarantined" in out.stdout
    assert "Jean Smith" not in out.stdout + out.stderr
    assert "943 476 5919" not in out.stdout + out.stderr
    assert not path.exists()


def test_validate_stops_on_an_expired_contract_before_reading(tmp_path):
    landing = tmp_path / "data" / "landing" / "ecds"
    landing.mkdir(parents=True)
    path = landing / "ecds_attendances_2025-06_v1.csv"
    path.write_text(",".join(ECDS_ROW) + "\n" + ",".join(ECDS_ROW.values()) + "\n")
    out = run("validate", str(path), "--feed", "ecds", "--as-of", "2027-10-01", "--data-root", str(tmp_path / "data"))
    assert out.returncode == 11
    assert "expired on 2027-09-30" in out.stderr
    assert path.exists()


def test_audit_verify_reports_the_first_edited_line(tmp_path):
    root = tmp_path / "data"
    run("contracts", "check", "--as-of", "2026-04-15", "--data-root", str(root))
    run("contracts", "check", "--as-of", "2026-04-15", "--data-root", str(root))
    ok = run("audit", "verify", "--data-root", str(root))
    assert ok.returncode == 0 and "intact" in ok.stdout
    log = root / "audit" / "audit.jsonl"
    lines = log.read_text().splitlines()
    entry = json.loads(lines[4])
    entry["details"]["ok"] = not entry["details"]["ok"]
    lines[4] = json.dumps(entry, sort_keys=True)
    log.write_text("\n".join(lines) + "\n")
    bad = run("audit", "verify", "--data-root", str(root))
    assert bad.returncode == 31
    assert "line 5" in bad.stderr and "edited" in bad.stderr


def test_keys_init_status_rotate_retire_never_print_a_key(tmp_path):
    root = tmp_path / "data"
    env = {"SAFEHAVEN_KEYSTORE_PASSPHRASE": "a long test passphrase"}
    assert run("keys", "status", "--data-root", str(root), env=env).returncode == 40  # no keystore yet
    created = run("keys", "init", "--data-root", str(root), env=env)
    assert created.returncode == 0, created.stderr
    assert run("keys", "init", "--data-root", str(root), env=env).returncode == 40  # never overwritten
    rotated = run("keys", "rotate", "--data-root", str(root), env=env)
    assert "retiring" in rotated.stdout and "active" in rotated.stdout
    assert run("keys", "retire", "1", "--data-root", str(root), env=env).returncode == 0
    wrong = run("keys", "status", "--data-root", str(root), env={"SAFEHAVEN_KEYSTORE_PASSPHRASE": "wrong"})
    assert wrong.returncode == 40 and "does not open" in wrong.stderr

    from pipeline.keys import KeyDomain, KeyEncryptionKey, LocalKeystore

    store = LocalKeystore(root / "keys" / "keystore.json", KeyEncryptionKey(passphrase="a long test passphrase"))
    material = store.domain_key(KeyDomain.LINKAGE).material.decode()
    everything = created.stdout + created.stderr + rotated.stdout + rotated.stderr + (root / "audit" / "audit.jsonl").read_text()
    assert material not in everything and "a long test passphrase" not in everything


def test_a_usage_error_is_click_s_message_not_a_traceback(tmp_path):
    """Typer now carries its own copy of Click: its usage errors must still be shown as usage."""
    out = run("ingest", "--no-such-option", "--data-root", str(tmp_path / "data"))
    assert out.returncode == 2, out.stderr
    assert "No such option: --no-such-option" in out.stderr and "Traceback" not in out.stdout + out.stderr
