"""One measured step per child process (see benchmarks/run.py); prints one JSON line last."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synth(population: str, root: str) -> dict:
    from pipeline.settings import Settings
    from pipeline.synth import EXTRACT_DATE, generate

    result = generate(Settings(data_root=Path(root), as_of=EXTRACT_DATE), population=int(population), seed=1)
    return {"seconds": result.seconds, "rows": result.rows, "files": result.files}


def bigfile(root: str, out_dir: str) -> dict:
    """Concatenate every outpatient delivery into one file (one big monthly delivery)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "sus_op_attendances_2026-03_v9.csv"
    parts = sorted((Path(root) / "landing" / "sus_op").glob("*.csv"))
    rows = 0
    with open(target, "wb") as fh:
        for i, part in enumerate(parts):
            with open(part, "rb") as src:
                header = src.readline()
                if i == 0:
                    fh.write(header)
                for line in src:
                    fh.write(line)
                    rows += 1
    return {"path": str(target), "rows": rows, "mb": round(target.stat().st_size / 2**20)}


def validate(path: str, root: str, batch_mb: str) -> dict:
    import shutil

    from pipeline.ingest.gate import ValidationGate
    from pipeline.settings import Settings
    from pipeline.synth import EXTRACT_DATE

    settings = Settings(data_root=Path(root), as_of=EXTRACT_DATE, validation_batch_bytes=int(batch_mb) * 2**20)
    landing = settings.landing / "sus_op"
    landing.mkdir(parents=True, exist_ok=True)
    copy = landing / Path(path).name
    shutil.copy(path, copy)
    gate = ValidationGate(settings)
    gate.contract("sus_op")
    gate.gx  # noqa: B018 - start GX before the clock, as a long-running flow would
    started = time.perf_counter()
    result = gate.validate(copy, "sus_op")
    seconds = time.perf_counter() - started
    if not result.passed:
        raise SystemExit(f"benchmark delivery failed the gate: {result.reasons}")
    return {"seconds": seconds, "rows": result.rows, "batches": result.batches}


def duckscan(path: str) -> dict:
    import duckdb

    con = duckdb.connect()
    started = time.perf_counter()
    (rows,) = con.execute("SELECT count(*) FROM read_csv(?, header = true, all_varchar = true)", [path]).fetchone()
    return {"seconds": time.perf_counter() - started, "rows": rows}


if __name__ == "__main__":
    task, *args = sys.argv[1:]
    info = {"synth": synth, "bigfile": bigfile, "validate": validate, "duckscan": duckscan}[task](*args)
    info["peak_rss_mb"] = round(_peak_mb(), 1)
    print(json.dumps(info))
