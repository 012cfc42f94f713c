"""Risk models: a transparent logistic model and a gradient-boosted one, on the same features.

- ``LogisticModel``: a CPM-like logistic regression on readable terms. Age enters as a linear
  spline (hinges at 18, 40, 65, 75 and 85), counts as ``log(1 + n)``, deprivation as
  ``(10 - IMD decile) / 9``, flags as 0/1, with an indicator where age or deprivation is
  unknown. Terms are standardised for fitting (a light ridge penalty keeps the long-term
  condition flags and their count apart) and the coefficients are reported back per unit of
  each term, so the model card can show them.
- ``BoostedModel``: scikit-learn's histogram gradient boosting on the raw features (missing
  values handled natively), with early stopping on a held-out tenth of the training window.

Both expose ``predict(frame) -> probabilities`` and ``drivers(frame, k)``: each person's top
``k`` features pushing their score up, against the population's typical value. Neither
reads anything but the feature columns they were trained on.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from pipeline.risk.features import Feature

__all__ = ["AGE_KNOTS", "BoostedModel", "LogisticModel", "RiskModel", "Term", "design_terms"]

AGE_KNOTS = (18, 40, 65, 75, 85)
SEED = 20140601


@dataclass(frozen=True)
class Term:
    name: str
    feature: str
    description: str
    compute: Callable[[pl.DataFrame], np.ndarray]


def _col(frame: pl.DataFrame, name: str, fill: float = 0.0) -> np.ndarray:
    return frame[name].cast(pl.Float64).fill_null(fill).to_numpy()


def _age_terms() -> list[Term]:
    terms = [Term("age_decades", "age", "(age - 50) / 10; 0 when unknown", lambda f: (_col(f, "age", 50) - 50) / 10)]
    terms += [Term(f"age_over_{k}_decades", "age", f"max(age - {k}, 0) / 10",
                   lambda f, k=k: np.maximum(_col(f, "age", 50) - k, 0) / 10) for k in AGE_KNOTS]
    terms.append(Term("age_unknown", "age", "1 when no record gives an age",
                      lambda f: f["age"].is_null().cast(pl.Float64).to_numpy()))
    return terms


def design_terms(features: list[Feature]) -> list[Term]:
    """The logistic model's terms for the given features, in order."""
    terms: list[Term] = []
    for feature in features:
        name = feature.name
        if name == "age":
            terms += _age_terms()
        elif name == "imd_decile":
            terms += [Term("deprivation", name, "(10 - IMD decile) / 9; 0.5 when unknown",
                           lambda f: (10 - _col(f, "imd_decile", 5.5)) / 9),
                      Term("deprivation_unknown", name, "1 when no LSOA is known",
                           lambda f: f["imd_decile"].is_null().cast(pl.Float64).to_numpy())]
        elif feature.default == "false" or name == "ltc_count":
            terms.append(Term(name, name, feature.description, lambda f, n=name: _col(f, n)))
        else:  # counts, bed days and costs: diminishing returns
            terms.append(Term(f"log1p_{name}", name, f"log(1 + {name})", lambda f, n=name: np.log1p(_col(f, n))))
    return terms


class RiskModel(ABC):
    kind: str
    features: list[str]

    @abstractmethod
    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Each person's probability of the outcome."""

    def _logit(self, frame: pl.DataFrame) -> np.ndarray:
        p = np.clip(self.predict(frame), 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    @abstractmethod
    def contributions(self, frame: pl.DataFrame) -> np.ndarray:
        """(people x features) change in log-odds from each feature being at its typical value."""

    def drivers(self, frame: pl.DataFrame, k: int = 3) -> list[list[str]]:
        """Each person's top ``k`` features raising their score, as readable ``name = value``."""
        if frame.height == 0:
            return []
        contrib = self.contributions(frame)
        order = np.argsort(-contrib, axis=1)[:, :k]
        values = {name: frame[name].to_list() for name in self.features}
        out = []
        for i in range(frame.height):
            row = []
            for j in order[i]:
                if contrib[i, j] <= 0.01:  # less than a 1% change in odds: not a driver
                    break
                value = values[self.features[j]][i]
                shown = ("yes" if value else "no") if isinstance(value, bool) else (
                    f"{value:g}" if isinstance(value, float) else value)
                row.append(f"{self.features[j]} = {shown}")
            out.append(row)
        return out


class LogisticModel(RiskModel):
    kind = "logistic"

    def __init__(self, features: list[Feature], c: float = 1.0):
        self.features = [f.name for f in features]
        self.feature_specs = list(features)
        self.terms = design_terms(features)
        self.c = c

    def __getstate__(self) -> dict:  # terms hold functions: rebuilt from the feature specs on load
        return {k: v for k, v in self.__dict__.items() if k != "terms"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.terms = design_terms(self.feature_specs)

    def _matrix(self, frame: pl.DataFrame) -> np.ndarray:
        return np.column_stack([t.compute(frame) for t in self.terms])

    def fit(self, frame: pl.DataFrame, y: np.ndarray) -> LogisticModel:
        x = self._matrix(frame)
        self.mean_, self.scale_ = x.mean(axis=0), x.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        fitted = LogisticRegression(C=self.c, max_iter=5000).fit((x - self.mean_) / self.scale_, y)
        self.coef_ = fitted.coef_[0] / self.scale_  # per unit of each term
        self.intercept_ = float(fitted.intercept_[0] - np.sum(fitted.coef_[0] * self.mean_ / self.scale_))
        return self

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.intercept_ + self._matrix(frame) @ self.coef_)))

    def contributions(self, frame: pl.DataFrame) -> np.ndarray:
        parts = (self._matrix(frame) - self.mean_) * self.coef_
        by_feature = np.zeros((frame.height, len(self.features)))
        for j, term in enumerate(self.terms):
            by_feature[:, self.features.index(term.feature)] += parts[:, j]
        return by_feature

    def coefficients(self) -> list[dict]:
        rows = [{"term": "intercept", "feature": "", "description": "log-odds for a person with every term 0",
                 "coefficient": round(self.intercept_, 4), "odds_ratio": None}]
        rows += [{"term": t.name, "feature": t.feature, "description": t.description,
                  "coefficient": round(float(b), 4), "odds_ratio": round(math.exp(b), 4)}
                 for t, b in zip(self.terms, self.coef_, strict=True)]
        return rows


class BoostedModel(RiskModel):
    kind = "gradient-boosted"

    def __init__(self, features: list[Feature]):
        self.features = [f.name for f in features]

    def _matrix(self, frame: pl.DataFrame) -> np.ndarray:
        return np.column_stack([frame[n].cast(pl.Float64).to_numpy() for n in self.features])

    def fit(self, frame: pl.DataFrame, y: np.ndarray) -> BoostedModel:
        x = self._matrix(frame)
        self.model_ = HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=500, max_leaf_nodes=15, min_samples_leaf=100, l2_regularization=1.0,
            early_stopping=True, validation_fraction=0.1, n_iter_no_change=20, random_state=SEED).fit(x, y)
        self.typical_ = np.nanmedian(x, axis=0)
        return self

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._matrix(frame))[:, 1]

    def contributions(self, frame: pl.DataFrame) -> np.ndarray:
        """Occlusion: the drop in log-odds when one feature is set to its population median."""
        x = self._matrix(frame)
        base = self._logit(frame)
        out = np.zeros((frame.height, len(self.features)))
        for j in range(len(self.features)):
            moved = x.copy()
            moved[:, j] = self.typical_[j]
            p = np.clip(self.model_.predict_proba(moved)[:, 1], 1e-12, 1 - 1e-12)
            out[:, j] = base - np.log(p / (1 - p))
        return out
