"""The evaluation harness against independent references, and the tier assignment."""

import itertools
import math

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from pipeline.risk.evaluate import auroc_delong, calibration, evaluate_scores, top_share_utility
from pipeline.risk.tiers import PRESETS, TierScheme, assign_tiers, parse_scheme

RNG = np.random.default_rng(5)


def _population(n=20_000, slope=1.0, shift=0.0):
    x = RNG.normal(size=n)
    p_true = 1 / (1 + np.exp(-(-2.5 + x)))
    y = RNG.random(n) < p_true
    predicted = 1 / (1 + np.exp(-((-2.5 + x) / slope + shift)))
    return y, predicted


def test_delong_auroc_equals_sklearn_and_its_interval_covers_it():
    y, p = _population()
    auc, lo, hi = auroc_delong(y, p)
    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert lo < auc < hi and 0.005 < hi - lo < 0.04


def test_delong_interval_matches_the_bootstrap():
    y, p = _population(4000)
    _, lo, hi = auroc_delong(y, p)
    boots = []
    for _ in range(300):
        i = RNG.integers(0, y.size, y.size)
        boots.append(roc_auc_score(y[i], p[i]))
    assert (hi - lo) / 2 == pytest.approx(1.96 * np.std(boots), rel=0.2)


def test_ties_count_half():
    y = np.array([1, 0, 1, 0], dtype=bool)
    assert auroc_delong(y, np.array([0.5, 0.5, 0.5, 0.5]))[0] == 0.5


def test_calibration_of_true_probabilities_and_of_overconfident_ones():
    y, p = _population(slope=1.0)
    good = calibration(y, p)
    assert good["slope"] == pytest.approx(1.0, abs=0.08) and abs(good["intercept"]) < 0.05
    assert good["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    # Scores twice as extreme on the log-odds scale: slope 0.5.
    y2, over = _population(slope=0.5)
    assert calibration(y2, over)["slope"] == pytest.approx(0.5, abs=0.05)
    # The slope agrees with an unpenalised logistic regression on the log-odds.
    lp = np.log(over / (1 - over)).reshape(-1, 1)
    reference = LogisticRegression(C=np.inf).fit(lp, y2).coef_[0][0]
    assert calibration(y2, over)["slope"] == pytest.approx(reference, abs=1e-3)
    # Scores too high by 0.5 on the log-odds: calibration-in-the-large about -0.5.
    y3, high = _population(shift=0.5)
    assert calibration(y3, high)["intercept"] == pytest.approx(-0.5, abs=0.08)


def test_top_share_ppv_and_sensitivity_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    rows = {r["top_share"]: r for r in top_share_utility(y, score, shares=(0.2, 0.5))}
    assert rows[0.2]["flagged"] == 2 and rows[0.2]["ppv"] == 1.0 and rows[0.2]["sensitivity"] == pytest.approx(2 / 3)
    assert rows[0.5]["flagged"] == 5 and rows[0.5]["ppv"] == pytest.approx(3 / 5) and rows[0.5]["sensitivity"] == 1.0


def test_subgroups_partition_the_population():
    y, p = _population(3000)
    frame = pl.DataFrame({"outcome": y, "age": RNG.integers(0, 100, y.size), "female": RNG.random(y.size) < 0.5,
                          "imd_decile": RNG.integers(1, 11, y.size)})
    result = evaluate_scores(frame, p)
    for groups in result["subgroups"].values():
        assert sum(g["people"] for g in groups) == y.size and sum(g["events"] for g in groups) == y.sum()
    assert {g["group"] for g in result["subgroups"]["imd_quintile"]} == {"1", "2", "3", "4", "5"}


def _scores(n):
    return pl.DataFrame({"person_pid": [f"p{i:05d}" for i in range(n)], "score": RNG.random(n),
                         "age": RNG.integers(0, 100, n)})


def test_default_tiers_take_their_shares_from_the_top():
    frame = _scores(10_000)
    tiered = assign_tiers(frame, PRESETS["default"])
    counts = dict(tiered.group_by("tier").len().iter_rows())
    assert counts == {"very-high": 50, "high": 450, "moderate": 1500, "low": 8000}
    # Every very-high score is above every high score, and so on down.
    order = ["very-high", "high", "moderate", "low"]
    by_tier = {t: tiered.filter(pl.col("tier") == t)["score"] for t in order}
    for upper, lower in itertools.pairwise(order):
        assert by_tier[upper].min() >= by_tier[lower].max()
    assert tiered["tier_rank"].to_list() == list(range(1, 10_001))


def test_ties_are_broken_by_pseudonym_so_reruns_agree():
    frame = pl.DataFrame({"person_pid": ["c", "a", "b", "d"], "score": [0.5, 0.5, 0.5, 0.1], "age": [50] * 4})
    scheme = TierScheme("t", (("top", 0.5),), "rest")
    tiered = assign_tiers(frame, scheme)
    assert tiered.filter(pl.col("tier") == "top")["person_pid"].to_list() == ["a", "b"]
    assert assign_tiers(frame.reverse(), scheme).equals(tiered)


def test_adults_preset_ranks_adults_only():
    frame = _scores(5000)
    tiered = assign_tiers(frame, PRESETS["adults-top-2"])
    adults = frame.filter(pl.col("age") >= 18).height
    selected = tiered.filter(pl.col("tier") == "case-management")
    assert selected.height == math.ceil(0.02 * adults) and selected["age"].min() >= 18
    assert (tiered.filter(pl.col("age") < 18)["tier"] == "not-eligible").all()


def test_scheme_text_and_its_errors():
    scheme = parse_scheme("top:1,next:9")
    assert scheme.bands == (("top", 0.01), ("next", 0.09)) and scheme.rest == "low"
    for bad in ("top:x", "a:60,b:50", "a:1,a:2", "a:-1"):
        with pytest.raises(ValueError, match="tier scheme"):
            parse_scheme(bad)
