"""Activity for every feed, consistent per person, plus the outcome drawn from the planted model.

Each table comes back as a polars frame in *canonical* form: ``person_id`` plus the table's
attribute columns with clean values. ``pipeline.synth.extracts`` then dresses each record
with the person's identifiers (messily, as real extracts are) and writes the deliveries.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline.synth.geography import PROVIDERS, Geography
from pipeline.synth.population import (
    EXTRACT_DATE,
    HISTORY_END,
    HISTORY_START,
    LTC_MODEL,
    SNOMED,
    YEARS,
    age_on,
    planted_features,
    planted_probability,
)

EMERGENCY_METHODS = (["21", "22", "23", "24", "25", "2A", "2B", "2D", "28"],
                     [0.58, 0.20, 0.02, 0.04, 0.02, 0.06, 0.03, 0.04, 0.01])
ELECTIVE_METHODS = (["11", "12", "13", "81"], [0.55, 0.25, 0.15, 0.05])
ICD10 = ["I50", "J44", "J18", "N39", "I21", "I48", "E11", "R07", "S72", "K80", "C34", "M17",
         "H25", "K57", "R55", "F03", "I63", "J45", "A41", "R10"]
TFC = ["100", "101", "110", "120", "130", "300", "301", "320", "330", "340", "400", "410", "430", "502", "800"]
CSDS_SERVICES = (["district-nursing", "community-matron", "physiotherapy", "podiatry", "speech-and-language", "rehabilitation"],
                 [0.40, 0.08, 0.20, 0.18, 0.04, 0.10])
MH_TEAMS = (["A01", "A02", "A05", "C02", "E01"], [0.45, 0.15, 0.20, 0.10, 0.10])
ASC_SERVICES = {
    # service: (probability, weekly cost low, high)
    "home-care": (0.38, 150, 600),
    "residential-care": (0.12, 700, 1100),
    "nursing-care": (0.06, 900, 1400),
    "day-care": (0.10, 60, 200),
    "direct-payment": (0.12, 100, 500),
    "reablement": (0.14, 0, 0),
    "equipment": (0.08, 0, 50),
}


def _repeat(counts: np.ndarray) -> np.ndarray:
    """Person indices repeated by their counts."""
    return np.repeat(np.arange(counts.size), counts)


def _dates(rng, n: int, start: dt.date, end: dt.date) -> np.ndarray:
    span = (end - start).days + 1
    return np.datetime64(start) + rng.integers(0, span, size=n).astype("timedelta64[D]")


def _numbered(frame: pl.DataFrame, id_column: str, prefix: str, width: int, *sort_by: str) -> pl.DataFrame:
    """Sort records and give each a record id ``<prefix><zero-padded number>`` in that order."""
    number = pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(width)
    return frame.sort(*sort_by).with_columns(pl.format(prefix + "{}", number).alias(id_column))


def _choice(rng, options, n):
    values, probs = options
    p = np.asarray(probs, dtype=float)
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p / p.sum())]


def generate_activity(rng: np.random.Generator, people: pl.DataFrame, geo: Geography):
    """All canonical tables, and the per-person truth (features, probability, outcome)."""
    n = people.height
    age = people["age"].to_numpy()
    ltc = people["ltc_count"].to_numpy()
    dep = people["deprivation"].to_numpy()
    u = people["latent_need"].to_numpy()
    asc = people["social_care"].to_numpy()
    pid = people["person_id"].to_numpy()
    a10 = (age - 50) / 10.0

    lam_emerg = np.exp(-3.35 + 0.22 * a10 + 0.28 * ltc + 0.45 * dep + 0.5 * asc + u)
    lam_elect = np.exp(-2.9 + 0.20 * a10 + 0.20 * ltc + 0.3 * u)
    lam_ae = np.exp(-1.45 + 0.04 * a10 + 0.12 * ltc + 0.55 * dep + 0.8 * u)
    lam_op = np.exp(0.05 + 0.12 * a10 + 0.25 * ltc + 0.5 * u)
    lam_cs = np.exp(-1.7 + 0.55 * a10 + 0.35 * ltc + 1.0 * asc + u) * (age >= 18)
    in_mh = people["ltc_serious-mental-illness"].to_numpy() | (rng.random(n) < 0.015)
    lam_mh = np.where(in_mh, 5.0 * np.exp(0.5 * u), 0.0)

    dob = people["dob"].to_numpy().astype("datetime64[D]")
    # Long-term conditions, each with its diagnosis date (some fall inside the history).
    ltc_rows = []
    for cond in LTC_MODEL:
        has = np.flatnonzero(people[f"ltc_{cond}"].to_numpy())
        diag = np.maximum(np.datetime64(HISTORY_END) - rng.integers(30, 365 * 20, has.size).astype("timedelta64[D]"),
                          dob[has] + np.timedelta64(1, "D"))
        ltc_rows.append(pl.DataFrame({"person_id": pid[has], "condition": cond, "snomed_code": SNOMED[cond],
                                      "diagnosis_date": diag}))
    ltc_diag = pl.concat(ltc_rows).join(people.select("person_id", "practice_code"), on="person_id").sort("person_id", "condition")

    # Adult social care: clients and their services.
    clients = people.filter(pl.col("social_care")).select("person_id")
    c_idx = clients["person_id"].to_numpy() - 1
    reason = np.where(people["ltc_dementia"].to_numpy()[c_idx], "memory-and-cognition",
             np.where(people["ltc_serious-mental-illness"].to_numpy()[c_idx], "mental-health",
                      _choice(rng, (["physical-support", "sensory-support", "learning-disability", "social-support"],
                                    [0.75, 0.07, 0.10, 0.08]), c_idx.size)))
    clients = clients.with_columns(
        client_id=pl.format("C{}", (pl.col("person_id") * 7 + 100_003).cast(pl.String).str.zfill(7)),
        primary_support_reason=pl.Series(reason.astype(str)),
        extract_date=pl.lit(EXTRACT_DATE),
    )
    k = rng.integers(1, 4, clients.height)
    i = _repeat(k)
    names = list(ASC_SERVICES)
    probs = np.array([v[0] for v in ASC_SERVICES.values()])
    stype = np.asarray(names, dtype=object)[rng.choice(len(names), size=i.size, p=probs / probs.sum())]
    lo = np.array([ASC_SERVICES[s][1] for s in stype]); hi = np.array([ASC_SERVICES[s][2] for s in stype])
    start = _dates(rng, i.size, HISTORY_START, HISTORY_END)
    length = rng.integers(14, 900, i.size).astype("timedelta64[D]")
    end = start + length
    services = pl.DataFrame({
        "client_id": clients["client_id"].to_numpy()[i].astype(str),
        "person_id": clients["person_id"].to_numpy()[i],
        "service_type": stype.astype(str),
        "start_date": start,
        "end_date": end,
        "weekly_cost": np.round(lo + (hi - lo) * rng.random(i.size), 2),
    })
    services = _numbered(services, "service_id", "SV", 8, "start_date", "client_id").with_columns(
        end_date=pl.when(pl.col("end_date") <= pl.lit(HISTORY_END)).then(pl.col("end_date")).otherwise(None),
    )

    ltc_person = ltc_diag["person_id"].to_numpy() - 1
    ltc_date = ltc_diag["diagnosis_date"].to_numpy()
    svc_person = services["person_id"].to_numpy() - 1
    svc_start = services["start_date"].to_numpy()
    svc_end = services["end_date"].fill_null(dt.date(9999, 12, 31)).to_numpy()

    # The first year: emergency admissions and A&E driven by latent need.
    emerg_counts = [rng.poisson(lam_emerg), None, None]
    ae_counts = [rng.poisson(lam_ae) for _ in range(2)]
    spells, ae_from_spells = [], [np.zeros(n, dtype=np.int64) for _ in range(3)]

    def emergency_spells(year: int, counts: np.ndarray):
        idx = _repeat(counts)
        start, end = YEARS[year]
        adm = _dates(rng, idx.size, start, end)
        method = _choice(rng, EMERGENCY_METHODS, idx.size)
        los = rng.geometric(1.0 / (2.5 + 0.6 * np.clip(a10[idx], 0, None)), size=idx.size) - 1
        via_ae = method == "21"
        np.add.at(ae_from_spells[year], idx[via_ae], 1)
        return idx, adm, method, los, via_ae

    def planted_at(year: int) -> pl.DataFrame:
        """The planted features on the first day of ``year`` (as at the end of the day before),
        from the year before it."""
        day = np.datetime64(YEARS[year][0])
        running = (svc_start < day) & (svc_end >= day - np.timedelta64(1, "D"))
        return planted_features(
            age=age_on(dob, YEARS[year][0]),
            ltc_count=np.bincount(ltc_person[ltc_date < day], minlength=n),
            emergency_12m=emerg_counts[year - 1],
            ae_12m=ae_counts[year - 1] + ae_from_spells[year - 1],
            deprivation=dep,
            social_care=np.bincount(svc_person[running], minlength=n) > 0,
        )

    # The second and final years: emergency admissions drawn from the planted model.
    spells.append(("emergency", *emergency_spells(0, emerg_counts[0])))
    for year in (1, 2):
        features = planted_at(year)
        p_true = planted_probability(features)
        outcome = rng.random(n) < p_true
        emerg_counts[year] = np.where(outcome, 1 + rng.poisson(0.25 + 0.3 * np.log1p(emerg_counts[year - 1])), 0)
        spells.append(("emergency", *emergency_spells(year, emerg_counts[year])))

    # Elective spells, all three years.
    for year in range(3):
        counts = rng.poisson(lam_elect)
        idx = _repeat(counts)
        start, end = YEARS[year]
        spells.append(("elective", idx, _dates(rng, idx.size, start, end), _choice(rng, ELECTIVE_METHODS, idx.size),
                       rng.integers(0, 3, size=idx.size), np.zeros(idx.size, dtype=bool)))

    idx = np.concatenate([s[1] for s in spells])
    adm = np.concatenate([s[2] for s in spells])
    method = np.concatenate([s[3] for s in spells])
    los = np.concatenate([s[4] for s in spells]).astype(np.int64)
    via_ae = np.concatenate([s[5] for s in spells])
    emergency = np.concatenate([np.full(s[1].size, s[0] == "emergency") for s in spells])
    disch = adm + los.astype("timedelta64[D]")
    cost = np.where(emergency, 1400 + 420 * los, 1100 + 900 * rng.random(idx.size) * (1 + los))
    cost = np.round(cost * rng.uniform(0.85, 1.15, size=idx.size), 2)
    still_in = disch > np.datetime64(HISTORY_END)
    apc = pl.DataFrame({
        "person_id": pid[idx],
        "admission_date": adm,
        "discharge_date": disch,
        "discharged": ~still_in,
        "admission_method": method.astype(str),
        "primary_diagnosis": np.asarray(ICD10, dtype=object)[rng.integers(0, len(ICD10), idx.size)].astype(str),
        "spell_cost": cost,
        "provider_code": PROVIDERS["acute"],
        "emergency": emergency,
        "via_ae": via_ae,
    })
    apc = _numbered(apc, "spell_id", "APC", 9, "admission_date", "person_id").with_columns(
        discharge_date=pl.when(pl.col("discharged")).then(pl.col("discharge_date")).otherwise(None),
    ).drop("discharged")

    # A&E: background attendances each year plus one per emergency admission via A&E.
    ae_parts = []
    for year in range(3):
        counts = ae_counts[year] if year < 2 else rng.poisson(lam_ae)
        i = _repeat(counts)
        start, end = YEARS[year]
        ae_parts.append(pl.DataFrame({"person_id": pid[i], "arrival_date": _dates(rng, i.size, start, end),
                                      "admitted": np.where(rng.random(i.size) < 0.04, "Y", "N")}))
    linked = apc.filter(pl.col("via_ae")).select("person_id", arrival_date="admission_date").with_columns(admitted=pl.lit("Y"))
    ecds = _numbered(pl.concat([*ae_parts, linked]), "attendance_id", "AE", 9, "arrival_date", "person_id")
    m = ecds.height
    dept = np.where(ecds["admitted"].to_numpy() == "Y", "01", _choice(rng, (["01", "03", "04", "02"], [0.6, 0.28, 0.1, 0.02]), m))
    acuity = np.where(ecds["admitted"].to_numpy() == "Y",
                      _choice(rng, (["1", "2", "3"], [0.15, 0.45, 0.40]), m),
                      _choice(rng, (["2", "3", "4", "5"], [0.1, 0.35, 0.4, 0.15]), m))
    ecds = ecds.with_columns(
        department_type=pl.Series(dept.astype(str)),
        acuity=pl.Series(acuity.astype(str)),
        provider_code=pl.lit(PROVIDERS["acute"]),
    )

    # Outpatients.
    i = _repeat(rng.poisson(lam_op * 3))
    dna_p = 0.05 + 0.05 * dep[i]
    status = np.where(rng.random(i.size) < dna_p, "3",
                      _choice(rng, (["5", "6", "7", "2", "4"], [0.88, 0.04, 0.01, 0.04, 0.03]), i.size))
    op = _numbered(pl.DataFrame({
        "person_id": pid[i],
        "appointment_date": _dates(rng, i.size, HISTORY_START, HISTORY_END),
        "attendance_status": status.astype(str),
        "first_attendance": _choice(rng, (["1", "2", "3", "4"], [0.30, 0.55, 0.05, 0.10]), i.size).astype(str),
        "treatment_function_code": np.asarray(TFC, dtype=object)[rng.integers(0, len(TFC), i.size)].astype(str),
        "appointment_cost": np.round(rng.uniform(110, 260, i.size), 2),
        "provider_code": PROVIDERS["acute"],
    }), "attendance_id", "OP", 10, "appointment_date", "person_id")

    # Community and mental health contacts.
    i = _repeat(rng.poisson(lam_cs * 3))
    csds = _numbered(pl.DataFrame({
        "person_id": pid[i],
        "contact_date": _dates(rng, i.size, HISTORY_START, HISTORY_END),
        "service_type": _choice(rng, CSDS_SERVICES, i.size).astype(str),
        "duration_minutes": rng.integers(10, 91, i.size),
        "provider_code": PROVIDERS["community"],
    }), "contact_id", "CS", 9, "contact_date", "person_id")
    i = _repeat(rng.poisson(lam_mh * 3))
    mhsds = _numbered(pl.DataFrame({
        "person_id": pid[i],
        "contact_date": _dates(rng, i.size, HISTORY_START, HISTORY_END),
        "team_type": _choice(rng, MH_TEAMS, i.size).astype(str),
        "attended": np.where(rng.random(i.size) < 0.86, "Y", "N"),
        "provider_code": PROVIDERS["mental_health"],
    }), "contact_id", "MH", 9, "contact_date", "person_id")

    # GP: registrations (a previous practice for some), LTC diagnoses, prescribing per year.
    reg_start = np.datetime64(HISTORY_END) - rng.integers(0, 365 * 15, n).astype("timedelta64[D]")
    reg_start = np.maximum(reg_start, dob)
    current = pl.DataFrame({"person_id": pid, "practice_code": people["practice_code"],
                            "registration_start": reg_start, "registration_end": None}).with_columns(
        pl.col("registration_end").cast(pl.Date))
    moved = np.flatnonzero((rng.random(n) < 0.08) & (reg_start > dob + np.timedelta64(400, "D")))
    prev_practice = geo.practices["practice_code"].to_numpy()[rng.integers(0, geo.practices.height, moved.size)]
    prev_start = np.maximum(reg_start[moved] - rng.integers(365, 365 * 8, moved.size).astype("timedelta64[D]"), dob[moved])
    previous = pl.DataFrame({"person_id": pid[moved], "practice_code": prev_practice.astype(str),
                             "registration_start": prev_start, "registration_end": reg_start[moved] - np.timedelta64(1, "D")})
    registrations = pl.concat([previous, current]).sort("person_id", "registration_start").with_columns(
        extract_date=pl.lit(EXTRACT_DATE))

    rx_parts = []
    for year in range(3):
        k = np.minimum(rng.poisson(0.15 + 0.6 * ltc + 0.015 * np.maximum(age - 40, 0)), 15)
        i = _repeat(k)
        start, end = YEARS[year]
        first = _dates(rng, i.size, start, end - dt.timedelta(days=60))
        last = first + rng.integers(0, 60, i.size).astype("timedelta64[D]")
        rx_parts.append(pl.DataFrame({
            "person_id": pid[i], "bnf_chapter": np.char.zfill(rng.integers(1, 16, i.size).astype(str), 2),
            "first_issue_date": first, "last_issue_date": last, "issue_count": rng.integers(1, 13, i.size),
            "year_end": np.full(i.size, np.datetime64(end, "D"))}))
    prescribing = (pl.concat(rx_parts).unique(["person_id", "year_end", "bnf_chapter"], keep="first", maintain_order=True)
                   .join(people.select("person_id", "practice_code"), on="person_id").sort("year_end", "person_id", "bnf_chapter"))

    # The truth: who each person is, the planted features on the first day of the final year,
    # the true probability and the outcome.
    truth = people.select("person_id", "age", "sex", "lsoa21cd", "ward_code", "imd_decile", "practice_code",
                          social_care_client="social_care").with_columns(
        features,
        true_probability=pl.Series(p_true),
        emergency_admission_final_year=pl.Series(outcome),
    )
    tables = {
        "sus_apc_spells": apc.drop("emergency", "via_ae"),
        "ecds_attendances": ecds,
        "sus_op_attendances": op,
        "csds_contacts": csds,
        "mhsds_contacts": mhsds,
        "gp_registrations": registrations,
        "gp_ltc_diagnoses": ltc_diag,
        "gp_prescribing": prescribing,
        "asc_clients": clients,
        "asc_services": services,
    }
    return tables, truth
