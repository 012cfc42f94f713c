"""The ``ingest`` flow: every waiting delivery, one task each, landing -> staging.

Activity deliveries run on local threads, or on a Dask cluster when ``dask_address`` is set
(``ingest_task_runner``): each worker process opens the data root (a path every worker mounts
at the same place) and the keystore itself, from its own SAFEHAVEN_* environment.

Parameters are a data root (a path) and optional feed names; tasks receive the delivery's path
and feed and return counts. Row-level work has no caching and no result persistence, so no
frame, key or value reaches Prefect's database; the artifact holds counts only. Keys are
opened inside the process and never passed.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.ingest.ingest import Ingestor
from pipeline.keys import open_keystore
from pipeline.logs import install_redaction
from pipeline.settings import Settings, load_settings

__all__ = ["ingest_flow", "ingest_task_runner", "set_progress_hook"]

install_redaction()

_INGESTORS: dict[str, Ingestor] = {}
_progress_hook = None


def set_progress_hook(hook) -> None:
    """In-process progress reporting for the CLI (never a flow parameter)."""
    global _progress_hook
    _progress_hook = hook


def _report_progress(result) -> None:
    """Tell the CLI's progress bar (in-process runs only). Tasks call this rather than read
    ``_progress_hook``: a task sent to a Dask worker is pickled with the globals it reads, and
    the CLI's hook (a rich progress bar, with locks) cannot be."""
    if _progress_hook:
        _progress_hook(result)


def _settings(data_root: str) -> Settings:
    return load_settings(data_root=Path(data_root))


def ingest_task_runner(settings: Settings):
    """Dask when a scheduler address is configured, else a pool of local threads."""
    if settings.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=settings.dask_address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=settings.ingest_workers)


def _ingestor(data_root: str) -> Ingestor:
    """One ingestor (keystore opened once) per process, data root and flow run (so a Dask
    worker that outlives a run starts the next with current keys and lookups); never passed."""
    from prefect.runtime import flow_run

    key = f"{data_root}|{flow_run.id or ''}"
    if key not in _INGESTORS:
        for stale in [k for k in _INGESTORS if k.startswith(f"{data_root}|")]:
            del _INGESTORS[stale]
        settings = _settings(data_root)
        keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers)
        _INGESTORS[key] = Ingestor(settings, keystore)
    return _INGESTORS[key]


@task(name="plan-deliveries", cache_policy=NO_CACHE, persist_result=False)
def plan_deliveries(data_root: str, feeds: list[str] | None) -> list[tuple[str, str, bool]]:
    """(path, feed, is activity) for every waiting delivery, in ingest order."""
    ingestor = _ingestor(data_root)
    return [(str(p), f, ingestor.is_activity(f)) for p, f in ingestor.plan(feeds)]


@task(name="prepare-activity", cache_policy=NO_CACHE, persist_result=False)
def prepare_activity(data_root: str, feeds: list[str]) -> None:
    """Load the shared lookup and opt-out sets once (refusing stale lists) before the pool."""
    _ingestor(data_root).prepare_activity(set(feeds))


@task(name="ingest-delivery", cache_policy=NO_CACHE, persist_result=False)
def ingest_delivery(data_root: str, path: str, feed: str) -> dict:
    result = _ingestor(data_root).ingest(Path(path), feed)
    logger = get_run_logger()
    logger.info("%s: %s, %s rows in, %s rows out", result.delivery_id, result.status, result.rows_in, result.rows_out)
    for reason in result.reasons:
        logger.warning("%s quarantined: %s", result.delivery_id, reason)
    _report_progress(result)
    return {"delivery": result.delivery_id, "feed": result.feed, "status": result.status,
            "rows_in": result.rows_in, "rows_out": result.rows_out, "seconds": result.seconds,
            "opt_out_removed": sum(result.counts.get("opt_out_removed", {}).values()), "reasons": list(result.reasons),
            "pid": os.getpid()}


@task(name="build-data-docs", cache_policy=NO_CACHE, persist_result=False)
def build_data_docs(data_root: str) -> None:
    _ingestor(data_root).gate.build_data_docs()


@flow(name="ingest", persist_result=False, log_prints=False)
def ingest_flow(data_root: str, feeds: list[str] | None = None) -> dict:
    """Ingest every delivery waiting in ``<data_root>/landing`` (optionally only some feeds)."""
    logger = get_run_logger()
    plan = plan_deliveries(data_root, feeds)
    logger.info("%d deliveries to ingest", len(plan))
    outcomes = [ingest_delivery(data_root, path, feed) for path, feed, activity in plan if not activity]
    activity = [(path, feed) for path, feed, is_activity in plan if is_activity]
    if activity:
        prepare_activity(data_root, sorted({feed for _, feed in activity}))
        futures = [ingest_delivery.submit(data_root, path, feed) for path, feed in activity]
        for future in futures:
            outcome = future.result()
            if outcome["pid"] != os.getpid():  # ran on a Dask worker: report it from here
                _report_progress(SimpleNamespace(**outcome, delivery_id=outcome["delivery"],
                                                 counts={"opt_out_removed": {"all": outcome["opt_out_removed"]}}))
            outcomes.append(outcome)
    build_data_docs(data_root)
    by_feed: dict[str, Counter] = {}
    for o in outcomes:
        c = by_feed.setdefault(o["feed"], Counter())
        c[o["status"]] += 1
        c["rows_in"] += o["rows_in"]
        c["rows_out"] += o["rows_out"]
        c["opt_out_removed"] += o["opt_out_removed"]
    table = [{"feed": f, "staged": c["staged"], "skipped": c["skipped"], "quarantined": c["quarantined"],
              "rows_in": c["rows_in"], "rows_out": c["rows_out"], "opt_out_removed": c["opt_out_removed"]}
             for f, c in sorted(by_feed.items())]
    create_table_artifact(key="ingest-counts", table=table, description="Rows per feed (counts only)")
    totals = Counter()
    for row in table:
        totals.update({k: v for k, v in row.items() if k != "feed"})
    create_markdown_artifact(
        key="ingest-summary",
        markdown=(f"# Ingest\n\n{len(outcomes)} deliveries: {totals['staged']} staged, {totals['skipped']} "
                  f"already staged, {totals['quarantined']} quarantined.\n\n{totals['rows_in']:,} rows in, "
                  f"{totals['rows_out']:,} rows staged, {totals['opt_out_removed']:,} removed by opt-outs.\n"),
        description="Ingest summary (counts only)",
    )
    return {"deliveries": len(outcomes), **dict(totals)}
