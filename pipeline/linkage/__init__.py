"""Linkage: the encrypted DuckDB warehouse of staged deliveries, the person spine, rescue
linkage, the linkage quality report, and (through ``pipeline.marts``) the published marts.

The steps are separate functions so the Prefect ``link`` flow can run each as a task;
``link()`` runs them all in order. Every step that writes the warehouse holds its writer lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.linkage.evaluate import evaluate_linkage
from pipeline.linkage.quality import build_record_linkage, linkage_quality
from pipeline.linkage.report import write_linkage_report
from pipeline.linkage.rescue import rescue_link
from pipeline.linkage.spine import build_spine
from pipeline.linkage.warehouse import LoadResult, Warehouse

__all__ = ["LinkSummary", "LoadResult", "Warehouse", "build_linked_tables", "build_spine", "evaluate_linkage",
           "link", "load_deliveries", "open_warehouse", "publish", "rescue_link", "summarise",
           "write_quality_report"]


@dataclass
class LinkSummary:
    loaded: int
    skipped: int
    superseded: int
    people: int
    rescue: dict
    tables: dict
    quality: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    marts: list = field(default_factory=list)


def open_warehouse(settings, keystore) -> Warehouse:
    return Warehouse(settings.warehouse_dir, keystore)


def load_deliveries(settings, keystore) -> LoadResult:
    """Load every staged delivery not yet in the warehouse (newer versions supersede)."""
    warehouse = open_warehouse(settings, keystore)
    with warehouse.writer():
        return warehouse.load_staging(settings.staging)


def build_linked_tables(settings, keystore) -> dict:
    """Rebuild the spine, spells, rescue links and ``record_linkage``; returns counts."""
    warehouse = open_warehouse(settings, keystore)
    with warehouse.writer():
        con = warehouse.open(create=False)
        try:
            people = build_spine(con)
            rescue = rescue_link(con)
            records = build_record_linkage(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return {"people": people, "records": records, "rescue": rescue}


def write_quality_report(settings, keystore, truth_dir: Path | None = None) -> tuple[dict, dict]:
    """Compute the linkage quality counts and write the report; with ``truth_dir`` (synthetic
    data only) the page also shows precision and recall. Returns (quality, paths)."""
    warehouse = open_warehouse(settings, keystore)
    with warehouse.writer():
        con = warehouse.open(create=False)
        try:
            quality = linkage_quality(con)
            evaluation = evaluate_linkage(con, truth_dir) if truth_dir else None
        finally:
            con.close()
    paths = write_linkage_report(settings.reports_dir / "linkage", quality, evaluation)
    return quality | ({"evaluation": evaluation} if evaluation else {}), {k: str(v) for k, v in paths.items()}


def publish(settings, keystore, audit) -> list:
    """Publish every mart from the current warehouse (atomic switch per mart)."""
    from pipeline.marts import publish_marts

    warehouse = open_warehouse(settings, keystore)
    with warehouse.writer():
        return publish_marts(settings, keystore, warehouse, audit)


def link(settings, keystore, audit=None) -> LinkSummary:
    """Every step: load, link, report, publish marts; audited."""
    audit = audit or settings.audit()
    loaded = load_deliveries(settings, keystore)
    built = build_linked_tables(settings, keystore)
    quality, paths = write_quality_report(settings, keystore)
    marts = publish(settings, keystore, audit)
    return summarise(settings, keystore, audit, loaded, built, quality, paths, [m.file for m in marts])


def summarise(settings, keystore, audit, loaded: LoadResult, built: dict, quality: dict, paths: dict,
              marts: list[str]) -> LinkSummary:
    """The run's summary, recorded in the audit log (counts and ids only)."""
    tables = open_warehouse(settings, keystore).describe()
    meta = tables.pop("_meta")
    summary = LinkSummary(len(loaded.loaded), len(loaded.skipped), len(loaded.superseded), built["people"],
                          built["rescue"], tables, quality, paths, marts)
    audit.append("warehouse.linked", {
        "loaded": summary.loaded, "skipped": summary.skipped, "superseded": summary.superseded,
        "people": summary.people, "records": built["records"], "rescue": built["rescue"],
        "link_status": quality.get("link_status"), "linkage_key": meta.get("linkage_key_id"),
        "fingerprint": meta.get("linkage_fingerprint"), "report": Path(paths.get("json", "")).name,
        "marts": marts,
    })
    return summary
