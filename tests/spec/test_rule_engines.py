"""The fast polars engine and the Great Expectations reference engine count every rule the
same on generated deliveries (with corruptions in every rule's column)."""

import random

import pytest

from pipeline.ingest.gate import ValidationGate
from tests.conftest import ECDS_ROW

CORRUPTIONS = {
    "nhs_number": ["12345", "NOT KNOWN", "", "943 476 591X", "  943 476 5919  "],
    "date_of_birth": ["1956-13-01x", "12.03.1956", "", "19560312", "12/03/1956"],
    "postcode": ["NOWHERE", "ss12ab", "", "SS1  2AB"],
    "gender": ["Q", "", "1", "X", "m"],
    "acuity": ["6", "", "3"],
    "admitted": ["MAYBE", "", "Y"],
    "department_type": ["1", "", "03"],
    "arrival_date": ["2025-6-1", "", "2025-06-01"],
    "gp_practice_code": ["s90001", "", "S9000"],
    "attendance_id": ["", "AE1"],
}


@pytest.mark.parametrize("seed", range(4))
def test_engines_agree_on_every_rule(settings, make_delivery, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(400):
        row = dict(ECDS_ROW, attendance_id=f"AE{i:09d}")
        for col, bad in CORRUPTIONS.items():
            if rng.random() < 0.15:
                row[col] = rng.choice(bad)
        rows.append(row)
    name = "ecds_attendances_2025-06_v1.csv"
    verdicts = {}
    for engine in ("polars", "gx"):
        path = make_delivery("ecds", name, rows)
        gate = ValidationGate(settings.model_copy(update={"validation_engine": engine,
                                                          "validation_batch_bytes": 16 * 1024}))
        result = gate.validate(path, "ecds")
        verdicts[engine] = (result.passed, result.rows,
                            sorted((o.rule, o.considered, o.failing, o.passed) for o in result.outcomes))
    assert verdicts["polars"] == verdicts["gx"]
    assert any(not o[3] for o in verdicts["polars"][2])  # corruptions were caught
