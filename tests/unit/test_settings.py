from pathlib import Path

import pytest

from pipeline.errors import SettingsError
from pipeline.settings import load_settings


def test_data_root_defaults_to_data(monkeypatch):
    monkeypatch.delenv("SAFEHAVEN_DATA_ROOT", raising=False)
    assert load_settings().data_root == Path("data")


def test_environment_then_explicit_override(monkeypatch, tmp_path):
    monkeypatch.setenv("SAFEHAVEN_DATA_ROOT", str(tmp_path / "env"))
    assert load_settings().data_root == tmp_path / "env"
    assert load_settings(data_root=tmp_path / "cli").data_root == tmp_path / "cli"


def test_zones_hang_off_the_data_root(tmp_path):
    s = load_settings(data_root=tmp_path)
    assert s.landing == tmp_path / "landing"
    assert s.quarantine.parent == s.landing
    assert s.audit_log == tmp_path / "audit" / "audit.jsonl"


def test_bad_value_names_the_setting_and_where_it_looked(monkeypatch):
    monkeypatch.setenv("SAFEHAVEN_VALIDATION_BATCH_BYTES", "12")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = str(exc.value)
    assert "validation_batch_bytes" in message and "SAFEHAVEN_VALIDATION_BATCH_BYTES" in message


def test_synthetic_numbers_are_off_by_default(monkeypatch):
    monkeypatch.delenv("SAFEHAVEN_ALLOW_SYNTHETIC_NHS_NUMBERS", raising=False)
    assert load_settings().allow_synthetic_nhs_numbers is False
