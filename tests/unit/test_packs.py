"""Case-finding packs: signed per practice, tamper-evident, expiring."""

import datetime as dt
import json

import duckdb
import pytest

from pipeline.keys import KeyEncryptionKey, LocalKeystore
from pipeline.pseudonymise.pseudonyms import parse_display_form
from pipeline.risk.packs import (
    PackInvalid,
    latest_pack,
    public_key_of,
    read_pack,
    verify_pack,
    write_packs,
)

NOW = dt.datetime(2026, 4, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def keystore(tmp_path):
    return LocalKeystore.create(tmp_path / "keys" / "keystore.json", KeyEncryptionKey(passphrase="correct horse"))


@pytest.fixture
def warehouse():
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS w")
    con.execute("""CREATE TABLE w.risk_scores AS SELECT * FROM (VALUES
        ('pid-a', 'A81001', 0.91, 'very-high', 1, ['emergency_admissions_12m = 3'], DATE '2026-04-01', 'm1', 'model'),
        ('pid-b', 'A81001', 0.40, 'high', 2, ['age = 88'], DATE '2026-04-01', 'm1', 'model'),
        ('pid-c', 'A81002', 0.35, 'high', 3, [], DATE '2026-04-01', 'm1', 'model'),
        ('pid-d', 'A81002', 0.05, 'low', 4, NULL, DATE '2026-04-01', 'm1', 'model'),
        ('pid-e', NULL, 0.50, 'high', 5, NULL, DATE '2026-04-01', 'm1', 'model'))
        t(person_pid, practice_code, score, tier, tier_rank, drivers, reference_date, model_version, score_source)""")
    yield con
    con.close()


def test_one_pack_per_practice_with_its_patients_in_the_chosen_tiers(tmp_path, keystore, warehouse):
    packs = write_packs(warehouse, keystore, tmp_path / "cf", now=NOW)
    assert {(p.practice, p.rows) for p in packs} == {("A81001", 2), ("A81002", 1)}
    manifest, rows = read_pack(latest_pack(tmp_path / "cf", "A81001"), public_key_of(keystore), NOW)
    assert rows.columns == ["pseudonym", "tier", "drivers"]  # no score, no rank: nothing to join a mart on
    assert rows["tier"].to_list() == ["very-high", "high"]
    assert all(parse_display_form(p)[0] == 1 for p in rows["pseudonym"])  # display form, with a check symbol
    assert "pid-a" not in (tmp_path / "cf").joinpath(packs[0].manifest.parent.name, "A81001.csv").read_text()
    assert manifest["expires_at"] == (NOW + dt.timedelta(days=28)).isoformat(timespec="seconds")
    assert latest_pack(tmp_path / "cf", "A81003") is None


def test_a_changed_byte_fails_verification(tmp_path, keystore, warehouse):
    pack = write_packs(warehouse, keystore, tmp_path / "cf", now=NOW)[0].manifest
    public = public_key_of(keystore)
    verify_pack(pack, public, NOW)
    csv = pack.with_name(json.loads(pack.read_text())["manifest"]["csv"])
    original = csv.read_bytes()
    csv.write_bytes(original.replace(b"very-high", b"very-higx", 1))
    with pytest.raises(PackInvalid, match="changed since it was signed"):
        verify_pack(pack, public, NOW)
    csv.write_bytes(original)
    doc = json.loads(pack.read_text())
    doc["manifest"]["expires_at"] = "2099-01-01T00:00:00+00:00"  # try to extend the pack's life
    pack.write_text(json.dumps(doc))
    with pytest.raises(PackInvalid, match="signature does not match"):
        verify_pack(pack, public, NOW)


def test_an_expired_pack_is_refused(tmp_path, keystore, warehouse):
    pack = write_packs(warehouse, keystore, tmp_path / "cf", valid_days=7, now=NOW)[0].manifest
    verify_pack(pack, public_key_of(keystore), NOW + dt.timedelta(days=6, hours=23))
    with pytest.raises(PackInvalid, match="expired"):
        verify_pack(pack, public_key_of(keystore), NOW + dt.timedelta(days=7))


def test_another_services_key_does_not_verify(tmp_path, keystore, warehouse):
    pack = write_packs(warehouse, keystore, tmp_path / "cf", now=NOW)[0].manifest
    other = LocalKeystore.create(tmp_path / "other" / "keystore.json", KeyEncryptionKey(passphrase="another"))
    with pytest.raises(PackInvalid, match="signature"):
        verify_pack(pack, public_key_of(other), NOW)


def test_the_public_key_is_stable_and_the_pack_pseudonyms_differ_from_the_warehouse(tmp_path, keystore, warehouse):
    from pipeline.risk.packs import pack_pseudonyms, public_key_pem

    assert public_key_pem(keystore) == public_key_pem(LocalKeystore(keystore.path, KeyEncryptionKey(
        passphrase="correct horse")))
    import polars as pl

    first = pack_pseudonyms(pl.Series(["pid-a", "pid-b"]), keystore).to_list()
    assert first == pack_pseudonyms(pl.Series(["pid-a", "pid-b"]), keystore).to_list() and first[0] != first[1]
