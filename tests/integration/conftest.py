"""A linked copy of the small population, shared by the linkage, report and mart tests, and
stratified copies of it for the stratify and publish tests."""

import shutil

import pytest

from pipeline.audit import AuditLog
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


def stratified_copy(linked, tmp_path_factory, name: str = "stratified"):
    """A copy of the linked root, stratified (models trained, scored and tiered, marts published,
    packs written): (settings, keystore, audit, trained, scored, packs)."""
    from pipeline.linkage import publish
    from pipeline.risk import packs_step, score_step, train_step

    settings0, _, _ = linked
    root = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(settings0.data_root, root)
    settings = Settings(data_root=root, contracts_dir=settings0.contracts_dir, as_of=settings0.as_of,
                        allow_synthetic_nhs_numbers=True)
    keystore = open_keystore(settings, create_demo=True)
    audit = AuditLog(settings.audit_log)
    trained = train_step(settings, keystore, audit)
    scored = score_step(settings, keystore, audit)
    publish(settings, keystore, audit)
    packs = packs_step(settings, keystore, audit)
    return settings, keystore, audit, trained, scored, packs
