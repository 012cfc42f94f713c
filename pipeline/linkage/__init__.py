"""Linkage: the encrypted DuckDB warehouse of staged deliveries (and, next, the person spine,
rescue linkage, the linkage quality report and the marts)."""

from pipeline.linkage.rescue import rescue_link
from pipeline.linkage.spine import build_spine
from pipeline.linkage.warehouse import LoadResult, Warehouse

__all__ = ["LoadResult", "Warehouse", "build_spine", "rescue_link"]
