"""`make bench`: generation time and peak memory (175k and 2M people); validation-gate
throughput against a bare DuckDB scan of the same file; pseudonyms per core; the whole ingest
against a bare CSV->Parquet copy; the link steps against a hand-written single DuckDB SQL
script doing the same joins (``benchmarks/baseline_link.sql``); and the stratify steps
(features, training, scoring) with the features against one bare scan of a year's activity; and
disclosure control (suppression + audit) of a ward x age x gender x tier table at Southend and
England scale, with its information loss against the plain "1-7 -> *" rule.

Each measured step runs in its own child process, which reports its own peak RSS.
Timings are medians of repeated runs; the validation ratio compares the gate with DuckDB on
the same file in the same command, so machine noise largely cancels. Results go to
``benchmarks/results/latest.json`` and ``latest.md`` (and a dated copy).

    python -m benchmarks.run [--quick]    # --quick: 20k and 200k people, one repeat
    python -m benchmarks.run --only link  # just one group (link, stratify or disclosure); the rest is kept from latest.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = HERE / "work"


def child(args: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``python -m benchmarks.tasks ARGS``; return (seconds, peak RSS in MB, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.tasks", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GX_ANALYTICS_ENABLED": "false", **(env or {})})
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"benchmark task {args} failed:\n{err[-3000:]}")
    peak = json.loads(out.strip().splitlines()[-1]).get("peak_rss_mb", 0.0)
    return seconds, peak, out


def bench_generation(population: int, repeats: int) -> dict:
    times, peaks, rows = [], [], 0
    for _ in range(repeats):
        root = WORK / f"synth-{population}"
        shutil.rmtree(root, ignore_errors=True)
        _, peak, out = child(["synth", str(population), str(root)])
        info = json.loads(out.strip().splitlines()[-1])
        times.append(info["seconds"])
        peaks.append(peak)
        rows = info["rows"]
    return {"population": population, "repeats": repeats, "median_seconds": round(statistics.median(times), 2),
            "all_seconds": [round(t, 2) for t in times], "peak_rss_mb": round(max(peaks)), "rows": rows,
            "rows_per_second": round(rows / statistics.median(times))}


def bench_validation(source_population: int, repeats: int, batch_mb: int, small_batch_mb: int = 8) -> dict:
    root = WORK / f"synth-{source_population}"
    if not (root / "landing").exists():
        child(["synth", str(source_population), str(root)])
    _, _, out = child(["bigfile", str(root), str(WORK / "validate")])
    big = json.loads(out.strip().splitlines()[-1])
    gate_runs, duck_runs, peaks = [], [], []
    for _ in range(repeats):
        _, peak, out = child(["validate", big["path"], str(WORK / "validate-root"), str(batch_mb)])
        info = json.loads(out.strip().splitlines()[-1])
        gate_runs.append(info["seconds"])
        peaks.append(peak)
        _, _, out = child(["duckscan", big["path"]])
        duck_runs.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    gate, duck = statistics.median(gate_runs), statistics.median(duck_runs)
    # Memory follows the batch, not the file: the same file with a quarter of the batch size.
    _, small_peak, _ = child(["validate", big["path"], str(WORK / "validate-root"), str(small_batch_mb)])
    return {
        "file_rows": big["rows"], "file_mb": big["mb"], "batch_mb": batch_mb, "repeats": repeats,
        "gate_median_seconds": round(gate, 2), "gate_rows_per_second": round(big["rows"] / gate),
        "duckdb_scan_median_seconds": round(duck, 3), "duckdb_rows_per_second": round(big["rows"] / duck),
        "gate_to_duckdb_time_ratio": round(gate / duck, 1), "gate_peak_rss_mb": round(max(peaks)),
        "small_batch_mb": small_batch_mb, "gate_peak_rss_mb_small_batch": round(small_peak),
    }


def bench_pseudonyms(values: int, population: int) -> dict:
    root = WORK / f"synth-{population}"
    _, _, out = child(["pseudonyms", str(values), str(root)], env={"POLARS_MAX_THREADS": "1"})
    r = json.loads(out.strip().splitlines()[-1])
    return {"column_rows": r["column_rows"], "column_distinct": r["column_distinct"],
            "column_ours_rows_per_second": round(r["ours_rows_per_second"]),
            "column_ratio_vs_pandas": round(r["ours_rows_per_second"] / r["pandas_rows_per_second"], 1),"values": r["values"], "ours_per_core": round(r["ours"]), "pandas_row_by_row_per_core": round(r["pandas_row_by_row"]),
            "duckdb_sql_hmac_per_core": round(r["duckdb_sql_hmac"]),
            "ratio_vs_pandas": round(r["ours"] / r["pandas_row_by_row"], 1),
            "ratio_vs_sql": round(r["ours"] / r["duckdb_sql_hmac"], 1)}


def bench_ingest(population: int, repeats: int) -> dict:
    root = WORK / f"synth-{population}"
    if not (root / "landing").exists():
        child(["synth", str(population), str(root)])
    ingest_runs, copy_runs, peaks, rows = [], [], [], 0
    for _ in range(repeats):
        _, peak, out = child(["ingest", str(root)])
        info = json.loads(out.strip().splitlines()[-1])
        ingest_runs.append(info["seconds"])
        peaks.append(peak)
        rows = info["rows"]
        _, _, out = child(["barecopy", str(root), str(WORK / "barecopy")])
        copy_runs.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    ing, copy = statistics.median(ingest_runs), statistics.median(copy_runs)
    return {"population": population, "rows": rows, "repeats": repeats,
            "ingest_median_seconds": round(ing, 1), "ingest_rows_per_second": round(rows / ing),
            "bare_copy_median_seconds": round(copy, 1), "bare_copy_rows_per_second": round(rows / copy),
            "governance_overhead_ratio": round(ing / copy, 2), "ingest_peak_rss_mb": round(max(peaks))}


def bench_scaleout(population: int) -> dict:
    """The ingest flow with its activity deliveries on local threads and on a local two-worker
    Dask cluster, alternating, in one command: the price of shipping work to workers."""
    root = WORK / f"synth-{population}"
    if not (root / "landing").exists():
        child(["synth", str(population), str(root)])
    runs: dict[str, list[float]] = {"threads": [], "dask": []}
    rows = 0
    for _ in range(2):
        for runner, times in runs.items():
            _, _, out = child(["ingestflow", str(root), runner])
            info = json.loads(out.strip().splitlines()[-1])
            times.append(info["seconds"])
            rows = info["rows"]
    threads, dask = statistics.median(runs["threads"]), statistics.median(runs["dask"])
    return {"population": population, "rows": rows, "threads_seconds": round(threads, 1),
            "dask_seconds": round(dask, 1), "dask_to_threads_ratio": round(dask / threads, 2),
            "rows_per_core_minute_threads": round(rows / threads * 60 / 2),
            "rows_per_core_minute_dask": round(rows / dask * 60 / 2)}


def bench_link(population: int, repeats: int) -> dict:
    """The link steps against the hand-written single-script baseline, alternating runs."""
    root = WORK / f"synth-{population}"
    if not (root / "landing").exists():
        child(["synth", str(population), str(root)])
    child(["stage", str(root)])
    ours, base, peaks, base_peaks, info = [], [], [], [], {}
    for _ in range(repeats):
        _, peak, out = child(["link", str(root)])
        info = json.loads(out.strip().splitlines()[-1])
        ours.append(info["seconds"])
        peaks.append(peak)
        _, bpeak, out = child(["sqllink", str(root), str(WORK / "baseline")])
        b = json.loads(out.strip().splitlines()[-1])
        if (b["people"], b["records"], b["rescued"]) != (info["people"], info["records"], info["rescued"]):
            raise SystemExit(f"baseline and pipeline disagree: {b} vs {info}")
        base.append(b["seconds"])
        base_peaks.append(bpeak)
    _, _, out = child(["evaluate", str(root)])
    evaluation = json.loads(out.strip().splitlines()[-1])
    med = {k: statistics.median(run[k] for run in ours) for k in ours[0]}
    baseline = statistics.median(base)
    return {"population": population, "repeats": repeats, "people": info["people"], "records": info["records"],
            "median_seconds": {k: round(v, 2) for k, v in med.items()}, "baseline_median_seconds": round(baseline, 2),
            "ratio_load_and_link": round((med["load"] + med["link"]) / baseline, 2),
            "ratio_total": round(med["total"] / baseline, 2),
            "peak_rss_mb": round(max(peaks)), "baseline_peak_rss_mb": round(max(base_peaks)),
            "evaluation": evaluation}


def _linked_root(population: int) -> Path:
    """The population's root, linked (``bench_link`` leaves it so; built here if missing)."""
    root = WORK / f"synth-{population}"
    if not list((root / "warehouse").glob("*.duckdb")):
        if not (root / "landing").exists():
            child(["synth", str(population), str(root)])
        child(["stage", str(root)])
        child(["link", str(root)])
    return root


def bench_stratify(population: int, repeats: int) -> dict:
    """The stratify steps on the root ``bench_link`` left linked (one process per repeat)."""
    root = _linked_root(population)
    runs, peaks, info = [], [], {}
    for _ in range(repeats):
        _, peak, out = child(["stratify", str(root)])
        info = json.loads(out.strip().splitlines()[-1])
        runs.append(info["seconds"])
        peaks.append(peak)
    med = {k: round(statistics.median(run[k] for run in runs), 2) for k in runs[0]}
    features = (med["training_frame"] + med["validation_frame"]) / 2
    return {"population": population, "repeats": repeats, "median_seconds": med, "peak_rss_mb": round(max(peaks)),
            "people_scored": info["people_scored"], "training_people": info["training_people"],
            "packs": info["packs"], "chosen": info["chosen"], "auroc": info["auroc"],
            "calibration_slope": info["calibration_slope"],
            "features_to_floor_ratio": round(features / med["floor_scan"], 1) if med["floor_scan"] else None}


def bench_retention(population: int, repeats: int) -> dict:
    """Retention (clock moved to 2029-06-01) on a fresh copy of the linked root per repeat."""
    root = _linked_root(population)
    runs, peaks = [], []
    for _ in range(repeats):
        _, peak, out = child(["retain", str(root), str(WORK / "retain")])
        runs.append(json.loads(out.strip().splitlines()[-1]))
        peaks.append(peak)
    med = {k: round(statistics.median(r["seconds"][k] for r in runs), 2) for k in runs[0]["seconds"]}
    floor = statistics.median(r["floor_copy_seconds"] for r in runs)
    info = runs[0]
    return {"population": population, "repeats": repeats, "median_seconds": med,
            "floor_copy_median_seconds": round(floor, 2),
            "rebuild_to_floor_ratio": round(med["rebuild warehouse"] / floor, 1) if floor else None,
            "run_to_floor_ratio": round(med["run"] / floor, 1) if floor else None,
            "warehouse_mb": info["warehouse_mb"], "records_before": info["records_before"],
            "records_destroyed": info["records_destroyed"], "files_destroyed": info["files_destroyed"],
            "keys_destroyed": info["keys_destroyed"], "verified": all(r["verified"] for r in runs),
            "bytes_scanned": info["bytes_scanned"], "peak_rss_mb": round(max(peaks))}


def bench_disclosure(scale: str, repeats: int) -> dict:
    """Suppression + audit of the ward x age x gender x tier table (one process per repeat)."""
    runs, peaks = [], []
    for _ in range(repeats):
        _, peak, out = child(["disclosure", scale])
        runs.append(json.loads(out.strip().splitlines()[-1]))
        peaks.append(peak)
    info = runs[0]
    med = {k: round(statistics.median(r[k] for r in runs), 2) for k in ("build_seconds", "suppress_seconds",
                                                                         "audit_seconds")}
    return info | med | {"repeats": repeats, "peak_rss_mb": round(max(peaks)),
                         "suppress_and_audit_seconds": round(med["suppress_seconds"] + med["audit_seconds"], 1)}


def bench_engines(scale: str) -> dict:
    """Every secondary-suppression engine on one table, one process."""
    _, peak, out = child(["engines", scale])
    return json.loads(out.strip().splitlines()[-1]) | {"peak_rss_mb": round(peak)}


def _methods(counts: dict) -> str:
    names = {"lp": "by the exact LP", "moves": "by verified moves"}
    return ", ".join(f"{n:,} cells {names.get(m, m)}" for m, n in sorted(counts.items()))


def table(results: dict) -> str:
    g = results["generation"]
    v = results["validation"]
    lines = [
        f"Benchmarks on {results['machine']}; each row's last column is the day it was measured (UTC):",
        "",
        "| benchmark | result | measured |",
        "|---|---|---|",
    ]
    groups: list[tuple[int, str]] = []  # (first line, group) as the table grows

    def mark(group: str) -> None:
        groups.append((len(lines), group))

    mark("generation")
    for r in g:
        lines.append(f"| synth {r['population']:,} people | {r['median_seconds']} s median of {r['repeats']}, "
                     f"peak RSS {r['peak_rss_mb']:,} MB, {r['rows']:,} rows ({r['rows_per_second']:,} rows/s) |")
    mark("validation")
    lines.append(f"| validation gate, one {v['file_mb']:,} MB delivery of {v['file_rows']:,} rows, "
                 f"{v['batch_mb']} MB batches | {v['gate_rows_per_second']:,} rows/s "
                 f"(median {v['gate_median_seconds']} s), peak RSS {v['gate_peak_rss_mb']:,} MB |")
    lines.append(f"| bare DuckDB scan of the same file | {v['duckdb_rows_per_second']:,} rows/s "
                 f"(median {v['duckdb_scan_median_seconds']} s) |")
    lines.append(f"| ratio gate / DuckDB scan (time) | {v['gate_to_duckdb_time_ratio']}x |")
    lines.append(f"| gate peak RSS with {v['small_batch_mb']} MB batches, same file | "
                 f"{v['gate_peak_rss_mb_small_batch']:,} MB (memory follows the batch, not the file) |")
    p = results.get("pseudonyms")
    mark("pseudonyms")
    if p:
        lines.append(f"| pseudonyms, one core ({p['values']:,} distinct NHS numbers) | {p['ours_per_core']:,}/s "
                     f"(polars-hash HMAC); pandas + hashlib row by row {p['pandas_row_by_row_per_core']:,}/s "
                     f"({p['ratio_vs_pandas']}x); pure DuckDB SQL HMAC {p['duckdb_sql_hmac_per_core']:,}/s ({p['ratio_vs_sql']}x) |")
        lines.append(f"| pseudonymising a delivery column, one core ({p['column_rows']:,} outpatient rows, "
                     f"{p['column_distinct']:,} distinct) | {p['column_ours_rows_per_second']:,} rows/s, each distinct "
                     f"number hashed once and joined back: {p['column_ratio_vs_pandas']}x pandas row by row |")
    mark("ingest")
    for r in results.get("ingest", []):
        lines.append(f"| whole ingest, {r['population']:,} people ({r['rows']:,} rows) | {r['ingest_rows_per_second']:,} rows/s "
                     f"({r['ingest_rows_per_second'] * 30:,} rows per core per minute; median {r['ingest_median_seconds']} s "
                     f"of {r['repeats']}), peak RSS {r['ingest_peak_rss_mb']:,} MB; "
                     f"bare DuckDB CSV->Parquet copy {r['bare_copy_rows_per_second']:,} rows/s: "
                     f"**{r['governance_overhead_ratio']}x** |")
    mark("scaleout")
    if so := results.get("scaleout"):
        lines.append(f"| ingest flow, {so['population']:,} people ({so['rows']:,} rows): activity deliveries on a local "
                     f"Dask cluster (2 single-thread workers) vs 2 local threads, same 2 cores | Dask {so['dask_seconds']} s "
                     f"vs threads {so['threads_seconds']} s: **{so['dask_to_threads_ratio']}x** (median of 2, alternating); "
                     f"{so['rows_per_core_minute_dask']:,} vs {so['rows_per_core_minute_threads']:,} rows per core per "
                     "minute |")
    mark("link")
    for r in results.get("link", []):
        m = r["median_seconds"]
        lines.append(f"| link, {r['population']:,} people ({r['records']:,} person-level records, {r['people']:,} on the "
                     f"spine) | load {m['load']} s + link {m['link']} s = {m['load'] + m['link']:.2f} s vs hand-written "
                     f"single SQL script {r['baseline_median_seconds']} s: **{r['ratio_load_and_link']}x** "
                     f"(median of {r['repeats']}); peak RSS {r['peak_rss_mb']:,} MB (script {r['baseline_peak_rss_mb']:,} MB) |")
        lines.append(f"| link, {r['population']:,} people, everything | + quality report {m['report']} s + 3 marts "
                     f"{m['marts']} s = {m['total']} s, {r['ratio_total']}x the script (which does neither) |")
        if ev := r.get("evaluation"):
            d, x = ev["deterministic"], ev["rescue"]
            lines.append(f"| linkage vs the synthetic truth, {r['population']:,} people | deterministic precision "
                         f"{d['precision']}, recall {d['recall']} (share with a valid NHS number "
                         f"{d['valid_nhs_number_share']}), {d['split_people']} people split; rescue precision "
                         f"{x['precision']} ({x['correct']:,} of {x['linked']:,}); overall recall {ev['overall_recall']} |")
    mark("stratify")
    for r in results.get("stratify", []):
        m = r["median_seconds"]
        lines.append(f"| stratify, {r['population']:,} people: features | {(m['training_frame'] + m['validation_frame']) / 2:.2f} s "
                     f"per reference date ({r['training_people']:,} people, every feature and the outcome); a bare DuckDB "
                     f"scan counting a year's activity per person {m['floor_scan']} s: **{r['features_to_floor_ratio']}x** |")
        lines.append(f"| stratify, {r['population']:,} people: training | logistic {m['fit_logistic']} s, gradient boosting "
                     f"{m['fit_boosted']} s, refit {m['refit']} s; train-validate-choose-save {m['train_total']} s "
                     f"(median of {r['repeats']}); chosen {r['chosen']}, validation AUROC {r['auroc']}, "
                     f"calibration slope {r['calibration_slope']} |")
        lines.append(f"| stratify, {r['population']:,} people: scoring | {m['score']} s for {r['people_scored']:,} people "
                     f"(features, scores, tiers, drivers); {r['packs']} signed packs {m['packs']} s; peak RSS "
                     f"{r['peak_rss_mb']:,} MB |")
    mark("disclosure")
    for r in results.get("disclosure", []):
        name = "Southend-like" if r["scale"] == "southend" else "England-like"
        plain = (f"; the LP audit recovers all {r['plain_audit_failures']:,} exactly" if r["plain_audit_failures"]
                 is not None else "")
        lines.append(f"| disclosure, {name} ward x 19 age bands x 2 genders x 4 tiers with every margin ({r['cells']:,} "
                     f"cells, {r['people']:,} people) | suppression {r['suppress_seconds']} s + audit "
                     f"{r['audit_seconds']} s = **{r['suppress_and_audit_seconds']} s** (table built in "
                     f"{r['build_seconds']} s); {r['primaries']:,} primary and {r['secondaries']:,} secondary cells, "
                     f"audit {'passed' if r['audit_passed'] else 'FAILED'} ({_methods(r['audit_methods'])}); peak RSS "
                     f"{r['peak_rss_mb']:,} MB |")
        lines.append(f"| disclosure, {name}: information loss against plain \"1-7 -> *\" | hidden cells "
                     f"{100 * r['hidden_share']:.1f}% vs {100 * r['plain_hidden_share']:.1f}%, people in hidden inner "
                     f"cells {100 * r['hidden_people_share']:.1f}% vs {100 * r['plain_hidden_people_share']:.2f}%, "
                     f"{r['hidden_margins']:,} margins hidden (the plain rule hides none); the plain rule leaves "
                     f"{r['plain_recoverable_by_subtraction']:,} hidden cells recoverable by one subtraction{plain} |")
    mark("engines")
    for r in results.get("engines", []):
        name = "600-cell (one ward)" if r["scale"] == "small" else "Southend-like"
        parts = []
        for engine, e in r["engines"].items():
            audit = "" if engine.startswith("plain") else f", audit {'passed' if e['audit_passed'] else 'FAILED'}"
            took = "" if engine.startswith("plain") else f", {e['seconds']} s"
            parts.append(f"{engine}: {100 * e['hidden_share']:.1f}% of cells, {e['margins_hidden']:,} margins, "
                         f"{100 * e['hidden_people_share']:.1f}% of people{took}{audit}")
        lines.append(f"| secondary suppression engines, {name} table ({r['cells']:,} cells) | " + "; ".join(parts) + " |")
    mark("retention")
    for r in results.get("retention", []):
        m = r["median_seconds"]
        lines.append(f"| retention, {r['population']:,} people, clock moved to 2029-06-01 ({r['records_destroyed']:,} of "
                     f"{r['records_before']:,} staged records due, {r['files_destroyed']:,} files, {r['keys_destroyed']:,} "
                     f"keys) | rebuild of the {r['warehouse_mb']:,} MB warehouse under a new key {m['rebuild warehouse']} s "
                     f"vs plain encrypted copy {r['floor_copy_median_seconds']} s: **{r['rebuild_to_floor_ratio']}x**; "
                     f"whole run {m['run']} s ({r['run_to_floor_ratio']}x; marts {m['rebuild marts']} s, files "
                     f"{m['destroy files']} s, verification scan of {r['bytes_scanned'] / 2**20:,.0f} MB {m['verify']} s), "
                     f"median of {r['repeats']}; peak RSS {r['peak_rss_mb']:,} MB; verified: "
                     f"{'yes' if r['verified'] else 'NO'} |")
    measured = results.get("measured", {})
    bounds = [*groups, (len(lines), "")]
    for (start, group), (end, _) in itertools.pairwise(bounds):
        day = str(measured.get(group, results["when"]))[:10]
        for i in range(start, end):
            lines[i] = lines[i].rstrip()[:-1].rstrip() + f" | {day} |"
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small populations, one repeat")
    parser.add_argument("--only", choices=["ingest", "scaleout", "link", "stratify", "retention", "disclosure",
                                           "engines"],
                        help="run one group; other results are kept from latest.json")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sizes = [(20_000, 1), (200_000, 1)] if args.quick else [(175_000, 3), (2_000_000, 1)]
    results = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "generation": [],
    }
    disclosure_runs = [("southend", 1 if args.quick else 3)] + ([] if args.quick else [("england", 1)])
    if args.only == "scaleout":
        results = json.loads((RESULTS / "latest.json").read_text()) | {"when": results["when"]}
        print(f"ingest flow on threads and on Dask, {sizes[0][0]:,} people ...", flush=True)
        results["scaleout"] = bench_scaleout(sizes[0][0])
        _save(results, ["scaleout"])
        return
    if args.only == "engines":
        results = json.loads((RESULTS / "latest.json").read_text()) | {"when": results["when"]}
        results["engines"] = []
        for scale in ENGINE_TABLES:
            print(f"secondary-suppression engines, {scale} ...", flush=True)
            results["engines"].append(bench_engines(scale))
        _save(results, ["engines"])
        return
    if args.only == "disclosure":
        results = json.loads((RESULTS / "latest.json").read_text()) | {"when": results["when"]}
        results["disclosure"] = []
        for scale, repeats in disclosure_runs:
            print(f"disclosure control, {scale} ...", flush=True)
            results["disclosure"].append(bench_disclosure(scale, repeats))
        _save(results, ["disclosure"])
        return
    if args.only:
        results = json.loads((RESULTS / "latest.json").read_text()) | {"when": results["when"]}
        groups = {"ingest": bench_ingest, "link": bench_link, "stratify": bench_stratify,
                  "retention": bench_retention}
        results[args.only] = []
        for population, repeats in sizes:
            print(f"{args.only}, {population:,} people ...", flush=True)
            results[args.only].append(groups[args.only](population, repeats))
        _save(results, ["ingest", "scaleout"] if args.only == "ingest" else [args.only])
        return
    for population, repeats in sizes:
        print(f"synth {population:,} people x{repeats} ...", flush=True)
        results["generation"].append(bench_generation(population, repeats))
    # The largest population's outpatient deliveries, joined into one file, are the test file.
    print("validation gate vs DuckDB scan ...", flush=True)
    results["validation"] = bench_validation(sizes[-1][0], 1 if args.quick else 3, batch_mb=32)
    print("pseudonyms per core ...", flush=True)
    results["pseudonyms"] = bench_pseudonyms(200_000 if args.quick else 2_000_000, sizes[0][0])
    results["ingest"] = []
    for population, repeats in sizes:
        print(f"whole ingest vs bare copy, {population:,} people ...", flush=True)
        results["ingest"].append(bench_ingest(population, repeats))
    print(f"ingest flow on threads and on Dask, {sizes[0][0]:,} people ...", flush=True)
    results["scaleout"] = bench_scaleout(sizes[0][0])
    results["link"] = []
    for population, repeats in sizes:
        print(f"link vs the hand-written SQL script, {population:,} people ...", flush=True)
        results["link"].append(bench_link(population, repeats))
    results["stratify"] = []
    for population, repeats in sizes:
        print(f"stratify: features, training, scoring, {population:,} people ...", flush=True)
        results["stratify"].append(bench_stratify(population, repeats))
    results["retention"] = []
    for population, repeats in sizes:
        print(f"retention: rebuild, shred, verify, {population:,} people ...", flush=True)
        results["retention"].append(bench_retention(population, repeats))
    results["disclosure"] = []
    for scale, repeats in disclosure_runs:
        print(f"disclosure control, {scale} ...", flush=True)
        results["disclosure"].append(bench_disclosure(scale, repeats))
    results["engines"] = []
    for scale in ENGINE_TABLES:
        print(f"secondary-suppression engines, {scale} ...", flush=True)
        results["engines"].append(bench_engines(scale))
    _save(results)


GROUPS = ("generation", "validation", "pseudonyms", "ingest", "scaleout", "link", "stratify", "retention", "disclosure",
          "engines")
ENGINE_TABLES = ("small", "southend")


def _backfill_measured(results: dict) -> dict[str, str]:
    """When each group was last measured: recorded since ``measured`` existed; before that, the
    oldest stamped result whose copy of the group is the one kept in latest.json."""
    measured = dict(results.get("measured", {}))
    history = sorted(RESULTS.glob("2*.json"))
    for group in GROUPS:
        if group in measured or group not in results:
            continue
        for path in history:
            old = json.loads(path.read_text())
            if old.get(group) == results[group]:
                measured[group] = old["when"]
                break
    return measured


def _save(results: dict, groups: list[str] | None = None) -> None:
    """Write the results; ``groups`` were measured now (None: all of them)."""
    measured = _backfill_measured(results)
    for group in groups or GROUPS:
        if group in results:
            measured[group] = results["when"]
    results["measured"] = measured
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in ("latest", stamp):
        (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "latest.md").write_text(table(results))
    print(table(results))
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
