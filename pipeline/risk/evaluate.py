"""How good a risk score is: discrimination, calibration, case-finding utility, by subgroup.

- AUROC with a 95% confidence interval from DeLong's variance (Sun and Xu's fast algorithm);
- calibration slope (logistic regression of the outcome on the score's log-odds) and
  calibration-in-the-large intercept (the same with the slope fixed at 1), Brier score, and a
  binned calibration curve for the plot;
- PPV and sensitivity among the top 0.5%, 1%, 2%, 5% and 20% of scores;
- the same by age band, gender and IMD quintile (subgroup sensitivity and PPV use the
  population-wide cut-off, as the tiers do).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy import optimize, stats

__all__ = ["TOP_SHARES", "auroc_delong", "calibration", "evaluate_scores", "top_share_utility"]

TOP_SHARES = (0.005, 0.01, 0.02, 0.05, 0.20)
MIN_SUBGROUP_EVENTS = 10  # fewer events than this: subgroup AUROC and calibration are not estimated


def auroc_delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float, float]:
    """AUROC and its 95% CI (DeLong)."""
    y = np.asarray(y, dtype=bool)
    pos, neg = score[y], score[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan")
    all_ranks = stats.rankdata(np.concatenate([pos, neg]))
    pos_ranks, neg_ranks = stats.rankdata(pos), stats.rankdata(neg)
    auc = (all_ranks[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (all_ranks[:m] - pos_ranks) / n  # placement of each positive among negatives
    v01 = 1.0 - (all_ranks[m:] - neg_ranks) / m
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n if m > 1 and n > 1 else float("nan")
    half = 1.959964 * math.sqrt(var) if not math.isnan(var) else float("nan")
    return float(auc), float(max(auc - half, 0.0)), float(min(auc + half, 1.0))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def _neg_loglik(params, lp, y, fixed_slope=None):
    a, b = (params[0], fixed_slope) if fixed_slope is not None else params
    eta = a + b * lp
    return float(np.sum(np.logaddexp(0, eta) - y * eta))


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 20) -> dict:
    """Slope, intercept (calibration-in-the-large), Brier score, observed/expected, binned curve."""
    y = np.asarray(y, dtype=float)
    lp = _logit(p)
    slope_fit = optimize.minimize(_neg_loglik, x0=[0.0, 1.0], args=(lp, y), method="BFGS")
    citl = optimize.minimize(_neg_loglik, x0=[0.0], args=(lp, y, 1.0), method="BFGS")
    order = np.argsort(p, kind="stable")
    curve = [{"mean_predicted": float(p[idx].mean()), "observed": float(y[idx].mean()), "n": int(idx.size)}
             for idx in np.array_split(order, bins) if idx.size]
    return {
        "slope": float(slope_fit.x[1]),
        "intercept": float(citl.x[0]),
        "brier": float(np.mean((p - y) ** 2)),
        "observed_rate": float(y.mean()),
        "expected_rate": float(p.mean()),
        "curve": curve,
    }


def _cutoff(score: np.ndarray, share: float) -> tuple[int, np.ndarray]:
    """Indices of the top ``share`` of scores (ceil, ties broken by position: stable)."""
    k = max(1, math.ceil(share * score.size))
    return k, np.argsort(-score, kind="stable")[:k]


def top_share_utility(y: np.ndarray, score: np.ndarray, shares=TOP_SHARES) -> list[dict]:
    y = np.asarray(y, dtype=bool)
    events = int(y.sum())
    rows = []
    for share in shares:
        k, top = _cutoff(score, share)
        hits = int(y[top].sum())
        rows.append({"top_share": share, "flagged": k, "events_flagged": hits, "ppv": hits / k,
                     "sensitivity": hits / events if events else float("nan"),
                     "score_cutoff": float(score[top].min())})
    return rows


def _subgroups(frame: pl.DataFrame) -> dict[str, pl.Series]:
    age = frame["age"]
    band = (pl.when(age.is_null()).then(pl.lit("unknown")).when(age < 18).then(pl.lit("0-17"))
            .when(age < 40).then(pl.lit("18-39")).when(age < 65).then(pl.lit("40-64"))
            .when(age < 75).then(pl.lit("65-74")).when(age < 85).then(pl.lit("75-84")).otherwise(pl.lit("85+")))
    return {
        "age_band": frame.select(band.alias("g"))["g"],
        "gender": frame.select(pl.when(pl.col("female")).then(pl.lit("female")).otherwise(pl.lit("male or unknown"))
                               .alias("g"))["g"],
        "imd_quintile": frame.select(pl.when(pl.col("imd_decile").is_null()).then(pl.lit("unknown"))
                                     .otherwise(((pl.col("imd_decile") + 1) // 2).cast(pl.String)).alias("g"))["g"],
    }


def evaluate_scores(frame: pl.DataFrame, score: np.ndarray) -> dict:
    """Every metric for ``score`` against ``frame['outcome']``; ``frame`` also carries age,
    female and imd_decile for the subgroups."""
    y = frame["outcome"].to_numpy().astype(bool)
    auc, lo, hi = auroc_delong(y, score)
    result = {"people": int(y.size), "events": int(y.sum()),
              "auroc": auc, "auroc_ci": [lo, hi], "calibration": calibration(y, score),
              "top_shares": top_share_utility(y, score)}
    k5, _ = _cutoff(score, 0.05)
    cut5 = float(np.sort(score)[::-1][k5 - 1])
    subgroups = {}
    for name, groups in _subgroups(frame).items():
        rows = []
        values = groups.to_numpy()
        for g in sorted(set(values)):
            idx = values == g
            yy, ss = y[idx], score[idx]
            events = int(yy.sum())
            row = {"group": g, "people": int(idx.sum()), "events": events,
                   "observed_rate": float(yy.mean()), "expected_rate": float(ss.mean()),
                   "flagged_top_5pct": int((ss >= cut5).sum()),
                   "sensitivity_top_5pct": float((yy & (ss >= cut5)).sum() / events) if events else None,
                   "ppv_top_5pct": float((yy & (ss >= cut5)).sum() / max((ss >= cut5).sum(), 1))
                   if (ss >= cut5).any() else None}
            if events >= MIN_SUBGROUP_EVENTS and events < idx.sum():
                row["auroc"] = auroc_delong(yy, ss)[0]
                cal = calibration(yy, ss, bins=10)
                row["calibration_slope"], row["calibration_intercept"] = cal["slope"], cal["intercept"]
            rows.append(row)
        subgroups[name] = rows
    result["subgroups"] = subgroups
    return result
