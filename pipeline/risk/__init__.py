"""Risk stratification: features (this step); models, evaluation, tiers and case-finding packs follow."""

from pipeline.risk.features import FEATURES, Feature, build_features, feature_names, ltc_conditions

__all__ = ["FEATURES", "Feature", "build_features", "feature_names", "ltc_conditions"]
