"""Self-contained HTML pages: inline CSS, inline SVG charts, nothing fetched.

Every value is escaped; only the caller's chart SVG (made by ``pipeline.report.charts``) is
inserted as markup.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = ["Page", "fmt"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;color:#1d2731;background:#f5f7f9}
header{background:#005eb8;color:#fff;padding:1.2rem 2rem}header h1{margin:0;font-size:1.5rem}
header p{margin:.3rem 0 0;opacity:.9}.marking{background:#fff3cd;color:#5c4400;padding:.5rem 2rem;font-weight:600}
main{max-width:1100px;margin:0 auto;padding:1rem 2rem 3rem}section{background:#fff;border-radius:6px;
padding:1rem 1.4rem;margin:1rem 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}h2{font-size:1.15rem;margin:.2rem 0 .8rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{flex:1 1 150px;border:1px solid #d8dde3;border-radius:6px;padding:.7rem}
.card .v{font-size:1.5rem;font-weight:700}.card .k{font-size:.8rem;color:#4c6272}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{padding:.25rem .6rem;border-bottom:1px solid #e3e7eb;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#eef2f5}figure{margin:.5rem 0}figure svg{max-width:100%;height:auto}
.note{color:#4c6272;font-size:.85rem}.ok{color:#007f3b;font-weight:600}.bad{color:#d5281b;font-weight:600}
footer{color:#4c6272;font-size:.8rem;text-align:center;padding:1rem}
"""


def fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1 else f"{value:,.2f}"
    return "" if value is None else str(value)


class Page:
    """Build a page section by section, then ``render()``."""

    def __init__(self, title: str, subtitle: str = "", marking: str = ""):
        self.title, self.subtitle, self.marking = title, subtitle, marking
        self._sections: list[str] = []

    def section(self, heading: str, *parts: str, anchor: str | None = None) -> None:
        attr = f' id="{html.escape(anchor)}"' if anchor else ""
        self._sections.append(f"<section{attr}><h2>{html.escape(heading)}</h2>{''.join(parts)}</section>")

    @staticmethod
    def cards(items: Iterable[tuple[str, object]]) -> str:
        cells = "".join(f'<div class="card"><div class="v">{html.escape(fmt(v))}</div>'
                        f'<div class="k">{html.escape(k)}</div></div>' for k, v in items)
        return f'<div class="cards">{cells}</div>'

    @staticmethod
    def table(header: Sequence[str], rows: Iterable[Sequence[object]], caption: str = "") -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    @staticmethod
    def crosstab(rows: Mapping[str, Mapping[str, int]], columns: Sequence[str], first: str) -> str:
        return Page.table([first, *columns, "total"],
                          [[k, *(v.get(c, 0) for c in columns), sum(v.get(c, 0) for c in columns)]
                           for k, v in rows.items()])

    @staticmethod
    def figure(svg: str, caption: str) -> str:
        return f"<figure>{svg}<figcaption class=\"note\">{html.escape(caption)}</figcaption></figure>"

    @staticmethod
    def text(text: str, cls: str = "note") -> str:
        return f'<p class="{cls}">{html.escape(text)}</p>'

    def render(self) -> str:
        marking = f'<div class="marking">{html.escape(self.marking)}</div>' if self.marking else ""
        return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{html.escape(self.title)}</title>"
                f"<style>{_CSS}</style></head><body><header><h1>{html.escape(self.title)}</h1>"
                f"<p>{html.escape(self.subtitle)}</p></header>{marking}<main>{''.join(self._sections)}</main>"
                "<footer>safehaven-pipeline</footer></body></html>")


def write_report(folder: Path, doc: dict, page: str) -> dict[str, Path]:
    """Write ``<stamp>.json`` and ``<stamp>.html`` under ``folder`` and replace ``latest.json``
    and ``latest.html`` atomically; returns the stamped paths."""
    from pipeline.ingest.staging import write_json_atomic, write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    paths = {"json": folder / f"{stamp}.json", "html": folder / f"{stamp}.html"}
    write_json_atomic(paths["json"], doc)
    write_json_atomic(folder / "latest.json", doc)
    for target in (paths["html"], folder / "latest.html"):
        write_text_atomic(target, page)
    return paths
