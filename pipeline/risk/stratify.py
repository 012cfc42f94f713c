"""The stratify steps, each a whole unit the flow calls by name (paths and ids in, counts out).

1. ``train_step``: features at the training and validation dates, both models, the choice, the
   deployed refit, the model card; ``models/current.json`` then names the model.
2. ``score_step``: scores and tiers for the population on the scoring date, from the current
   model or from an external file, into ``w.risk_scores``.
3. ``publish`` (from ``pipeline.linkage``): the marts, now with the person mart's ``risk_scores``.
4. ``packs_step``: signed case-finding packs per practice.

Each step that writes the warehouse holds its writer lock. Every step is audited.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.failpoints import crash_point
from pipeline.ingest.staging import read_manifest, write_json_atomic
from pipeline.linkage import open_warehouse
from pipeline.risk.card import write_model_card
from pipeline.risk.dataset import activity_coverage, model_frame
from pipeline.risk.features import ltc_conditions
from pipeline.risk.packs import DEFAULT_TIERS, DEFAULT_VALID_DAYS, write_packs
from pipeline.risk.scores import read_external_scores, score_with_model, write_scores
from pipeline.risk.tiers import parse_scheme
from pipeline.risk.train import default_dates, load_model, planted_ceiling, save_card, train_models

__all__ = ["compare_with_planted", "current_model", "packs_step", "score_step", "train_step"]


def current_model(settings) -> str | None:
    pointer = read_manifest(settings.models_dir / "current.json")
    return pointer["version"] if pointer else None


def _conditions(settings):
    return ltc_conditions(settings.contracts_dir, settings.today())


def train_step(settings, keystore, audit, *, progress=lambda step: None) -> dict:
    """Train, validate, choose and save; returns the card's headline figures."""
    warehouse = open_warehouse(settings, keystore)
    with warehouse.writer():
        con = warehouse.open(create=False)
        try:
            result = train_models(con, _conditions(settings), settings.models_dir, progress=progress)
        finally:
            con.close()
    crash_point("risk.model-saved")
    paths = write_model_card(settings.reports_dir / "models", result.card)
    write_json_atomic(settings.models_dir / "current.json", {"version": result.version,
                                                             "trained_at": result.card["created_at"]})
    headline = _headline(result.card, paths)
    audit.append("model.trained", headline)
    return headline | {"card_path": str(paths["html"])}


def _headline(card: dict, paths: dict) -> dict:
    chosen = card["validation"][card["model"]["kind"]]
    headline = {"version": card["version"], "kind": card["model"]["kind"],
                "auroc": round(chosen["auroc"], 4), "calibration_slope": round(chosen["calibration"]["slope"], 3),
                "calibration_intercept": round(chosen["calibration"]["intercept"], 4),
                "card": Path(paths["html"]).name}
    if card.get("planted_ceiling"):
        headline["planted_ceiling_auroc"] = round(card["planted_ceiling"]["auroc"], 4)
    return headline


def compare_with_planted(settings, keystore, audit, truth_dir: Path, version: str | None = None) -> dict:
    """Synthetic data only (tests, benchmarks, the demo; never a flow): add the planted model's
    AUROC on the same validation people and outcomes to the card, and re-render it."""
    version = version or current_model(settings)
    if version is None:
        raise FileNotFoundError("no trained model to compare")
    _, card = load_model(settings.models_dir, version)
    validate = dt.date.fromisoformat(card["data"]["validation"]["reference_date"])
    warehouse = open_warehouse(settings, keystore)
    with warehouse.writer():
        con = warehouse.open(create=False)
        try:
            frame = model_frame(con, validate, _conditions(settings), outcome=True)
            card["planted_ceiling"] = planted_ceiling(con, truth_dir, frame)
        finally:
            con.close()
    save_card(settings.models_dir, card)
    paths = write_model_card(settings.reports_dir / "models", card)
    headline = _headline(card, paths)
    audit.append("model.compared_with_planted", headline)
    return headline | {"card_path": str(paths["html"])}


def score_step(settings, keystore, audit, *, tiers: str = "default", external: Path | None = None,
               model_version: str | None = None) -> dict:
    """Score everyone registered on the scoring date and put them in tiers."""
    scheme = parse_scheme(tiers)
    warehouse = open_warehouse(settings, keystore)
    with warehouse.writer():
        con = warehouse.open(create=False)
        try:
            scoring_date = default_dates(activity_coverage(con)).score
            conditions = _conditions(settings)
            if external is not None:
                tiered, counts = read_external_scores(con, keystore, Path(external), conditions, scoring_date, scheme)
                version, source = f"external:{counts['file_sha256'][:12]}", "external"
            else:
                version = model_version or current_model(settings)
                if version is None:
                    raise FileNotFoundError("no trained model: run the train step (safehaven stratify) first")
                model, _ = load_model(settings.models_dir, version)
                tiered, counts = score_with_model(con, model, conditions, scoring_date, scheme), {}
                source = "model"
            tiers = write_scores(con, tiered, scoring_date=scoring_date, model_version=version, source=source)
            con.execute("CHECKPOINT")
        finally:
            con.close()
    summary = {"model_version": version, "source": source, "scoring_date": str(scoring_date),
               "scheme": scheme.describe(), "tiers": tiers, **({"external": counts} if counts else {})}
    audit.append("risk.scored", summary)
    return summary


def packs_step(settings, keystore, audit, *, tiers=DEFAULT_TIERS, valid_days: int = DEFAULT_VALID_DAYS,
               now: dt.datetime | None = None) -> dict:
    warehouse = open_warehouse(settings, keystore)
    with warehouse.writer():
        con = warehouse.open(create=False)
        try:
            packs = write_packs(con, keystore, settings.case_finding_dir, tiers=tuple(tiers), valid_days=valid_days,
                                now=now)
        finally:
            con.close()
    summary = {"packs": len(packs), "patients": sum(p.rows for p in packs), "tiers": list(tiers),
               "valid_days": valid_days, "folder": packs[0].manifest.parent.name if packs else None}
    audit.append("packs.written", summary)
    return summary
