"""Linkage: the encrypted DuckDB warehouse of staged deliveries (and, next, the person spine,
rescue linkage, the linkage quality report and the marts)."""

from pipeline.linkage.rescue import rescue_link
from pipeline.linkage.spine import build_spine
from pipeline.linkage.warehouse import LoadResult, Warehouse

__all__ = ["LinkSummary", "LoadResult", "Warehouse", "build_spine", "link", "rescue_link"]


from dataclasses import dataclass


@dataclass
class LinkSummary:
    loaded: int
    skipped: int
    superseded: int
    people: int
    rescue: dict
    tables: dict


def link(settings, keystore, audit=None) -> LinkSummary:
    """Load every staged delivery into the warehouse, rebuild the spine and rescue links."""
    from pipeline.audit import AuditLog

    audit = audit or AuditLog(settings.audit_log)
    warehouse = Warehouse(settings.data_root / "warehouse", keystore)
    loaded = warehouse.load_staging(settings.staging)
    con = warehouse.open(create=False)
    try:
        people = build_spine(con)
        rescue = rescue_link(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    tables = warehouse.describe()
    meta = tables.pop("_meta")
    summary = LinkSummary(len(loaded.loaded), len(loaded.skipped), len(loaded.superseded), people, rescue, tables)
    audit.append("warehouse.linked", {
        "loaded": summary.loaded, "skipped": summary.skipped, "superseded": summary.superseded,
        "people": people, "rescue": rescue, "linkage_key": meta.get("linkage_key_id"),
        "fingerprint": meta.get("linkage_fingerprint"),
    })
    return summary
