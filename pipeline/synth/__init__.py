"""Synthetic linked population and extracts for every feed, with a planted risk model.

``generate(settings, population, seed)`` writes each feed's deliveries under
``landing/<feed>/`` and the ground truth under ``synthetic-truth/`` (which no flow reads).
Deterministic for a seed. Synthetic NHS numbers come from the never-issued 9xx range.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.contracts import FeedContract, require_contract
from pipeline.settings import Settings, wall_date
from pipeline.synth.activity import generate_activity
from pipeline.synth.extracts import lookup_table, opt_out_tables, person_identity, write_feed_tables
from pipeline.synth.geography import build_geography
from pipeline.synth.population import (
    EXTRACT_DATE,
    FINAL_YEAR_START,
    HISTORY_END,
    HISTORY_START,
    PLANTED_COEFFICIENTS,
    PLANTED_INTERCEPT,
    build_people,
)

__all__ = ["DEFAULT_POPULATION", "EXTRACT_DATE", "FEEDS", "SynthResult", "generate"]

DEFAULT_POPULATION = 175_000
#: Feed contracts the generator writes deliveries for, in writing order.
FEEDS = ("postcode_lookup", "ods_practices", "ndoo", "type1_optout", "gp", "sus_apc", "sus_op", "ecds", "csds", "mhsds",
         "asc")


@dataclass(frozen=True)
class SynthResult:
    population: int
    seed: int
    files: int
    rows: int
    seconds: float
    landing: Path
    truth: Path


def generate(
    settings: Settings,
    population: int = DEFAULT_POPULATION,
    seed: int = 20140601,
    on_step: Callable[[str], None] | None = None,
    on_file: Callable[[str, int], None] | None = None,
    supplier_style: str = "native",
) -> SynthResult:
    """Generate the population and write every feed's deliveries and the ground truth."""
    if population < 100:
        raise ValueError("population must be at least 100")
    started = time.perf_counter()
    step = on_step or (lambda _msg: None)
    contracts: dict[str, FeedContract] = {
        f: require_contract(settings.contracts_dir, f, settings.as_of or EXTRACT_DATE) for f in FEEDS
    }
    rng = np.random.default_rng(seed)
    step("geography")
    geo = build_geography(rng)
    step("people")
    people = build_people(rng, geo, population)
    step("activity")
    tables, truth = generate_activity(rng, people, geo)
    tables.update(opt_out_tables(rng, people))
    tables.update(lookup_table(geo))
    ident = person_identity(people)

    landing, truth_dir = settings.landing, settings.synthetic_truth
    list_date = max(EXTRACT_DATE, wall_date())  # opt-out lists: fetched when processed
    truth_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for feed in FEEDS:
        step(f"writing {feed}")
        written += write_feed_tables(contracts[feed], tables, people, ident, rng, landing, truth_dir, on_file,
                                     list_date=list_date)
    if supplier_style != "native":
        from pipeline.synth.supplier import restyle

        step(f"supplier style: {supplier_style}")
        restyle(landing, contracts, supplier_style)
    step("ground truth")
    truth.write_parquet(truth_dir / "people.parquet")
    seconds = round(time.perf_counter() - started, 2)
    manifest = {
        "population": population,
        "seed": seed,
        "history": [HISTORY_START.isoformat(), HISTORY_END.isoformat()],
        "final_year_start": FINAL_YEAR_START.isoformat(),
        "extract_date": EXTRACT_DATE.isoformat(),
        "opt_out_lists_dated": list_date.isoformat(),
        "planted_model": {"intercept": PLANTED_INTERCEPT, "coefficients": PLANTED_COEFFICIENTS,
                          "outcome": "at least one emergency admission (methods 21-2D, 28) in the final year"},
        "outcome_rate": float(truth["emergency_admission_final_year"].mean()),
        "files": written,
        "supplier_style": supplier_style,
        "seconds": seconds,
        "note": "Ground truth for tests and evaluation only. No flow reads this folder.",
    }
    (truth_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return SynthResult(population, seed, len(written), sum(f["rows"] for f in written), seconds, landing, truth_dir)
