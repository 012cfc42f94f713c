"""The ``stratify`` flow: features -> models -> scores and tiers -> person mart -> case-finding packs.

Wiring only (``pipeline.risk`` does the work). Parameters are a data root, a tier scheme's text,
the pack tiers, the packs' lifetime and, to use another tool's scores, the path of its file;
tasks return counts, versions and file names; the artifacts hold headline metrics and counts.
Like ``link``, the flow runs inside ``warehouse_writer``: one writer at a time.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline import linkage, risk
from pipeline.flows.writer import open_root, tick, warehouse_writer
from pipeline.logs import install_redaction

__all__ = ["STRATIFY_STEPS", "stratify_flow"]

install_redaction()
STRATIFY_STEPS = ("train-model", "score-and-tier", "publish-marts", "case-finding-packs")


@task(name="train-model", cache_policy=NO_CACHE, persist_result=False)
def train_model(data_root: str) -> dict:
    settings, keystore = open_root(data_root)
    headline = risk.train_step(settings, keystore, settings.audit())
    tick("train-model")
    return headline


@task(name="score-and-tier", cache_policy=NO_CACHE, persist_result=False)
def score_and_tier(data_root: str, tiers: str, external_scores: str | None) -> dict:
    settings, keystore = open_root(data_root)
    summary = risk.score_step(settings, keystore, settings.audit(), tiers=tiers,
                              external=external_scores)
    tick("score-and-tier")
    return summary


@task(name="publish-marts", cache_policy=NO_CACHE, persist_result=False)
def publish_marts(data_root: str) -> list[dict]:
    settings, keystore = open_root(data_root)
    marts = linkage.publish(settings, keystore, settings.audit())
    tick("publish-marts")
    return [{"name": m.name, "file": m.file, "tables": m.tables} for m in marts]


@task(name="case-finding-packs", cache_policy=NO_CACHE, persist_result=False)
def case_finding_packs(data_root: str, pack_tiers: list[str], valid_days: int) -> dict:
    settings, keystore = open_root(data_root)
    summary = risk.packs_step(settings, keystore, settings.audit(), tiers=pack_tiers,
                              valid_days=valid_days)
    tick("case-finding-packs")
    return summary


@flow(name="stratify", persist_result=False, log_prints=False)
def stratify_flow(data_root: str, tiers: str = "default", pack_tiers: list[str] | None = None,
                  valid_days: int = 28, external_scores: str | None = None) -> dict:
    """Train and validate (unless external scores are given), score, tier, publish, write packs."""
    logger = get_run_logger()
    pack_tiers = pack_tiers or ["very-high", "high"]
    settings, keystore = open_root(data_root)
    with warehouse_writer(settings, keystore, data_root):
        model = None
        if external_scores is None:
            model = train_model(data_root)
            logger.info("model %s (%s): validation AUROC %.4f, calibration slope %.3f", model["version"],
                        model["kind"], model["auroc"], model["calibration_slope"])
        else:
            tick("train-model")
        scored = score_and_tier(data_root, tiers, external_scores)
        logger.info("scored with %s: %s", scored["model_version"], scored["tiers"])
        marts = publish_marts(data_root)
        packs = case_finding_packs(data_root, pack_tiers, valid_days)
    create_table_artifact(key="risk-tiers", table=[{"tier": t, "people": n} for t, n in scored["tiers"].items()],
                          description="People per risk tier (counts only)")
    lines = [(f"# Stratify\n\nScores from **{scored['model_version']}** ({scored['source']}) for "
             f"{sum(scored['tiers'].values()):,} people registered on {scored['scoring_date']}; "
             f"tiers {scored['scheme']}.")]
    if model:
        lines.append(f"Validation AUROC {model['auroc']:.4f}, calibration slope {model['calibration_slope']:.3f}, "
                     f"intercept {model['calibration_intercept']:+.4f}. Model card: {model['card']}.")
    lines.append(f"{packs['packs']} case-finding packs ({packs['patients']:,} patients in "
                 f"{', '.join(packs['tiers'])}), valid {packs['valid_days']} days.")
    create_markdown_artifact(key="stratify-summary", markdown="\n\n".join(lines) + "\n",
                             description="Stratify summary (counts and metrics only)")
    return {"model": model, "scores": scored, "marts": marts, "packs": packs}
