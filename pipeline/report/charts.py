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

__all__ = ["PALETTE", "stacked_bars"]

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
