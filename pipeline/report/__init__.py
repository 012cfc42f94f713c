"""Reports: self-contained HTML pages with inline SVG charts (and, later, the IG evidence pack)."""

from pipeline.report.charts import stacked_bars
from pipeline.report.page import Page, fmt

__all__ = ["Page", "fmt", "stacked_bars"]
