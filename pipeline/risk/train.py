"""Training with a temporal split, the choice between models, and the deployed model.

Dates (each a reference date ``R``: features before it, outcome in the year from it):

- scoring date: the day after the last activity in the warehouse (scores describe the year ahead);
- validation date: one year before the scoring date, the latest ``R`` whose outcome is known;
- training date: one year before that.

Both candidate models are fitted at the training date and judged on the validation date, people
and outcomes a year later (a temporal split: the test a deployed model actually faces). The
logistic model is chosen unless the boosted model's validation AUROC is higher by more than
``PREFER_TRANSPARENT`` (about the AUROC's standard error at 175,000 people: a smaller gain is
noise, and the logistic model shows its workings). The chosen specification is then refitted
on the validation window, the most recent with known outcomes, and that refit is deployed; the
model card reports the temporal validation, which is the honest estimate for it.

Features whose look-back the data do not cover at the training date are left out of both
models, and the card says which and why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.risk.dataset import activity_coverage, model_frame, one_year_after, usable_features
from pipeline.risk.evaluate import evaluate_scores
from pipeline.risk.features import all_features
from pipeline.risk.models import BoostedModel, LogisticModel, RiskModel

__all__ = ["PREFER_TRANSPARENT", "TrainingDates", "TrainingResult", "default_dates", "load_model", "planted_ceiling",
           "save_card", "train_models"]

PREFER_TRANSPARENT = 0.005
OUTCOME = "emergency admission (methods 21-2D, 28; counted per spell) in the 12 months from the reference date"


@dataclass(frozen=True)
class TrainingDates:
    train: dt.date
    validate: dt.date
    score: dt.date


def default_dates(coverage) -> TrainingDates:
    score = coverage.last + dt.timedelta(days=1)
    validate = one_year_after(score, -1)
    return TrainingDates(one_year_after(validate, -1), validate, score)


@dataclass
class TrainingResult:
    version: str
    model: RiskModel
    card: dict
    model_path: Path


def frame_hash(frame: pl.DataFrame) -> str:
    """SHA-256 over the frame's columns (names, then values in row order): the training data's
    fingerprint for the model card."""
    digest = hashlib.sha256()
    for name in frame.columns:
        column = frame[name]
        digest.update(name.encode())
        if column.dtype == pl.String:
            digest.update("\n".join(column.fill_null("").to_list()).encode())
        else:
            digest.update(column.cast(pl.Float64).fill_null(float("nan")).to_numpy().tobytes())
    return digest.hexdigest()


def planted_ceiling(con, truth_dir: Path, frame: pl.DataFrame) -> dict | None:
    """Synthetic data only: the planted model's true probabilities scored like a model, on the
    same people and outcomes as the validation."""
    from pipeline.linkage.evaluate import truth_person_ids
    from pipeline.risk.evaluate import auroc_delong, calibration

    people = Path(truth_dir) / "people.parquet"
    if not people.exists():
        return None
    truth = pl.read_parquet(people).select("person_id", "true_probability")
    mapped = frame.select("person_pid", "outcome").join(
        truth_person_ids(con, truth_dir).join(truth, on="person_id"), on="person_pid", how="inner")
    y, p = mapped["outcome"].to_numpy(), mapped["true_probability"].to_numpy()
    auc, lo, hi = auroc_delong(y, p)
    return {"people": mapped.height, "auroc": auc, "auroc_ci": [lo, hi], "calibration_slope": calibration(y, p)["slope"],
            "note": "AUROC of the planted model's true probabilities on the validation people and outcomes: "
                    "no model of these features can do better except by chance."}


def train_models(con, conditions: tuple[str, ...], models_dir: Path, *, dates: TrainingDates | None = None,
                 progress=lambda step: None) -> TrainingResult:
    """Fit, validate, choose, refit and save; returns the deployed model and its card (a dict)."""
    coverage = activity_coverage(con)
    dates = dates or default_dates(coverage)
    usable, left_out = usable_features(conditions, coverage, dates.train)
    features = [f for f in all_features(conditions) if f.name in usable]
    progress("training frame")
    train = model_frame(con, dates.train, conditions, outcome=True)
    progress("validation frame")
    valid = model_frame(con, dates.validate, conditions, outcome=True)
    y_train, y_valid = train["outcome"].to_numpy(), valid["outcome"].to_numpy()
    candidates: dict[str, RiskModel] = {}
    results: dict[str, dict] = {}
    for model in (LogisticModel(features), BoostedModel(features)):
        progress(f"fit {model.kind}")
        candidates[model.kind] = model.fit(train, y_train)
        results[model.kind] = evaluate_scores(valid, model.predict(valid))
    gain = results["gradient-boosted"]["auroc"] - results["logistic"]["auroc"]
    chosen = "gradient-boosted" if gain > PREFER_TRANSPARENT else "logistic"
    reason = (f"validation AUROC {results[chosen]['auroc']:.4f}; the boosted model's gain over the logistic model "
              f"is {gain:+.4f}, {'more' if chosen != 'logistic' else 'not more'} than {PREFER_TRANSPARENT} "
              "(below that the transparent model is preferred)")

    progress(f"refit {chosen}")
    deployed = (LogisticModel(features) if chosen == "logistic" else BoostedModel(features)).fit(valid, y_valid)
    data_hash = frame_hash(train.select("person_pid", *usable, "outcome"))
    version = f"ea12m-{dates.score:%Y%m%d}-{chosen[:3]}-{data_hash[:8]}"
    folder = Path(models_dir) / version
    folder.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(deployed, protocol=5)
    model_path = folder / "model.pkl"
    tmp = folder / ".tmp-model.pkl"
    tmp.write_bytes(payload)
    tmp.replace(model_path)

    lookback = max(f.lookback for f in features)

    def window(day: dt.date, frame: pl.DataFrame) -> dict:
        return {"reference_date": str(day), "features_from": str(one_year_after(day, -lookback)), "features_to":
                str(day - dt.timedelta(days=1)), "outcome_from": str(day),
                "outcome_to": str(one_year_after(day) - dt.timedelta(days=1)),
                "people": frame.height, "events": int(frame["outcome"].sum())}

    card = {
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "outcome": OUTCOME,
        "population": "people registered with a GP practice on the day before the reference date",
        "model": {"kind": chosen, "chosen_because": reason, "file": model_path.name,
                  "sha256": hashlib.sha256(payload).hexdigest(),
                  "deployed": "the chosen specification refitted on the validation window (the latest with known "
                              "outcomes); the metrics below are the temporal validation of the same specification"},
        "data": {"activity_from": str(coverage.first), "activity_to": str(coverage.last),
                 "training": window(dates.train, train), "validation": window(dates.validate, valid),
                 "scoring_date": str(dates.score), "training_data_sha256": data_hash},
        "features": [{"name": f.name, "description": f.description, "lookback_years": f.lookback,
                      "used": f.name in usable, "left_out_because": left_out.get(f.name)}
                     for f in all_features(conditions)],
        "coefficients": deployed.coefficients() if isinstance(deployed, LogisticModel) else None,
        "validated_coefficients": (candidates["logistic"].coefficients()),
        "validation": results,
        "planted_ceiling": None,  # synthetic data only: see pipeline.risk.stratify.compare_with_planted
        "limitations": LIMITATIONS,
    }
    save_card(models_dir, card)
    return TrainingResult(version, deployed, card, model_path)


def save_card(models_dir: Path, card: dict) -> None:
    path = Path(models_dir) / card["version"] / "card.json"
    tmp = path.with_name(".tmp-card.json")
    tmp.write_text(json.dumps(card, indent=2, default=_json_default), encoding="utf-8")
    tmp.replace(path)


LIMITATIONS = [
    "Predicts emergency admission to the hospitals whose SUS data are loaded; admissions elsewhere are missed.",
    "People are scored only if registered with a GP practice in the catchment; temporary residents are not.",
    ("Records without a valid NHS number join a person only through rescue linkage; missed links lower "
    "activity counts, most for groups with poorer NHS number recording (social care clients, the homeless)."),
    ("Calibration holds for the population and period it was validated on; check the subgroup tables before "
    "using the score for one group, and re-validate after changes in coding, services or population."),
    ("A risk score supports a clinician's judgement about whom to review; it is not a diagnosis, and it is not "
    "for decisions about an individual's entitlement to care."),
]


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (dt.date, Path)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_model(models_dir: Path, version: str) -> tuple[RiskModel, dict]:
    """The saved model and its card; the file must match the SHA-256 the card recorded."""
    folder = Path(models_dir) / version
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    payload = (folder / card["model"]["file"]).read_bytes()
    if hashlib.sha256(payload).hexdigest() != card["model"]["sha256"]:
        raise ValueError(f"model file {folder / card['model']['file']} does not match its card: refusing to load it")
    return pickle.loads(payload), card
