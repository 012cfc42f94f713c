"""Charts for reports: matplotlib drawn to SVG text, inlined in the page (no files, no CDN).

Text stays text (``svg.fonttype = none``) so the page is searchable and small, and element ids
are seeded so the same figures give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["PALETTE", "calibration_plot", "capture_plot", "stacked_bars"]

#: Colour-blind-safe (Okabe-Ito), in the order series are drawn.
PALETTE = ("#0072B2", "#E69F00", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#999999")


def _svg(fig) -> str:
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "safehaven"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def stacked_bars(rows: Mapping[str, Mapping[str, float]], series: Sequence[str], *, title: str,
                 percent: bool = True, colours: Mapping[str, str] | None = None) -> str:
    """Horizontal stacked bars, one per row key, one segment per series (as a share of the
    row when ``percent``). Returns SVG text."""
    labels = list(rows)
    colours = colours or dict(zip(series, PALETTE, strict=False))
    height = 0.9 + 0.34 * max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(7.5, height))
    left = [0.0] * len(labels)
    for name in series:
        values = []
        for label in labels:
            row = rows[label]
            total = sum(row.get(s, 0) for s in series) or 1
            values.append(100 * row.get(name, 0) / total if percent else row.get(name, 0))
        ax.barh(labels, values, left=left, color=colours.get(name, "#999999"), label=name.replace("_", " "),
                height=0.7)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_title(title, loc="left", fontsize=11)
    if percent:
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of records")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.tick_params(labelsize=8)
    return _svg(fig)


def _finish(fig, ax, title: str, xlabel: str, ylabel: str) -> str:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    ax.tick_params(labelsize=8)
    return _svg(fig)


def calibration_plot(curves: Mapping[str, Sequence[Mapping[str, float]]], *, title: str) -> str:
    """Observed against predicted risk, one line of binned points per model, and the diagonal."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    top = max((max(p["mean_predicted"], p["observed"]) for c in curves.values() for p in c), default=1.0)
    top = min(1.0, top * 1.08)
    ax.plot([0, top], [0, top], color="#999999", lw=1, ls="--", label="perfect calibration")
    for (name, curve), colour in zip(curves.items(), PALETTE, strict=False):
        ax.plot([p["mean_predicted"] for p in curve], [p["observed"] for p in curve], marker="o", ms=3.5,
                lw=1.2, color=colour, label=name)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    return _finish(fig, ax, title, "mean predicted risk (bins of equal size)", "observed rate")


def capture_plot(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str) -> str:
    """Share of events captured (y) by the top x% of scores, one line per model."""
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for (name, points), colour in zip(series.items(), PALETTE, strict=False):
        ax.plot([100 * x for x, _ in points], [100 * y for _, y in points], marker="o", ms=3.5, lw=1.2,
                color=colour, label=name)
    ax.set_xscale("log")
    ax.set_xticks([0.5, 1, 2, 5, 20], labels=["0.5%", "1%", "2%", "5%", "20%"])
    return _finish(fig, ax, title, "top share of scores", "% of emergency admissions captured")
