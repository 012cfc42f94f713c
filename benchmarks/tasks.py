"""One measured step per child process (see benchmarks/run.py); prints one JSON line last."""

from __future__ import annotations

import itertools
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


def pseudonyms(n: str, root: str = "") -> dict:
    """Distinct values per second on one core: ours (polars-hash), pandas row by row, DuckDB SQL."""
    import hashlib
    import hmac
    import os
    import statistics

    import duckdb
    import numpy as np
    import pandas as pd
    import polars as pl

    from pipeline.pseudonymise import MESSAGE_PREFIX, hmac_expr

    assert os.environ.get("POLARS_MAX_THREADS") == "1", "run with POLARS_MAX_THREADS=1 (per core)"
    count = int(n)
    numbers = pl.Series("d", np.random.default_rng(5).choice(10**9, count, replace=False) + 9 * 10**9).cast(pl.String)
    frame = pl.DataFrame({"d": numbers})
    key = os.urandom(32).hex().encode()

    def ours():
        started = time.perf_counter()
        frame.select(hmac_expr(pl.col("d"), key, MESSAGE_PREFIX))
        return time.perf_counter() - started

    ours_rate = count / statistics.median(ours() for _ in range(3))
    sample = numbers.head(min(count, 300_000)).to_list()
    pdf = pd.DataFrame({"d": sample})
    started = time.perf_counter()
    pdf["pid"] = pdf["d"].apply(lambda v: hmac.new(key, (MESSAGE_PREFIX + v).encode(), hashlib.sha256).hexdigest()[:32])
    pandas_rate = len(sample) / (time.perf_counter() - started)
    con = duckdb.connect(config={"threads": 1})
    con.register("numbers", frame.head(min(count, 1_000_000)).to_arrow())
    ipad = bytes(b ^ 0x36 for b in key.ljust(64, b"\0")).hex()
    opad = bytes(b ^ 0x5C for b in key.ljust(64, b"\0")).hex()
    started = time.perf_counter()
    con.execute(
        "SELECT count(DISTINCT left(sha256(unhex(?) || unhex(sha256(unhex(?) || encode(? || d)))), 32)) FROM numbers",
        [opad, ipad, MESSAGE_PREFIX],
    ).fetchone()
    sql_rate = min(count, 1_000_000) / (time.perf_counter() - started)
    check = frame.head(1).select(hmac_expr(pl.col("d"), key, MESSAGE_PREFIX)).item()
    assert check == hmac.new(key, (MESSAGE_PREFIX + numbers[0]).encode(), hashlib.sha256).hexdigest()[:32]
    out = {"ours": ours_rate, "pandas_row_by_row": pandas_rate, "duckdb_sql_hmac": sql_rate, "values": count}
    if root:
        # A real delivery column: every outpatient row of the population, with its repeats.
        from pipeline.pseudonymise import pseudonymise_column, with_nhs_number_status

        raw = pl.concat([pl.read_csv(p, columns=["nhs_number"], infer_schema=False)
                         for p in sorted((Path(root) / "landing" / "sus_op").glob("*.csv"))])
        column = with_nhs_number_status(raw, "nhs_number", allow_test_range=True, digits="d").select("d")
        column = column.drop_nulls()
        started = time.perf_counter()
        pseudonymise_column(column, "d", key, "pid")
        ours_rows = column.height / (time.perf_counter() - started)
        out |= {"column_rows": column.height, "column_distinct": column["d"].n_unique(),
                "ours_rows_per_second": ours_rows, "pandas_rows_per_second": pandas_rate}
    return out


def _fresh(root: Path) -> None:
    import shutil

    for zone in ("staging", "validation", "audit", "prefect", "keys"):
        shutil.rmtree(root / zone, ignore_errors=True)
    shutil.rmtree(root / "landing" / "_ingested", ignore_errors=True)


def stage(root: str) -> dict:
    """Ingest every delivery and keep staging (the input of the link benchmarks)."""
    info = ingest(root, keep="yes")
    for zone in ("warehouse", "marts", "reports"):
        import shutil

        shutil.rmtree(Path(root) / zone, ignore_errors=True)
    return info


def _link_settings(root: str):
    from pipeline.settings import Settings
    from pipeline.synth import EXTRACT_DATE

    return Settings(data_root=Path(root), as_of=EXTRACT_DATE, allow_synthetic_nhs_numbers=True)


def link(root: str) -> dict:
    """The library's link steps on a fresh warehouse, each timed: load, link (spine, rescue,
    record linkage), quality report, marts."""
    import shutil

    from pipeline import linkage
    from pipeline.audit import AuditLog
    from pipeline.keys import open_keystore

    settings = _link_settings(root)
    for zone in ("warehouse", "marts", "reports"):
        shutil.rmtree(Path(root) / zone, ignore_errors=True)
    keystore = open_keystore(settings, create_demo=True)
    for name in keystore.data_key_names("warehouse-"):
        keystore.destroy_data_key(name)  # a fresh warehouse generation each run
    times = {}
    started = time.perf_counter()
    linkage.load_deliveries(settings, keystore)
    times["load"] = time.perf_counter() - started
    built = linkage.build_linked_tables(settings, keystore)
    times["link"] = time.perf_counter() - started - times["load"]
    mark = time.perf_counter()
    linkage.write_quality_report(settings, keystore)
    times["report"] = time.perf_counter() - mark
    mark = time.perf_counter()
    linkage.publish(settings, keystore, AuditLog(settings.audit_log))
    times["marts"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    return {"seconds": times, "people": built["people"], "records": built["records"],
            "rescued": built["rescue"]["rescued"]}


def evaluate(root: str) -> dict:
    """Precision and recall of the last link run against the synthetic truth (own process:
    not in the link's time or memory; the truth is never a pipeline input)."""
    from pipeline import linkage
    from pipeline.keys import open_keystore

    settings = _link_settings(root)
    quality, _ = linkage.write_quality_report(settings, open_keystore(settings, create_demo=True),
                                              truth_dir=settings.synthetic_truth)
    return quality["evaluation"]


def stratify(root: str) -> dict:
    """The stratify steps on a linked root, each timed: the features and frames at the training
    and validation dates, both model fits, the refit, scoring (features at the scoring date,
    scores, tiers, drivers) and the packs; and the floor: one DuckDB scan counting every
    person's activity in a year, the least any feature build must read."""
    from pipeline.keys import open_keystore
    from pipeline.linkage import open_warehouse
    from pipeline.linkage.linked import create_linked_views, warehouse_tables
    from pipeline.risk import ltc_conditions
    from pipeline.risk.dataset import ACTIVITY_SOURCES, activity_coverage
    from pipeline.risk.packs import write_packs
    from pipeline.risk.scores import score_with_model, write_scores
    from pipeline.risk.tiers import PRESETS
    from pipeline.risk.train import default_dates, train_models

    settings = _link_settings(root)
    keystore = open_keystore(settings, create_demo=True)
    conditions = ltc_conditions(settings.contracts_dir, settings.today())
    con = open_warehouse(settings, keystore).open(create=False)
    marks = []
    try:
        started = time.perf_counter()
        result = train_models(con, conditions, settings.models_dir,
                              progress=lambda step: marks.append((step, time.perf_counter())))
        marks.append(("end", time.perf_counter()))
        steps = {a[0]: b[1] - a[1] for a, b in itertools.pairwise(marks)}
        times = {"training_frame": steps["training frame"], "validation_frame": steps["validation frame"],
                 "fit_logistic": steps["fit logistic"], "fit_boosted": steps["fit gradient-boosted"],
                 "refit": next(v for k, v in steps.items() if k.startswith("refit")),
                 "train_total": time.perf_counter() - started}
        dates = default_dates(activity_coverage(con))
        mark = time.perf_counter()
        tiered = score_with_model(con, result.model, conditions, dates.score, PRESETS["default"])
        times["score"] = time.perf_counter() - mark
        write_scores(con, tiered, scoring_date=dates.score, model_version=result.version, source="model")
        mark = time.perf_counter()
        packs = write_packs(con, keystore, settings.case_finding_dir)
        times["packs"] = time.perf_counter() - mark
        # The floor: one scan of a year's activity, counted per person.
        present = warehouse_tables(con)
        linked = [t for t in create_linked_views(con, present) if t in ACTIVITY_SOURCES]
        dates_of = {"sus_apc_spells": "admission_date", "sus_op_attendances": "appointment_date",
                    "ecds_attendances": "arrival_date", "csds_contacts": "contact_date", "mhsds_contacts": "contact_date"}
        union = " UNION ALL ".join(
            f"SELECT person_pid FROM linked_{t} WHERE {dates_of[t]} >= DATE '{dates.validate}' - INTERVAL 1 YEAR "
            f"AND {dates_of[t]} < DATE '{dates.validate}'" for t in linked)
        mark = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TEMP TABLE _floor AS SELECT person_pid, count(*) AS n FROM ({union}) "
                    "GROUP BY person_pid").fetchall()
        times["floor_scan"] = time.perf_counter() - mark
    finally:
        con.close()
    card = result.card
    chosen = card["validation"][card["model"]["kind"]]
    return {"seconds": times, "people_scored": tiered.height, "packs": len(packs),
            "training_people": card["data"]["training"]["people"],
            "chosen": card["model"]["kind"], "auroc": round(chosen["auroc"], 4),
            "calibration_slope": round(chosen["calibration"]["slope"], 3)}


def sqllink(root: str, out: str) -> dict:
    """The hand-written baseline: one DuckDB SQL script (benchmarks/baseline_link.sql) over
    the same staged data, into an encrypted file. Staged files are encrypted, which a plain
    script cannot read: they are decrypted to a plain copy first, outside the timing, so the
    baseline pays no decryption and the ratio includes what encryption at rest costs us."""
    import secrets
    import shutil

    import pyarrow.parquet as pq

    from pipeline.ingest.staging import read_staged
    from pipeline.keys import open_keystore
    from pipeline.linkage.warehouse import connect

    target = Path(out)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    settings = _link_settings(root)
    keystore = open_keystore(settings, create_demo=True)
    plain = target / "staging"
    for path in settings.staging.rglob("*.parquet"):
        if "_bridges" in path.parts:
            continue
        copy = plain / path.relative_to(settings.staging)
        copy.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(read_staged(settings.staging, path, keystore), copy)
    script = (Path(__file__).parent / "baseline_link.sql").read_text().replace("{staging}", str(plain))
    con = connect()
    started = time.perf_counter()
    con.execute(f"ATTACH '{target / 'baseline.duckdb'}' AS b (ENCRYPTION_KEY $k)", {"k": secrets.token_hex(32)})
    con.execute("USE b")
    con.execute(script)
    seconds = time.perf_counter() - started
    people, records, rescued = con.execute(
        "SELECT (SELECT count(*) FROM spine), (SELECT count(*) FROM record_linkage), (SELECT count(*) FROM rescued)").fetchone()
    con.close()
    shutil.rmtree(target, ignore_errors=True)
    return {"seconds": seconds, "people": people, "records": records, "rescued": rescued}


def ingest(root: str, keep: str = "") -> dict:
    """The whole ingest (gate, firewall, opt-outs, staging, manifests, audit, GX results and
    Data Docs) over every delivery of a synthetic population."""
    from pipeline.ingest.ingest import Ingestor
    from pipeline.keys import open_keystore
    from pipeline.settings import Settings
    from pipeline.synth import EXTRACT_DATE

    root_path = Path(root)
    _fresh(root_path)
    settings = Settings(data_root=root_path, as_of=EXTRACT_DATE, allow_synthetic_nhs_numbers=True)
    ingestor = Ingestor(settings, open_keystore(settings, create_demo=True))
    started = time.perf_counter()
    results = ingestor.ingest_all()
    seconds = time.perf_counter() - started
    bad = [r.delivery_id for r in results if r.status != "staged"]
    if bad:
        raise SystemExit(f"benchmark ingest did not stage everything: {bad[:5]}")
    rows = sum(r.rows_in for r in results)
    if not keep:
        _fresh(root_path)
    return {"seconds": seconds, "rows": rows, "deliveries": len(results)}


def ingestflow(root: str, runner: str) -> dict:
    """The Prefect ingest flow over every delivery, its activity deliveries on two local threads
    or on a local Dask cluster of two single-thread worker processes (the same two cores)."""
    import os

    os.environ.update({"SAFEHAVEN_AS_OF": "2026-04-15", "SAFEHAVEN_ALLOW_SYNTHETIC_NHS_NUMBERS": "true"})
    from pipeline.flows import prefect_environment
    from pipeline.settings import load_settings

    root_path = Path(root)
    _fresh(root_path)
    settings = load_settings(data_root=root_path)
    prefect_environment(settings)
    from prefect.task_runners import ThreadPoolTaskRunner

    from pipeline.flows.ingest import ingest_flow

    cluster = None
    if runner == "dask":
        import distributed
        from prefect_dask import DaskTaskRunner

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                           silence_logs=40)
        task_runner = DaskTaskRunner(address=cluster.scheduler_address)
    else:
        task_runner = ThreadPoolTaskRunner(max_workers=2)
    try:
        started = time.perf_counter()
        summary = ingest_flow.with_options(task_runner=task_runner)(data_root=str(root_path.resolve()))
        seconds = time.perf_counter() - started
    finally:
        if cluster is not None:
            cluster.close()
    if summary["quarantined"]:
        raise SystemExit("benchmark ingest flow quarantined a delivery")
    _fresh(root_path)
    return {"seconds": seconds, "rows": summary["rows_in"], "deliveries": summary["deliveries"]}


def barecopy(root: str, out: str) -> dict:
    """DuckDB reading every landing CSV and writing it to Parquet: no governance at all."""
    import shutil

    import duckdb

    files = sorted(p for p in (Path(root) / "landing").rglob("*.csv") if "_quarantine" not in p.parts)
    target = Path(out)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    con = duckdb.connect()
    started = time.perf_counter()
    rows = 0
    for i, path in enumerate(files):
        con.execute(f"COPY (SELECT * FROM read_csv(?, header = true, all_varchar = true)) TO '{target}/{i}.parquet' "
                    "(FORMAT parquet)", [str(path)])
        rows += con.execute(f"SELECT count(*) FROM '{target}/{i}.parquet'").fetchone()[0]
    seconds = time.perf_counter() - started
    shutil.rmtree(target, ignore_errors=True)
    return {"seconds": seconds, "rows": rows, "files": len(files)}


def disclosure(scale: str) -> dict:
    """Suppression and audit of a ward x age band x gender x risk tier table with full margins,
    and the plain "1-7 -> *" rule on the same table for comparison."""
    from benchmarks.disclosure_tables import ENGLAND, SOUTHEND, ward_table
    from pipeline.disclosure import PROFILES, apply_primary, audit_release
    from pipeline.disclosure.audit import recoverable_by_subtraction
    from pipeline.disclosure.record import information_loss
    from pipeline.disclosure.secondary import protect

    started = time.perf_counter()
    table = ward_table(**(SOUTHEND if scale == "southend" else ENGLAND))
    built = time.perf_counter()
    profile = PROFILES["safehaven"]
    plain = apply_primary(table, profile)
    one_step = int(recoverable_by_subtraction(plain).sum())
    plain_failures = len(audit_release(plain).failures) if scale == "southend" else None
    t0 = time.perf_counter()
    release = protect(apply_primary(table, profile))
    t1 = time.perf_counter()
    result = audit_release(release)
    t2 = time.perf_counter()
    ours, before = information_loss(release), information_loss(plain)
    return {"scale": scale, "cells": table.cells.height, "atoms": table.atoms.height, "people": ours["people"],
            "build_seconds": built - started, "suppress_seconds": t1 - t0, "audit_seconds": t2 - t1,
            "primaries": int(plain.hidden.sum()), "secondaries": ours["secondary_cells"],
            "audit_passed": result.passed, "audit_methods": result.by_method(),
            "hidden_share": ours["hidden_share"], "plain_hidden_share": before["hidden_share"],
            "hidden_people_share": ours["hidden_people_share"],
            "plain_hidden_people_share": before["hidden_people_share"], "hidden_margins": ours["margins_hidden"],
            "plain_recoverable_by_subtraction": one_step, "plain_audit_failures": plain_failures}


def engines(scale: str) -> dict:
    """Each secondary-suppression engine on one table (``southend``: 17 wards, 5,400 cells; ``small``:
    one ward, 600 cells), with the same primaries and widths, beside the plain "1-7 -> *" rule:
    cells, margins and people hidden, seconds, and whether the audit passes."""
    import dataclasses

    from benchmarks.disclosure_tables import SOUTHEND, ward_table
    from pipeline.disclosure import PROFILES, apply_primary, audit_release
    from pipeline.disclosure.record import information_loss
    from pipeline.disclosure.secondary import METHODS, protect

    table = ward_table(**(SOUTHEND | ({"n_wards": 1} if scale == "small" else {})))
    profile = PROFILES["safehaven"]
    plain = information_loss(apply_primary(table, profile))
    rows = {"plain 1-7": {"hidden_share": plain["hidden_share"], "margins_hidden": plain["margins_hidden"],
                          "hidden_people_share": plain["hidden_people_share"], "seconds": 0.0, "audit_passed": False}}
    # The joint engine again under sliding protection (only the interval's width counts, as
    # tau-Argus's sliding protection level), audited under that rule.
    sliding = dataclasses.replace(profile, name="safehaven-sliding", sliding=True)
    runs = [(m, m, profile) for m in METHODS if m != "auto"] + [("joint, sliding", "joint", sliding)]
    for name, method, rules in runs:  # auto is joint or cube by size
        started = time.perf_counter()
        release = protect(apply_primary(table, rules), method)
        seconds = time.perf_counter() - started
        loss = information_loss(release)
        rows[name] = {"hidden_share": loss["hidden_share"], "margins_hidden": loss["margins_hidden"],
                        "hidden_people_share": loss["hidden_people_share"], "hidden_cells": loss["hidden_cells"],
                        "seconds": round(seconds, 1), "audit_passed": audit_release(release).passed}
    return {"scale": scale, "cells": table.cells.height, "engines": rows}


def retain(root: str, out: str) -> dict:
    """Retention on a copy of a linked root with the clock moved to 2029-06-01 (the first year of
    five-year feeds and GP diagnoses older than ten years are due), each step timed; and the
    floor: copying the whole warehouse into a new encrypted file (``COPY FROM DATABASE``), which
    any rebuild under a new key must at least do."""
    import datetime as dt
    import secrets
    import shutil

    from pipeline.audit import AuditLog
    from pipeline.keys import open_keystore
    from pipeline.linkage.warehouse import Warehouse, connect
    from pipeline.retention.plan import make_plan
    from pipeline.retention.run import run_retention
    from pipeline.settings import Settings

    target = Path(out)
    shutil.rmtree(target, ignore_errors=True)
    for zone in ("warehouse", "staging", "marts", "keys", "audit"):
        if (Path(root) / zone).exists():
            shutil.copytree(Path(root) / zone, target / zone)
    as_of = dt.date(2029, 6, 1)
    settings = Settings(data_root=target, as_of=as_of, allow_synthetic_nhs_numbers=True)
    keystore = open_keystore(settings, create_demo=True)
    warehouse = Warehouse(settings.warehouse_dir, keystore)
    pointer = warehouse.current()
    old = warehouse.path_for(pointer["generation"])
    con = connect()
    started = time.perf_counter()
    con.execute(f"ATTACH '{old}' AS old (ENCRYPTION_KEY $k, READ_ONLY)",
                {"k": keystore.data_key(f"warehouse-g{pointer['generation']}").hex()})
    con.execute(f"ATTACH '{target / 'floor.duckdb'}' AS floor (ENCRYPTION_KEY $k)", {"k": secrets.token_hex(32)})
    con.execute("COPY FROM DATABASE old TO floor")
    con.execute("CHECKPOINT floor")
    floor = time.perf_counter() - started
    con.close()
    (target / "floor.duckdb").unlink()
    warehouse_bytes = old.stat().st_size

    started = time.perf_counter()
    plan = make_plan(settings, keystore, as_of)
    times = {"plan": time.perf_counter() - started}
    marks = [time.perf_counter()]

    def step(name: str) -> None:
        now = time.perf_counter()
        times[name] = now - marks[-1]
        marks.append(now)

    started = time.perf_counter()
    marks[0] = started
    cert = run_retention(settings, keystore, AuditLog(settings.audit_log), as_of, progress=step)
    times["run"] = time.perf_counter() - started
    result = {"seconds": times, "floor_copy_seconds": floor, "warehouse_mb": round(warehouse_bytes / 2**20),
              "records_destroyed": cert["totals"]["records"], "records_before": sum(
                  v for k, v in cert["warehouse"]["rows_before"].items() if k.startswith("stg_")),
              "files_destroyed": cert["totals"]["files"], "keys_destroyed": len(cert["keys_destroyed"]),
              "due_items": len(plan.due()), "verified": cert["verification"]["passed"],
              "bytes_scanned": cert["verification"]["bytes_scanned"]}
    shutil.rmtree(target, ignore_errors=True)
    return result


if __name__ == "__main__":
    task, *args = sys.argv[1:]
    tasks = {"synth": synth, "bigfile": bigfile, "validate": validate, "duckscan": duckscan,
             "pseudonyms": pseudonyms, "ingest": ingest, "ingestflow": ingestflow, "barecopy": barecopy, "stage": stage, "link": link, "evaluate": evaluate,
             "stratify": stratify, "disclosure": disclosure, "engines": engines,
             "sqllink": sqllink, "retain": retain}
    info = tasks[task](*args)
    info["peak_rss_mb"] = round(_peak_mb(), 1)
    print(json.dumps(info))
