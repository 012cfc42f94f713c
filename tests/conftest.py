"""Shared fixtures: settings on a temporary data root, small deliveries, and one small population
taken through the pipeline once per session, stage by stage (generated, staged, linked,
stratified), plus one `safehaven demo` run. They are read-only: a test that changes anything
works on a copy (``copy_root``, ``stratified_copy``)."""

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


def copy_root(source: Path, target: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A private copy of a data root (optionally without some zones); file modes kept."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*without) if without else None)
    return target


def synthetic_settings(root: Path, contracts_dir: Path = CONTRACTS, **extra) -> Settings:
    """Settings for a synthetic root, as `safehaven demo` and the flow tests run it."""
    return Settings(data_root=root, contracts_dir=contracts_dir, as_of=EXTRACT_DATE, allow_synthetic_nhs_numbers=True,
                    **extra)


#: An output contract for tests whose property does not depend on table size: the commissioning
#: package without its largest table (whose protection is most of a publish's time).
SMALL_PACKAGE = "commissioning-small"


def small_package_contracts(target: Path) -> Path:
    """A copy of ``contracts/`` with one more output contract, ``SMALL_PACKAGE``."""
    import yaml

    shutil.copytree(CONTRACTS, target)
    raw = yaml.safe_load((target / "outputs" / "commissioning.odcs.yaml").read_text())
    raw |= {"id": f"{raw['id']}-small", "name": SMALL_PACKAGE, "schema": raw["schema"][1:]}
    (target / "outputs" / f"{SMALL_PACKAGE}.odcs.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


@pytest.fixture(scope="session")
def staged_root(population_root, tmp_path_factory) -> Path:
    """The small population ingested once (library, all feeds): the clean run that the ingest
    recovery test compares with, and where linking starts."""
    from pipeline.ingest.ingest import Ingestor
    from pipeline.keys import ALL_ROLES, open_keystore

    root = copy_root(population_root, tmp_path_factory.mktemp("staged") / "data")
    settings = synthetic_settings(root)
    Ingestor(settings, open_keystore(settings, create_demo=True, roles=ALL_ROLES)).ingest_all()
    return root


@pytest.fixture(scope="session")
def linked(staged_root, tmp_path_factory):
    """(settings, keystore, link summary) after linking the staged population. Tests may publish
    marts again; none may change the warehouse."""
    from pipeline.keys import ALL_ROLES, open_keystore
    from pipeline.linkage import link

    root = copy_root(staged_root, tmp_path_factory.mktemp("linked") / "data")
    settings = synthetic_settings(root)
    keystore = open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    return settings, keystore, link(settings, keystore)


@pytest.fixture(scope="session")
def stratified(linked, tmp_path_factory):
    """The linked population stratified once (models trained, scored and tiered, marts
    published, packs written): (settings, keystore, audit, trained, scored, packs). Read-only."""
    from pipeline.audit import AuditLog
    from pipeline.keys import ALL_ROLES, open_keystore
    from pipeline.linkage import publish
    from pipeline.risk import packs_step, score_step, train_step

    root = copy_root(linked[0].data_root, tmp_path_factory.mktemp("stratified") / "data")
    settings = synthetic_settings(root)
    keystore = open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    audit = AuditLog(settings.audit_log)
    trained = train_step(settings, keystore, audit)
    scored = score_step(settings, keystore, audit)
    publish(settings, keystore, audit)
    packs = packs_step(settings, keystore, audit)
    return settings, keystore, audit, trained, scored, packs


def stratified_copy(stratified, tmp_path_factory, name: str = "stratified"):
    """A private copy of the stratified root: (settings, keystore, audit, trained, scored, packs),
    the results being the shared run's (they name files relative to the root)."""
    from pipeline.audit import AuditLog
    from pipeline.keys import ALL_ROLES, open_keystore

    settings0, _, _, trained, scored, packs = stratified
    root = copy_root(settings0.data_root, tmp_path_factory.mktemp(name) / "data")
    settings = synthetic_settings(root)
    return settings, open_keystore(settings, create_demo=True, roles=ALL_ROLES), AuditLog(settings.audit_log), trained, scored, packs


@pytest.fixture(scope="session")
def published(stratified, tmp_path_factory):
    """The commissioning package published once from a copy of the stratified root:
    (settings, keystore, audit, result, progress steps). Read-only."""
    from pipeline.disclosure.publish import publish

    settings, keystore, audit, *_ = stratified_copy(stratified, tmp_path_factory, "published")
    steps = []
    result = publish(settings, keystore, audit, progress=steps.append)
    return settings, keystore, audit, result, steps


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`safehaven demo` on 1,500 people, as `make demo` runs it (its own ephemeral Prefect
    server): (data root, the demo's stdout). Read-only: tests that change anything copy it."""
    from tests.cli import run_cli

    root = tmp_path_factory.mktemp("demo") / "data"
    out = run_cli("demo", "--population", "1500", root=root, prefect="ephemeral")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root, out.stdout


@pytest.fixture(scope="session")
def demo_root(demo_run) -> Path:
    return demo_run[0]


#: Session fixtures that cost a minute or more to build: on two workers (``make test`` runs
#: ``pytest -n 2 --dist loadgroup``), every test that uses one runs on the same worker, so each
#: is built once. Tests using none are shared out freely.
SHARED_BY_GROUP = {"demo_run": "demo", "demo_root": "demo", "staged_root": "population", "linked": "population",
                   "stratified": "population", "published": "population"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        groups = sorted({SHARED_BY_GROUP[f] for f in getattr(item, "fixturenames", ()) if f in SHARED_BY_GROUP})
        if groups:
            item.add_marker(pytest.mark.xdist_group("+".join(groups)))


def pytest_sessionfinish(session, exitstatus):
    from tests.cli import stop_shared_prefect

    stop_shared_prefect()


@pytest.fixture
def population_copy(population_root, tmp_path) -> Settings:
    """Settings on a private copy of the small population's landing and truth."""
    root = tmp_path / "data"
    shutil.copytree(population_root, root)
    return Settings(data_root=root, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE, allow_synthetic_nhs_numbers=True)
