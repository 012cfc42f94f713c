"""The ``link`` flow: staged deliveries -> warehouse -> spine and links -> quality report -> marts.

One writer at a time: the flow runs inside ``warehouse_writer`` (see ``pipeline.flows.writer``).
Parameters are a data root; tasks return counts and file names; the artifact holds counts only.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline import linkage
from pipeline.flows.writer import open_root as _open
from pipeline.flows.writer import set_progress_hook, warehouse_writer, writer_limit_name
from pipeline.flows.writer import tick as _tick
from pipeline.logs import install_redaction

__all__ = ["LINK_STEPS", "link_flow", "set_progress_hook", "writer_limit_name"]

install_redaction()
LINK_STEPS = ("load-deliveries", "build-linked-tables", "linkage-quality", "publish-marts")


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
    marts = linkage.publish(settings, keystore, settings.audit())
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
    settings, keystore = _open(data_root)
    with warehouse_writer(settings, keystore, data_root):
        loaded = load_deliveries(data_root)
        logger.info("%d deliveries loaded, %d already there, %d superseded",
                    len(loaded["loaded"]), len(loaded["skipped"]), len(loaded["superseded"]))
        built = build_linked_tables(data_root)
        logger.info("spine: %d people; rescue: %s", built["people"], built["rescue"])
        quality, paths = linkage_quality(data_root)
        marts = publish_marts(data_root)
    summary = linkage.summarise(
        settings, keystore, settings.audit(),
        linkage.LoadResult(loaded["loaded"], loaded["skipped"], loaded["superseded"]), built, quality, paths,
        [m["file"] for m in marts])
    _artifacts(quality, marts)
    return {"loaded": summary.loaded, "skipped": summary.skipped, "superseded": summary.superseded,
            "people": summary.people, "records": quality["records"], "link_status": quality["link_status"],
            "rescue": built["rescue"], "report": Path(paths["html"]).name, "marts": marts}
