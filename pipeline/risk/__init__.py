"""Risk stratification: features, models, evaluation, tiers, case-finding packs, re-identification."""

from pipeline.risk.features import (
    FEATURES,
    Feature,
    all_features,
    build_features,
    feature_names,
    ltc_conditions,
)
from pipeline.risk.packs import PackInvalid, public_key_pem, verify_pack
from pipeline.risk.reidentify import reidentify
from pipeline.risk.stratify import (
    compare_with_planted,
    current_model,
    packs_step,
    score_step,
    train_step,
)
from pipeline.risk.tiers import PRESETS, TierScheme, parse_scheme

__all__ = [
    "FEATURES",
    "PRESETS",
    "Feature",
    "PackInvalid",
    "TierScheme",
    "all_features",
    "build_features",
    "compare_with_planted",
    "current_model",
    "feature_names",
    "ltc_conditions",
    "packs_step",
    "parse_scheme",
    "public_key_pem",
    "reidentify",
    "score_step",
    "train_step",
    "verify_pack",
]
