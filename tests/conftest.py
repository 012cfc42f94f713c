"""Shared fixtures: settings on a temporary data root, small deliveries, a small population."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from pipeline.settings import Settings
from pipeline.synth import EXTRACT_DATE

REPO = Path(__file__).resolve().parent.parent
CONTRACTS = REPO / "contracts"

#: A clean ECDS row; spec tests change one thing at a time.
ECDS_ROW = {
    "attendance_id": "AE000000001",
    "provider_code": "R9Z",
    "nhs_number": "943 476 5919",
    "date_of_birth": "1956-03-12",
    "postcode": "SS1 2AB",
    "gender": "2",
    "arrival_date": "2025-06-01",
    "department_type": "01",
    "acuity": "3",
    "admitted": "N",
    "triage_notes": "fell at home",
    "gp_practice_code": "S90001",
}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_root=tmp_path / "data", contracts_dir=CONTRACTS, as_of=EXTRACT_DATE,
                    allow_synthetic_nhs_numbers=True)


@pytest.fixture
def make_delivery(settings):
    """Write a CSV delivery into landing/<feed>/ and return its path."""

    def make(feed: str, name: str, rows: list[dict], columns: list[str] | None = None) -> Path:
        columns = columns or list(rows[0])
        path = settings.landing / feed / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return path

    return make


@pytest.fixture(scope="session")
def population_root(tmp_path_factory) -> Path:
    """A small synthetic population (2,000 people), generated once per session. Read only:
    tests that change deliveries copy them first (see ``population_copy``)."""
    from pipeline.synth import generate

    root = tmp_path_factory.mktemp("population") / "data"
    generate(Settings(data_root=root, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE), population=2000, seed=7)
    return root


@pytest.fixture
def population_copy(population_root, tmp_path) -> Settings:
    """Settings on a private copy of the small population's landing and truth."""
    root = tmp_path / "data"
    shutil.copytree(population_root, root)
    return Settings(data_root=root, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE, allow_synthetic_nhs_numbers=True)
