"""Synthetic people-by-ward x age band x gender x risk tier count tables for the disclosure
benchmarks: Southend-like (17 wards under the total) and England-like (about 7,000 wards in
local authorities of 25 in regions of 35). Ward sizes vary around 9,000 people (17,000 in
Southend); the top risk tiers are rare and concentrated in old age, as risk scores are, so
the small cells fall where they do in real commissioning tables."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.disclosure import TOTAL, CountTable, Dimension, build_table

AGES = [f"{5 * i}-{5 * i + 4}" for i in range(18)] + ["90+"]
GENDERS = ["Female", "Male"]
TIERS = ["1 very high", "2 high", "3 moderate", "4 low"]
AGE_SHARE = np.array([6, 6, 6, 6, 6.5, 7, 7, 7, 6.5, 6.5, 7, 7, 6.5, 5.5, 5, 4.5, 3, 2, 1.2])


def ward_counts(n_wards: int, people: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ages = AGE_SHARE / AGE_SHARE.sum()
    risk = 1 / (1 + np.exp(-(np.arange(19) - 15) / 1.6))
    t1, t2, t3 = 0.02 * risk, 0.14 * risk + 0.005, 0.35 * risk + 0.06
    tiers = np.stack([t1, t2, t3, 1 - t1 - t2 - t3], axis=1)
    size = rng.normal(people, people * 0.15, n_wards).clip(people * 0.4)
    lam = size[:, None, None, None] * ages[None, :, None, None] * 0.5 * tiers[None, :, None, :]
    lam = np.broadcast_to(lam, (n_wards, 19, 2, 4)) * rng.uniform(0.7, 1.3, (n_wards, 1, 1, 4))
    counts = rng.poisson(lam)
    idx = np.indices(counts.shape).reshape(4, -1)
    wards = np.array([f"W{w:05d}" for w in range(n_wards)])
    return pl.DataFrame({"ward": wards[idx[0]], "age_band": np.array(AGES)[idx[1]],
                         "gender": np.array(GENDERS)[idx[2]], "risk_tier": np.array(TIERS)[idx[3]],
                         "count": counts.reshape(-1)}).filter(pl.col("count") > 0)


def ward_dimension(n_wards: int, per_authority: int | None, per_region: int | None) -> Dimension:
    wards = [f"W{w:05d}" for w in range(n_wards)]
    if not per_authority:
        return Dimension.flat("ward", wards)
    parents: dict[str, str] = {}
    for w, ward in enumerate(wards):
        authority = f"LA{w // per_authority:04d}"
        region = f"R{w // per_authority // per_region:02d}" if per_region else TOTAL
        parents[ward], parents[authority] = authority, region
        if per_region:
            parents[region] = TOTAL
    return Dimension("ward", parents)


def ward_table(n_wards: int, people: int = 9000, per_authority: int | None = 25, per_region: int | None = 35,
               seed: int = 0) -> CountTable:
    dims = [ward_dimension(n_wards, per_authority, per_region), Dimension.flat("age_band", AGES),
            Dimension.flat("gender", GENDERS), Dimension.flat("risk_tier", TIERS)]
    return build_table(ward_counts(n_wards, people, seed), dims)


SOUTHEND = {"n_wards": 17, "people": 10_500, "per_authority": None, "per_region": None}
ENGLAND = {"n_wards": 7000, "people": 8_000, "per_authority": 25, "per_region": 35}
