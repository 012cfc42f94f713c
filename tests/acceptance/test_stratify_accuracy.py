"""Issue 5's bar on the default synthetic population (175,000 people, the demo's seed): the chosen
model's validation AUROC is within 0.02 of the planted model's ceiling and its calibration slope
is within 0.9-1.1, and the model card shows both."""

import json

from pipeline.audit import AuditLog
from pipeline.ingest.ingest import Ingestor
from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.linkage import link
from pipeline.risk import compare_with_planted, train_step
from pipeline.settings import Settings
from pipeline.synth import EXTRACT_DATE, generate
from tests.conftest import CONTRACTS

DEFAULT_POPULATION = 175_000
DEMO_SEED = 20140601


def test_chosen_model_reaches_the_planted_ceiling_and_is_calibrated(tmp_path):
    settings = Settings(data_root=tmp_path / "data", contracts_dir=CONTRACTS, as_of=EXTRACT_DATE,
                        allow_synthetic_nhs_numbers=True)
    generate(settings, population=DEFAULT_POPULATION, seed=DEMO_SEED)
    keystore = open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    Ingestor(settings, keystore).ingest_all()
    link(settings, keystore)
    audit = AuditLog(settings.audit_log)
    train_step(settings, keystore, audit)
    headline = compare_with_planted(settings, keystore, audit, settings.synthetic_truth)
    assert abs(headline["auroc"] - headline["planted_ceiling_auroc"]) <= 0.02, headline
    assert 0.9 <= headline["calibration_slope"] <= 1.1, headline
    card = json.loads((settings.reports_dir / "models" / "latest.json").read_text())
    assert round(card["planted_ceiling"]["auroc"], 4) == headline["planted_ceiling_auroc"]
    html = (settings.reports_dir / "models" / "latest.html").read_text()
    assert "planted model (ceiling)" in html and "calibration slope" in html
