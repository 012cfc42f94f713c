"""The ``link`` flow: staged deliveries -> warehouse -> spine and links -> quality report -> marts.

One writer at a time, twice over. The flow holds the warehouse's writer lock (an flock, which
the OS releases if the process dies) for its whole run, and a Prefect global concurrency slot
(limit 1, created on first use, named after the data root) so the run shows as holding the
warehouse in Prefect. The flock is the source of truth: a run that holds it knows every slot
still counted on the limit belongs to a run that died (a killed process cannot release its
slot, and an ephemeral server forgets the lease), so it resets the count before taking the slot
instead of waiting out the lease.
Parameters are a data root; tasks return counts and file names; the artifact holds counts only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import concurrency

from pipeline import linkage
from pipeline.audit import AuditLog
from pipeline.keys import open_keystore
from pipeline.logs import install_redaction
from pipeline.settings import Settings, load_settings

__all__ = ["LINK_STEPS", "link_flow", "set_progress_hook", "writer_limit_name"]

install_redaction()
LINK_STEPS = ("load-deliveries", "build-linked-tables", "linkage-quality", "publish-marts")
_progress_hook = None


def set_progress_hook(hook) -> None:
    """In-process progress reporting for the CLI (never a flow parameter)."""
    global _progress_hook
    _progress_hook = hook


def _tick(step: str) -> None:
    if _progress_hook:
        _progress_hook(step)


def _open(data_root: str) -> tuple[Settings, object]:
    settings = load_settings(data_root=Path(data_root))
    return settings, open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers)


def writer_limit_name(data_root: str) -> str:
    """The global concurrency limit guarding one warehouse (no path in it: a short digest)."""
    return "warehouse-writer-" + hashlib.sha256(str(Path(data_root).resolve()).encode()).hexdigest()[:12]


def _claim_limit(name: str) -> None:
    """Create the limit (1 slot) if missing; clear slots left by dead runs (we hold the flock)."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            return
        if limit.active_slots:
            get_run_logger().warning("clearing %d concurrency slot(s) left by a link run that died", limit.active_slots)
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))


@task(name="load-deliveries", cache_policy=NO_CACHE, persist_result=False)
def load_deliveries(data_root: str) -> dict:
    settings, keystore = _open(data_root)
    result = linkage.load_deliveries(settings, keystore)
    _tick("load-deliveries")
    return {"loaded": result.loaded, "skipped": result.skipped, "superseded": result.superseded}


@task(name="build-linked-tables", cache_policy=NO_CACHE, persist_result=False)
def build_linked_tables(data_root: str) -> dict:
    settings, keystore = _open(data_root)
    built = linkage.build_linked_tables(settings, keystore)
    _tick("build-linked-tables")
    return built


@task(name="linkage-quality", cache_policy=NO_CACHE, persist_result=False)
def linkage_quality(data_root: str) -> tuple[dict, dict]:
    settings, keystore = _open(data_root)
    quality, paths = linkage.write_quality_report(settings, keystore)
    _tick("linkage-quality")
    return quality, paths


@task(name="publish-marts", cache_policy=NO_CACHE, persist_result=False)
def publish_marts(data_root: str) -> list[dict]:
    settings, keystore = _open(data_root)
    marts = linkage.publish(settings, keystore, AuditLog(settings.audit_log))
    _tick("publish-marts")
    return [{"name": m.name, "file": m.file, "tables": m.tables} for m in marts]


def _artifacts(quality: dict, marts: list[dict]) -> None:
    create_table_artifact(
        key="linkage-by-feed",
        table=[{"feed": f, **counts} for f, counts in quality["by_feed"].items()],
        description="Records linked deterministically, rescued or unlinked, per feed (counts only)")
    s = quality["link_status"]
    create_markdown_artifact(
        key="linkage-summary",
        markdown=(f"# Link\n\n{quality['people']:,} people on the spine from {quality['records']:,} records: "
                  f"{s['deterministic']:,} linked on NHS number, {s['rescued']:,} rescued, {s['unlinked']:,} "
                  f"unlinked ({100 * quality['linked_share']:.2f}% linked).\n\n"
                  f"Conflicts: {quality['conflicts']['gender']:,} gender, {quality['conflicts']['age']:,} age. "
                  f"Possible duplicate people: {quality['possible_duplicate_people']:,}.\n\n"
                  "Marts published: " + ", ".join(f"{m['name']} ({sum(m['tables'].values()):,} rows)" for m in marts)
                  + "\n"),
        description="Linkage summary (counts only)")


@flow(name="link", persist_result=False, log_prints=False)
def link_flow(data_root: str) -> dict:
    """Load what ingest staged into the warehouse, link, report and publish the marts."""
    logger = get_run_logger()
    limit = writer_limit_name(data_root)
    settings, keystore = _open(data_root)
    with linkage.open_warehouse(settings, keystore).writer():
        _claim_limit(limit)
        with concurrency(limit, occupy=1, strict=True, timeout_seconds=60):
            loaded = load_deliveries(data_root)
            logger.info("%d deliveries loaded, %d already there, %d superseded",
                        len(loaded["loaded"]), len(loaded["skipped"]), len(loaded["superseded"]))
            built = build_linked_tables(data_root)
            logger.info("spine: %d people; rescue: %s", built["people"], built["rescue"])
            quality, paths = linkage_quality(data_root)
            marts = publish_marts(data_root)
    summary = linkage.summarise(
        settings, keystore, AuditLog(settings.audit_log),
        linkage.LoadResult(loaded["loaded"], loaded["skipped"], loaded["superseded"]), built, quality, paths,
        [m["file"] for m in marts])
    _artifacts(quality, marts)
    return {"loaded": summary.loaded, "skipped": summary.skipped, "superseded": summary.superseded,
            "people": summary.people, "records": quality["records"], "link_status": quality["link_status"],
            "rescue": built["rescue"], "report": Path(paths["html"]).name, "marts": marts}
