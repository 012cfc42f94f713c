"""A linked copy of the small population, shared by the linkage, report and mart tests."""

import shutil

import pytest

from pipeline.ingest.ingest import Ingestor
from pipeline.keys import open_keystore
from pipeline.linkage import link
from pipeline.settings import Settings
from pipeline.synth import EXTRACT_DATE
from tests.conftest import CONTRACTS


@pytest.fixture(scope="session")
def linked(population_root, tmp_path_factory):
    """(settings, keystore, link summary) after ingest and link of the 2,000-person population.
    Tests may publish marts again; none may change the warehouse."""
    root = tmp_path_factory.mktemp("linked") / "data"
    shutil.copytree(population_root, root)
    settings = Settings(data_root=root, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE, allow_synthetic_nhs_numbers=True)
    keystore = open_keystore(settings, create_demo=True)
    Ingestor(settings, keystore).ingest_all()
    return settings, keystore, link(settings, keystore)
