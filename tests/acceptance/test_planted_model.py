"""The synthetic generator's planted model is recoverable from its ground truth."""

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from pipeline.settings import Settings
from pipeline.synth import EXTRACT_DATE, generate
from pipeline.synth.population import PLANTED_COEFFICIENTS
from tests.conftest import CONTRACTS


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted") / "data"
    generate(Settings(data_root=root, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE), population=40_000, seed=11)
    return pl.read_parquet(root / "synthetic-truth" / "people.parquet")


def test_logistic_regression_on_planted_features_matches_the_true_probabilities(truth):
    features = list(PLANTED_COEFFICIENTS)
    x = truth.select(features).to_numpy()
    y = truth["emergency_admission_final_year"].to_numpy()
    model = LogisticRegression(C=np.inf, max_iter=2000).fit(x, y)
    fitted_auroc = roc_auc_score(y, model.predict_proba(x)[:, 1])
    true_auroc = roc_auc_score(y, truth["true_probability"].to_numpy())
    assert 0.70 < true_auroc < 0.85  # in the range published English models reach
    assert abs(fitted_auroc - true_auroc) <= 0.01
    # The coefficients themselves come back close to the planted ones.
    recovered = dict(zip(features, model.coef_[0], strict=True))
    for name, beta in PLANTED_COEFFICIENTS.items():
        assert abs(recovered[name] - beta) < 0.2, (name, recovered[name], beta)


EMERGENCY = {"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"}


def test_outcome_is_in_the_extracts_as_emergency_spells_in_the_final_year(truth):
    rate = truth["emergency_admission_final_year"].mean()
    assert 0.04 < rate < 0.12
    assert np.isclose(truth["true_probability"].mean(), rate, atol=0.01)


def test_every_final_year_emergency_spell_belongs_to_a_person_with_the_outcome(tmp_path_factory):
    root = tmp_path_factory.mktemp("outcome") / "data"
    generate(Settings(data_root=root, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE), population=3000, seed=5)
    people = pl.read_parquet(root / "synthetic-truth" / "people.parquet")
    admitted = set()
    for path in sorted((root / "landing" / "sus_apc").glob("*.csv")):
        period = path.stem.split("_")[-2]
        if not ("2025-04" <= period <= "2026-03"):
            continue
        spells = pl.read_csv(path, infer_schema=False).with_row_index("row")
        records = pl.read_parquet(root / "synthetic-truth" / "records" / f"{path.stem}.parquet")
        joined = spells.join(records.with_columns(pl.col("row").cast(pl.UInt32)), on="row")
        admitted |= set(joined.filter(pl.col("admission_method").is_in(EMERGENCY))["person_id"].to_list())
    expected = set(people.filter(pl.col("emergency_admission_final_year"))["person_id"].to_list())
    assert admitted == expected and len(expected) > 100
