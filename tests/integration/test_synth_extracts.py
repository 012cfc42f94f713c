"""The synthetic extracts look like real ones: consistent people, realistic messiness."""

import re

import polars as pl

IDENTIFIERS = ["nhs_number", "postcode", "date_of_birth"]


def _read(landing, feed, prefix):
    frames = [pl.read_csv(p, infer_schema=False) for p in sorted((landing / feed).glob(f"{prefix}_*.csv"))]
    return pl.concat(frames)


def _checksum_ok(digits: str) -> bool:
    total = sum((10 - i) * int(d) for i, d in enumerate(digits[:9]))
    check = (11 - total % 11) % 11
    return check != 10 and check == int(digits[9])


def test_identifier_messiness_is_realistic(population_root):
    landing = population_root / "landing"
    clients = _read(landing, "asc", "asc_clients")
    missing = clients["nhs_number"].is_null().mean()
    # About 15% of social care clients have no NHS number (within 4 binomial standard errors).
    assert abs(missing - 0.15) < 4 * (0.15 * 0.85 / clients.height) ** 0.5, (missing, clients.height)

    spells = pl.concat([_read(landing, f, p).select(IDENTIFIERS) for f, p in
                        [("sus_op", "sus_op_attendances"), ("ecds", "ecds_attendances"), ("sus_apc", "sus_apc_spells")]])
    nhs = spells["nhs_number"].drop_nulls().to_list()
    assert any(" " in n for n in nhs) and any("-" in n for n in nhs)
    digits = [re.sub(r"\D", "", n) for n in nhs]
    placeholder = sum(len(set(d)) == 1 for d in digits) / len(digits)
    bad = sum(not _checksum_ok(d) for d in digits) / len(digits)
    assert 0.004 < bad < 0.02 and placeholder < 0.005
    assert all(d.startswith("9") for d in digits if len(set(d)) > 1)

    postcodes = spells["postcode"].drop_nulls()
    assert postcodes.str.contains(r"^[a-z]").any() and (~postcodes.str.contains(" ")).any()
    dob = spells["date_of_birth"].drop_nulls()
    assert dob.str.contains("/").any() and dob.str.contains(r"^\d{8}$").any() and dob.str.contains("-").any()


def test_each_person_keeps_one_nhs_number_across_feeds(population_root):
    truth = population_root / "synthetic-truth" / "records"
    landing = population_root / "landing"
    seen: dict[int, set[str]] = {}
    for feed, table in [("sus_apc", "sus_apc_spells"), ("gp", "gp_registrations"), ("ecds", "ecds_attendances")]:
        for path in sorted((landing / feed).glob(f"{table}_*.csv")):
            rows = pl.read_csv(path, infer_schema=False).with_row_index("row")
            rec = pl.read_parquet(truth / f"{path.stem}.parquet").with_columns(pl.col("row").cast(pl.UInt32))
            joined = rows.join(rec, on="row").filter(pl.col("intended_nhs_status") == "valid")
            for pid, nhs in zip(joined["person_id"], joined["nhs_number"], strict=True):
                seen.setdefault(pid, set()).add(re.sub(r"\D", "", nhs))
    assert len(seen) > 1000
    assert all(len(v) == 1 for v in seen.values())
    numbers = [next(iter(v)) for v in seen.values()]
    assert len(numbers) == len(set(numbers))  # never shared between people


def test_contracted_extra_identifiers_are_present_for_the_firewall_to_drop(population_root):
    clients = _read(population_root / "landing", "asc", "asc_clients")
    for col in ("client_name", "address", "phone", "case_notes"):
        assert col in clients.columns and clients[col].drop_nulls().len() > 0
