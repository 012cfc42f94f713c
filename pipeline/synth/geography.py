"""A Southend-like geography: 17 electoral wards, ~110 LSOAs with IMD deciles, postcode units
of the form ``SS1 2AB``, 37 GP practices and the local providers.

All codes are synthetic (ward ``E0509xxxx``, LSOA ``E0109xxxx``, practice ``S9xxxx``) so none
can be mistaken for a real area or organisation; the ward names are Southend's, to make
outputs recognisable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

#: Ward name and a deprivation score (0 least, 1 most deprived) that sets its LSOAs' deciles.
WARDS: tuple[tuple[str, float, str], ...] = (
    ("Belfairs", 0.20, "SS9"),
    ("Blenheim Park", 0.45, "SS9"),
    ("Chalkwell", 0.35, "SS0"),
    ("Eastwood Park", 0.20, "SS9"),
    ("Kursaal", 0.90, "SS1"),
    ("Leigh", 0.25, "SS9"),
    ("Milton", 0.80, "SS0"),
    ("Prittlewell", 0.50, "SS2"),
    ("St Laurence", 0.55, "SS2"),
    ("St Luke's", 0.75, "SS2"),
    ("Shoeburyness", 0.65, "SS3"),
    ("Southchurch", 0.50, "SS1"),
    ("Thorpe", 0.15, "SS1"),
    ("Victoria", 0.90, "SS2"),
    ("West Leigh", 0.10, "SS9"),
    ("West Shoebury", 0.40, "SS3"),
    ("Westborough", 0.85, "SS0"),
)
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # inward-code letters never use C, I, K, M, O, V
PROVIDERS = {"acute": "R9Z", "community": "R9Y", "mental_health": "R9X"}
N_PRACTICES = 37
PRACTICE_KINDS = ("Surgery", "Medical Centre", "Health Centre", "Family Practice", "Medical Practice")


@dataclass(frozen=True)
class Geography:
    wards: pl.DataFrame  # ward_code, ward_name, deprivation
    lsoas: pl.DataFrame  # lsoa21cd, ward_code, imd_decile, weight
    postcodes: pl.DataFrame  # postcode, lsoa21cd, ward_code, ward_name, imd_decile, date_terminated
    practices: pl.DataFrame  # practice_code, practice_name, ward_code, list_weight


def build_geography(rng: np.random.Generator) -> Geography:
    """The synthetic area; deterministic for the generator's state."""
    ward_rows, lsoa_rows, pc_rows = [], [], []
    used_sectors: dict[str, int] = {}
    lsoa_no = 0
    for w, (name, dep, district) in enumerate(WARDS):
        ward_code = f"E0509{w + 1:04d}"
        ward_rows.append((ward_code, name, dep))
        n_lsoa = 6 + int(rng.integers(0, 2))
        for _ in range(n_lsoa):
            lsoa_no += 1
            lsoa = f"E0109{lsoa_no:04d}"
            decile = int(np.clip(round(10 - dep * 9 + rng.normal(0, 1.3)), 1, 10))
            lsoa_rows.append((lsoa, ward_code, decile, float(rng.uniform(0.7, 1.3))))
            sector = used_sectors.get(district, 0) % 10
            used_sectors[district] = used_sectors.get(district, 0) + 1
            units = set()
            while len(units) < 32:
                units.add(
                    UNIT_LETTERS[rng.integers(0, len(UNIT_LETTERS))]
                    + UNIT_LETTERS[rng.integers(0, len(UNIT_LETTERS))]
                )
            for unit in sorted(units):
                pc_rows.append((f"{district} {sector}{unit}", lsoa, ward_code, name, decile))
    wards = pl.DataFrame(ward_rows, schema=["ward_code", "ward_name", "deprivation"], orient="row")
    lsoas = pl.DataFrame(lsoa_rows, schema=["lsoa21cd", "ward_code", "imd_decile", "weight"], orient="row")
    postcodes = pl.DataFrame(
        pc_rows, schema=["postcode", "lsoa21cd", "ward_code", "ward_name", "imd_decile"], orient="row"
    ).unique("postcode", keep="first", maintain_order=True)
    # Sectors are shared by LSOAs in a district, so a unit can repeat: keep it in one LSOA.
    terminated = rng.random(postcodes.height) < 0.03
    postcodes = postcodes.with_columns(
        pl.Series("terminated", terminated),
    )
    practice_wards = rng.choice(wards["ward_code"].to_numpy(), size=N_PRACTICES)
    ward_names = dict(zip(wards["ward_code"], wards["ward_name"], strict=True))
    practices = pl.DataFrame(
        {
            "practice_code": [f"S9{i + 1:04d}" for i in range(N_PRACTICES)],
            "practice_name": [f"{ward_names[w]} {PRACTICE_KINDS[i % len(PRACTICE_KINDS)]}".upper()
                              for i, w in enumerate(practice_wards)],  # ODS publishes names in capitals
            "ward_code": practice_wards,
            "list_weight": rng.lognormal(0, 0.45, N_PRACTICES),
        }
    )
    return Geography(wards, lsoas, postcodes, practices)
