"""Reports: self-contained HTML pages with inline SVG charts (and, later, the IG evidence pack)."""

from pipeline.report.charts import calibration_plot, capture_plot, stacked_bars
from pipeline.report.page import Page, fmt, write_report

__all__ = ["Page", "calibration_plot", "capture_plot", "fmt", "stacked_bars", "write_report"]
