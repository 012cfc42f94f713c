"""People: demographics, geography, long-term conditions, latent need, and the planted model.

The planted model is a logistic model for "at least one emergency admission in the next
year" on features every person's extracts let you compute *at the start of that year*: age,
long-term conditions diagnosed by then, emergency admissions and A&E attendances in the 12
months before, deprivation, and whether a council social care service is running that day.
The same model draws the emergency admissions of the second year (from 1 April 2024) and of
the final year (from 1 April 2025), so risk is stationary: a model trained at 1 April 2024 and
validated at 1 April 2025 (the temporal split of ``pipeline.risk``) faces the same process,
and the true probabilities of the final year are the ceiling any model can reach. The first
year's activity is driven by a latent need ``u`` that no model sees, so the features are
correlated the way real ones are, yet each outcome depends on the observable features alone:
a logistic regression on them recovers the planted coefficients
(tests/acceptance/test_planted_model.py).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline.synth.geography import Geography

HISTORY_START = dt.date(2023, 4, 1)
FINAL_YEAR_START = dt.date(2025, 4, 1)
HISTORY_END = dt.date(2026, 3, 31)
#: Date the synthetic extracts were taken; snapshots carry it and the demo runs "as of" it.
EXTRACT_DATE = dt.date(2026, 4, 15)
YEARS = ((dt.date(2023, 4, 1), dt.date(2024, 3, 31)),
         (dt.date(2024, 4, 1), dt.date(2025, 3, 31)),
         (dt.date(2025, 4, 1), dt.date(2026, 3, 31)))

#: 5-year age band weights, 0-4 .. 95-99 (an older-leaning seaside town).
AGE_BAND_WEIGHTS = np.array(
    [5.4, 5.8, 6.0, 5.5, 5.4, 6.0, 6.4, 6.5, 6.3, 6.2, 6.8, 7.0, 6.5, 5.8, 5.6, 5.0, 3.6, 2.5, 1.3, 0.5]
)

#: condition: (intercept, slope per decade from age 60, deprivation slope); logistic prevalence.
LTC_MODEL: dict[str, tuple[float, float, float]] = {
    "hypertension": (-1.1, 0.55, 0.3),
    "diabetes": (-2.5, 0.30, 0.6),
    "asthma": (-2.7, 0.00, 0.3),
    "copd": (-3.7, 0.50, 0.9),
    "coronary-heart-disease": (-3.1, 0.55, 0.5),
    "atrial-fibrillation": (-3.7, 0.80, 0.1),
    "heart-failure": (-4.6, 0.80, 0.4),
    "chronic-kidney-disease": (-3.1, 0.80, 0.3),
    "dementia": (-6.6, 1.30, 0.2),
    "stroke": (-3.7, 0.60, 0.4),
    "cancer": (-3.1, 0.50, 0.1),
    "epilepsy": (-4.8, 0.00, 0.4),
    "serious-mental-illness": (-4.6, -0.10, 0.9),
}
SNOMED = {
    "hypertension": "38341003", "diabetes": "44054006", "asthma": "195967001", "copd": "13645005",
    "coronary-heart-disease": "53741008", "atrial-fibrillation": "49436004",
    "heart-failure": "84114007", "chronic-kidney-disease": "709044004", "dementia": "52448006",
    "stroke": "230690007", "cancer": "363346000", "epilepsy": "84757009",
    "serious-mental-illness": "58214004",
}

#: The planted model: logit P(emergency admission in the final year) = b0 + sum(b * feature).
PLANTED_INTERCEPT = -3.30
PLANTED_COEFFICIENTS: dict[str, float] = {
    "age_decades": 0.20,  # (age - 50) / 10, age on the reference date
    "age_over_75_decades": 0.50,  # max(age - 75, 0) / 10
    "ltc_count": 0.28,  # conditions diagnosed on or before the reference date
    "log1p_emergency_admissions_12m": 0.95,  # emergency spells in the 12 months before
    "log1p_ae_attendances_12m": 0.30,
    "deprivation": 0.45,  # (10 - IMD decile) / 9: 0 least, 1 most deprived
    "social_care": 0.55,  # a council service running on the reference date
}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _unique_nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct NHS numbers from the never-issued 9xx range, all with valid check digits,
    none a repdigit placeholder. Returned as int64."""
    out = np.empty(0, dtype=np.int64)
    weights = np.arange(10, 1, -1, dtype=np.int64)
    while out.size < n:
        need = int((n - out.size) * 1.25) + 1000
        prefix = rng.integers(900_000_000, 1_000_000_000, size=need, dtype=np.int64)
        digits = (prefix[:, None] // 10 ** np.arange(8, -1, -1, dtype=np.int64)) % 10
        check = (11 - (digits * weights).sum(axis=1) % 11) % 11
        ok = check != 10
        numbers = prefix[ok] * 10 + check[ok]
        repdigit = numbers % 1_111_111_111 == 0
        out = np.unique(np.concatenate([out, numbers[~repdigit]]))
    return rng.permutation(out)[:n]


def build_people(rng: np.random.Generator, geo: Geography, n: int) -> pl.DataFrame:
    """One row per person with everything the activity generator and the truth need."""
    band = rng.choice(len(AGE_BAND_WEIGHTS), size=n, p=AGE_BAND_WEIGHTS / AGE_BAND_WEIGHTS.sum())
    age = (band * 5 + rng.integers(0, 5, size=n)).astype(np.int64)  # age at HISTORY_END
    extra_days = rng.integers(0, 365, size=n)
    end = np.datetime64(HISTORY_END)
    dob = end - (age * 365.25).astype("timedelta64[D]") - extra_days.astype("timedelta64[D]")
    sex = rng.choice(np.array(["1", "2", "9", "X"]), size=n, p=[0.4895, 0.5085, 0.001, 0.001])

    lsoa_w = geo.lsoas["weight"].to_numpy()
    lsoa_idx = rng.choice(geo.lsoas.height, size=n, p=lsoa_w / lsoa_w.sum())
    lsoa = geo.lsoas["lsoa21cd"].to_numpy()[lsoa_idx]
    ward = geo.lsoas["ward_code"].to_numpy()[lsoa_idx]
    imd = geo.lsoas["imd_decile"].to_numpy()[lsoa_idx]
    live_pc = geo.postcodes.filter(~pl.col("terminated"))
    pc_by_lsoa = live_pc.group_by("lsoa21cd", maintain_order=True).agg(pl.col("postcode"))
    pc_lookup = dict(zip(pc_by_lsoa["lsoa21cd"].to_list(), pc_by_lsoa["postcode"].to_list(), strict=True))
    postcode = np.empty(n, dtype=object)
    for code in np.unique(lsoa):
        idx = np.flatnonzero(lsoa == code)
        choices = np.array(pc_lookup[code], dtype=object)
        postcode[idx] = choices[rng.integers(0, len(choices), size=idx.size)]

    # Practices: usually one in the home ward, weighted by list size.
    pr = geo.practices
    pr_codes, pr_wards, pr_w = pr["practice_code"].to_numpy(), pr["ward_code"].to_numpy(), pr["list_weight"].to_numpy()
    any_practice = rng.choice(len(pr_codes), size=n, p=pr_w / pr_w.sum())
    practice = pr_codes[any_practice].astype(object)
    local = rng.random(n) < 0.7
    for w in np.unique(ward):
        in_ward = np.flatnonzero(pr_wards == w)
        if in_ward.size == 0:
            continue
        idx = np.flatnonzero((ward == w) & local)
        ww = pr_w[in_ward]
        practice[idx] = pr_codes[in_ward[rng.choice(in_ward.size, size=idx.size, p=ww / ww.sum())]]

    deprivation = (10 - imd) / 9.0
    decades60 = (age - 60) / 10.0
    ltc = {}
    for cond, (a, b, c) in LTC_MODEL.items():
        ltc[cond] = rng.random(n) < sigmoid(a + b * decades60 + c * deprivation)
    ltc_count = np.sum(np.column_stack(list(ltc.values())), axis=1)
    u = rng.normal(0.0, 0.6, size=n)  # latent need: drives activity, never a model feature

    adult = age >= 18
    p_asc = sigmoid(-4.9 + 0.65 * decades60 + 0.35 * ltc_count + 1.6 * ltc["dementia"]
                    + 1.2 * ltc["serious-mental-illness"] + 0.5 * deprivation + 0.5 * u)
    social_care = adult & (rng.random(n) < p_asc)

    nhs = _unique_nhs_numbers(rng, n)
    frame = pl.DataFrame(
        {
            "person_id": np.arange(1, n + 1, dtype=np.int64),
            "nhs_number": nhs,
            "dob": dob.astype("datetime64[D]"),
            "age": age,
            "sex": sex,
            "lsoa21cd": lsoa,
            "ward_code": ward,
            "imd_decile": imd.astype(np.int64),
            "postcode": postcode.astype(str),
            "practice_code": practice.astype(str),
            "deprivation": deprivation,
            "ltc_count": ltc_count.astype(np.int64),
            "latent_need": u,
            "social_care": social_care,
        }
    )
    return frame.with_columns(
        [pl.Series(f"ltc_{c}", v) for c, v in ltc.items()]
    )


def age_on(dob: np.ndarray, day: dt.date) -> np.ndarray:
    """Age in whole years on ``day`` for each date of birth."""
    born = pl.Series(dob).cast(pl.Date)
    year, month, dom = (born.dt.year().to_numpy(), born.dt.month().to_numpy(), born.dt.day().to_numpy())
    before_birthday = (month > day.month) | ((month == day.month) & (dom > day.day))
    return (day.year - year - before_birthday).astype(np.int64)


def planted_features(*, age: np.ndarray, ltc_count: np.ndarray, emergency_12m: np.ndarray, ae_12m: np.ndarray,
                     deprivation: np.ndarray, social_care: np.ndarray) -> pl.DataFrame:
    """The planted model's design matrix at one reference date (one row per person), named as
    in PLANTED_COEFFICIENTS."""
    return pl.DataFrame(
        {
            "age_decades": (age - 50) / 10.0,
            "age_over_75_decades": np.maximum(age - 75, 0) / 10.0,
            "ltc_count": ltc_count.astype(float),
            "log1p_emergency_admissions_12m": np.log1p(emergency_12m),
            "log1p_ae_attendances_12m": np.log1p(ae_12m),
            "deprivation": np.asarray(deprivation, dtype=float),
            "social_care": social_care.astype(float),
        }
    )


def planted_probability(features: pl.DataFrame) -> np.ndarray:
    logit = np.full(features.height, PLANTED_INTERCEPT)
    for name, beta in PLANTED_COEFFICIENTS.items():
        logit = logit + beta * features[name].to_numpy()
    return sigmoid(logit)
