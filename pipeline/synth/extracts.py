"""Dress canonical records with identifiers, messily, and write every feed's deliveries.

Column lists come from the feed contracts, so a synthetic delivery always has exactly the
contracted columns (including the identifying extras - names, addresses, phones, free-text
notes - that contracts mark for dropping). Messiness follows real extracts: NHS numbers with
spaces or dashes, about 1% with a wrong check digit, missing for about 15% of social care
clients, a few placeholders; postcodes lower-case or unspaced; dates of birth in three formats.

The ground truth (true person per record, the intended NHS number status, the planted model)
goes to ``synthetic-truth/``, which no flow reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.contracts import FeedContract
from pipeline.synth.population import EXTRACT_DATE

FEMALE_NAMES = ["Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Grace", "Freya", "Ella",
                "Margaret", "Patricia", "Susan", "Linda", "Barbara", "Jean", "Joan", "Irene", "Doris",
                "Aisha", "Priya", "Wei", "Agnieszka", "Sofia", "Ngozi"]
MALE_NAMES = ["Noah", "Oliver", "George", "Arthur", "Leo", "Harry", "Oscar", "Jack", "Charlie",
              "Thomas", "David", "John", "Peter", "Michael", "Robert", "Brian", "Kenneth", "Derek",
              "Mohammed", "Tomasz", "Kwame", "Chidi", "Arjun", "Jun", "Luca"]
FIRST_NAMES = FEMALE_NAMES + MALE_NAMES
SURNAMES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
            "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
            "Wood", "Jackson", "Clarke", "Khan", "Hughes", "Edwards", "Turner", "Hill", "Moore",
            "Cooper", "Ward", "King", "Baker", "Harris", "Lewis", "Martin", "Nowak", "Okafor", "Chen"]
STREETS = ["London Road", "Victoria Avenue", "Southchurch Road", "Hamlet Court Road", "Elmsleigh Drive",
           "Eastwood Road", "Fairfax Drive", "Leigh Road", "Prittlewell Chase", "Thorpe Hall Avenue",
           "Shoebury Road", "Bournemouth Park Road", "Chalkwell Avenue", "Rectory Grove", "Sutton Road"]
NOTES = ["{first} seen at home, lives alone; daughter visits on Sundays.",
         "Telephone review with {first} {last}. Call back on {phone}.",
         "Carer reports falls at {address}.", "No concerns raised.", "",
         "Patient {first} anxious about discharge; son {other} to attend next visit."]


@dataclass(frozen=True)
class Mess:
    """How untidy one table's identifiers are (shares of records)."""

    nhs_missing: float = 0.004
    nhs_bad_check: float = 0.01
    nhs_placeholder: float = 0.001
    nhs_spaced: float = 0.12
    nhs_dashed: float = 0.05
    dob_formats: tuple[tuple[str, float], ...] = (("%Y-%m-%d", 0.8), ("%d/%m/%Y", 0.12), ("%Y%m%d", 0.08))
    postcode_lower: float = 0.10
    postcode_unspaced: float = 0.10
    postcode_missing: float = 0.004
    gender_style: str = "nhs"  # nhs: 1/2/9/X; council: M/F/U and Male/Female


MESS: dict[str, Mess] = {
    "asc_clients": Mess(nhs_missing=0.15, nhs_bad_check=0.015, dob_formats=(("%d/%m/%Y", 0.7), ("%Y-%m-%d", 0.3)),
                        postcode_lower=0.2, postcode_unspaced=0.15, gender_style="council"),
    "gp_registrations": Mess(nhs_missing=0.001, nhs_bad_check=0.002, nhs_spaced=0.02, nhs_dashed=0.0),
    "gp_ltc_diagnoses": Mess(nhs_missing=0.001, nhs_bad_check=0.002, nhs_spaced=0.02, nhs_dashed=0.0),
    "gp_prescribing": Mess(nhs_missing=0.001, nhs_bad_check=0.002, nhs_spaced=0.02, nhs_dashed=0.0),
    "ndoo_list": Mess(nhs_missing=0, nhs_bad_check=0, nhs_placeholder=0, nhs_spaced=0, nhs_dashed=0),
    "type1_optout_list": Mess(nhs_missing=0, nhs_bad_check=0, nhs_placeholder=0, nhs_spaced=0, nhs_dashed=0),
}
PLACEHOLDERS = np.array(["0000000000", "1111111111", "9999999999"])

#: How each table is cut into deliveries: by month of a date column, or one snapshot.
PERIOD_BY: dict[str, str] = {
    "sus_apc_spells": "admission_date",
    "sus_op_attendances": "appointment_date",
    "ecds_attendances": "arrival_date",
    "csds_contacts": "contact_date",
    "mhsds_contacts": "contact_date",
    "asc_services": "start_date",
    "gp_prescribing": "year_end",  # one yearly extract dated at the year's end
}
NSPL_EDITION = "2026-02"
#: Opt-out lists are fetched when the extracts are processed, not when they were taken: the
#: generator dates them on the day it runs (never before the extract date), as a safe haven
#: replaying an old extract must still apply today's objections.
OPT_OUT_LISTS = ("ndoo_list", "type1_optout_list")


def person_identity(people: pl.DataFrame) -> pl.DataFrame:
    """Name, address and phone per person (consistent across feeds)."""
    pid = people["person_id"].to_numpy()
    female = people["sex"].to_numpy() == "2"
    male = people["sex"].to_numpy() == "1"
    first = np.where(female, np.asarray(FEMALE_NAMES)[(pid * 7919) % len(FEMALE_NAMES)],
                     np.where(male, np.asarray(MALE_NAMES)[(pid * 7919) % len(MALE_NAMES)],
                              np.asarray(FIRST_NAMES)[(pid * 7919) % len(FIRST_NAMES)]))
    last = np.asarray(SURNAMES)[(pid * 104729) % len(SURNAMES)]
    other = np.asarray(FIRST_NAMES)[(pid * 31) % len(FIRST_NAMES)]
    street = np.asarray(STREETS)[(pid * 13) % len(STREETS)]
    return pl.DataFrame({
        "person_id": pid,
        "first": first, "last": last, "other": other,
        "address": pl.Series(((pid * 17) % 180 + 1).astype(str)) + " " + pl.Series(street) + ", Southend-on-Sea",
        "phone": pl.Series("01702 " + np.char.zfill(((pid * 7331) % 1_000_000).astype(str), 6)),
    })


def _dress(frame: pl.DataFrame, people: pl.DataFrame, ident: pl.DataFrame, mess: Mess, rng,
           needed: set[str]) -> pl.DataFrame:
    """Add the messy identifier columns a table's contract asks for (and only those), plus the
    intended NHS number status for the ground truth, to a canonical frame."""
    n = frame.height
    joined = frame.join(people.select("person_id", "nhs_number", "dob", "postcode", "sex", "practice_code"),
                        on="person_id", how="left", suffix="_registered")
    if needed & {"patient_name", "client_name", "triage_notes", "clinician_notes", "case_notes", "address", "phone"}:
        joined = joined.join(ident, on="person_id", how="left")
    # Draw every random number, whether used or not, so each table's draws do not depend on
    # which columns its contract has.
    r = rng.random(n)
    shift = rng.integers(1, 10, n)
    fmt = rng.random(n)
    dob_pick = rng.choice(len(mess.dob_formats), size=n, p=[w for _, w in mess.dob_formats])
    pc_r = rng.random(n)
    gender_r = rng.random(n)
    note_pick = rng.integers(0, len(NOTES), n)
    placeholder_pick = rng.integers(0, len(PLACEHOLDERS), n)

    missing = r < mess.nhs_missing
    placeholder = (r >= mess.nhs_missing) & (r < mess.nhs_missing + mess.nhs_placeholder)
    bad = (r >= mess.nhs_missing + mess.nhs_placeholder) & (r < mess.nhs_missing + mess.nhs_placeholder + mess.nhs_bad_check)
    status = np.where(missing, "missing", np.where(placeholder, "placeholder", np.where(bad, "invalid_checksum", "valid")))
    out: dict[str, pl.Series] = {"_nhs_status": pl.Series(status)}

    if "nhs_number" in needed:
        true_nhs = joined["nhs_number"].to_numpy()
        wrong = true_nhs - true_nhs % 10 + (true_nhs % 10 + shift) % 10
        nhs_text = pl.Series(np.where(bad, wrong, true_nhs)).cast(pl.String).str.zfill(10)
        spaced = nhs_text.str.slice(0, 3) + " " + nhs_text.str.slice(3, 3) + " " + nhs_text.str.slice(6, 4)
        dashed = nhs_text.str.slice(0, 3) + "-" + nhs_text.str.slice(3, 3) + "-" + nhs_text.str.slice(6, 4)
        out["nhs_number"] = pl.select(
            pl.when(pl.Series(missing)).then(None)
            .when(pl.Series(placeholder)).then(pl.Series(PLACEHOLDERS[placeholder_pick]))
            .when(pl.Series(fmt < mess.nhs_spaced)).then(spaced)
            .when(pl.Series(fmt < mess.nhs_spaced + mess.nhs_dashed)).then(dashed)
            .otherwise(nhs_text)).to_series()
    if "date_of_birth" in needed:
        dob = joined["dob"]
        text = pl.Series([None] * n, dtype=pl.String)
        for i, (f, _) in enumerate(mess.dob_formats):
            text = pl.select(pl.when(pl.Series(dob_pick == i)).then(dob.dt.strftime(f)).otherwise(text)).to_series()
        out["date_of_birth"] = text
    if "postcode" in needed:
        pc = joined["postcode"]
        out["postcode"] = pl.select(
            pl.when(pl.Series(pc_r < mess.postcode_missing)).then(None)
            .when(pl.Series(pc_r < mess.postcode_missing + mess.postcode_lower)).then(pc.str.to_lowercase())
            .when(pl.Series(pc_r < mess.postcode_missing + mess.postcode_lower + mess.postcode_unspaced))
            .then(pc.str.replace(" ", ""))
            .otherwise(pc)).to_series()
    if "gender" in needed:
        sex = joined["sex"]
        if mess.gender_style == "council":
            long_form = pl.Series(gender_r < 0.3)
            out["gender"] = pl.select(
                pl.when(sex == "1").then(pl.when(long_form).then(pl.lit("Male")).otherwise(pl.lit("M")))
                .when(sex == "2").then(pl.when(long_form).then(pl.lit("Female")).otherwise(pl.lit("F")))
                .otherwise(pl.lit("U"))).to_series()
        else:
            out["gender"] = sex
    for col in needed & {"patient_name", "client_name"}:
        out[col] = joined["first"] + " " + joined["last"]
    notes_cols = needed & {"triage_notes", "clinician_notes", "case_notes"}
    if notes_cols:
        notes = pl.select(
            pl.lit(pl.Series(np.asarray(NOTES)[note_pick]))
            .str.replace("{first}", pl.lit(joined["first"]), literal=True)
            .str.replace("{last}", pl.lit(joined["last"]), literal=True)
            .str.replace("{phone}", pl.lit(joined["phone"]), literal=True)
            .str.replace("{address}", pl.lit(joined["address"]), literal=True)
            .str.replace("{other}", pl.lit(joined["other"]), literal=True)
        ).to_series()
        for col in notes_cols:
            out[col] = notes
    if "gp_practice_code" in needed:
        out["gp_practice_code"] = joined["practice_code_registered" if "practice_code_registered" in joined.columns
                                         else "practice_code"]
    keep = [c for c in joined.columns if c in frame.columns or c in {"address", "phone"} & needed]
    return joined.select(keep).with_columns(**out)


def write_feed_tables(
    contract: FeedContract,
    tables: dict[str, pl.DataFrame],
    people: pl.DataFrame,
    ident: pl.DataFrame,
    rng: np.random.Generator,
    landing,
    truth_dir,
    on_file: Callable[[str, int], None] | None = None,
    list_date: dt.date | None = None,
) -> list[dict]:
    """Write one feed's deliveries; return a manifest entry per file. Opt-out lists are dated
    ``list_date`` (default: the extract date)."""
    written = []
    feed_dir = landing / contract.name
    feed_dir.mkdir(parents=True, exist_ok=True)
    for tname, spec in contract.tables.items():
        frame = tables[tname]
        mess = MESS.get(tname, Mess())
        if "person_id" in frame.columns:
            frame = _dress(frame, people, ident, mess, rng, set(spec.column_names))
        period_col = PERIOD_BY.get(tname)
        if period_col == "year_end":
            period = pl.col("year_end").cast(pl.String)
        elif period_col:
            period = pl.col(period_col).dt.strftime("%Y-%m")
        elif tname == "postcode_lookup":
            period = pl.lit(NSPL_EDITION)
        elif tname in OPT_OUT_LISTS and list_date is not None:
            period = pl.lit(list_date.isoformat())
        else:
            period = pl.lit(EXTRACT_DATE.isoformat())
        frame = frame.with_columns(_period=period).sort("_period", maintain_order=True)
        frame = frame.with_columns(_row=pl.int_range(pl.len()).over("_period"))
        out_cols = list(spec.column_names)
        missing = [c for c in out_cols if c not in frame.columns]
        if missing:
            raise KeyError(f"synthetic table {tname} cannot fill contract columns {missing}")
        for (period_value,), part in frame.group_by("_period", maintain_order=True):
            name = f"{tname}_{period_value}_v1.csv"
            part.select(out_cols).write_csv(feed_dir / name, float_precision=2, date_format="%Y-%m-%d")
            if "person_id" in part.columns:
                truth = part.select(
                    pl.lit(f"{contract.name}/{name}").alias("file"), pl.col("_row").alias("row"), "person_id",
                    pl.col("_nhs_status").alias("intended_nhs_status") if "_nhs_status" in part.columns
                    else pl.lit(None, dtype=pl.String).alias("intended_nhs_status"))
                (truth_dir / "records").mkdir(parents=True, exist_ok=True)
                truth.write_parquet(truth_dir / "records" / f"{name.removesuffix('.csv')}.parquet")
            written.append({"feed": contract.name, "file": name, "rows": part.height})
            if on_file:
                on_file(name, part.height)
    return written


def opt_out_tables(rng, people: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """National data opt-out (about 5%) and type 1 (about 3%) lists."""
    n = people.height
    ndoo = people.filter(pl.Series(rng.random(n) < 0.05)).select("person_id")
    t1 = people.filter(pl.Series(rng.random(n) < 0.03)).select("person_id", "practice_code")
    return {"ndoo_list": ndoo, "type1_optout_list": t1}


def lookup_table(geo) -> dict[str, pl.DataFrame]:
    """The reference files: the postcode lookup (NSPL-shaped) and the practices (ODS epraccur-shaped)."""
    pc = geo.postcodes
    return {"ods_practices": geo.practices.select("practice_code", "practice_name"), "postcode_lookup": pc.select(
        "postcode", "lsoa21cd", "ward_code", "ward_name", "imd_decile",
        imd_edition=pl.lit("IoD2025"),
        date_terminated=pl.when(pl.col("terminated")).then(pl.lit(dt.date(2024, 6, 30))).otherwise(None),
    )}
