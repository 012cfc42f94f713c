"""Synthetic deliveries dressed as real suppliers send them (``safehaven synth --supplier-style``).

The native layout is ``<table>_<period>_v<version>.csv``, comma-separated UTF-8 with the
contract's column names and ISO dates. Real extracts differ in every one of those, so the
generator can rewrite each delivery, with the same records, in a supplier's style:

* ``upper``: ``SUS_APC_SPELLS_EXTRACT_202404_V1.csv``; UPPER_CASE headers with the common names
  for identifiers (``NHS_NO``, ``DOB``, ``SEX``); pipe-separated; dates of activity as
  dd/mm/yyyy; a trailing empty column (a delimiter at the end of every line);
* ``spreadsheet``: ``Sus Apc Spells 2024-04.csv``; Title Case headers with spaces (``NHS Number``,
  ``Date of Birth``, ``Post Code``); semicolon-separated; Windows-1252 (free-text notes carry
  en dashes); dates of activity as dd/mm/yyyy.

Values that reach staging are unchanged (only the date notation and the dropped free text
differ), so a supplier-styled delivery must stage exactly the rows its native twin does.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pipeline.contracts import FeedContract, FirewallAction, Role
from pipeline.ingest.deliveries import DELIVERY_NAME

__all__ = ["STYLES", "restyle"]

STYLES = ("native", "upper", "spreadsheet")

_UPPER_NAMES = {"nhs_number": "NHS_NO", "date_of_birth": "DOB", "gender": "SEX"}
_SPREADSHEET_NAMES = {"nhs_number": "NHS Number", "date_of_birth": "Date of Birth", "postcode": "Post Code"}


def _header(name: str, style: str) -> str:
    if style == "upper":
        return _UPPER_NAMES.get(name, name.upper())
    return _SPREADSHEET_NAMES.get(name, name.replace("_", " ").title())


def _file_name(table: str, period: str, version: int, style: str) -> str:
    if style == "upper":
        return f"{table.upper()}_EXTRACT_{period.replace('-', '')}_V{version}.csv"
    return f"{table.replace('_', ' ').title()} {period}" + (f" v{version}" if version > 1 else "") + ".csv"


def _day_first(value: str) -> str:
    return f"{value[8:10]}/{value[5:7]}/{value[0:4]}" if len(value) == 10 and value[4] == "-" else value


def restyle(landing: Path, contracts: dict[str, FeedContract], style: str) -> int:
    """Rewrite every native delivery under ``landing`` in ``style``; returns the files rewritten."""
    if style not in STYLES:
        raise ValueError(f"supplier style must be one of {STYLES}")
    if style == "native":
        return 0
    done = 0
    for feed, contract in contracts.items():
        for path in sorted((Path(landing) / feed).glob("*.csv")):
            match = DELIVERY_NAME.match(path.name)
            if not match or match["table"] not in contract.tables:
                continue
            table = contract.table(match["table"])
            activity_dates = {c.name for c in table.columns if c.logical_type == "date" and c.role is Role.ATTRIBUTE}
            free_text = {c.name for c in table.columns if c.action is FirewallAction.DROP}
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader)
                rows = list(reader)
            out = io.StringIO()
            writer = csv.writer(out, delimiter="|" if style == "upper" else ";", lineterminator="\r\n")
            writer.writerow([_header(h, style) for h in header] + ([""] if style == "upper" else []))
            for row in rows:
                cells = []
                for name, value in zip(header, row, strict=True):
                    if name in activity_dates:
                        value = _day_first(value)
                    elif name in free_text and style == "spreadsheet" and value:
                        value += " \u2013 see record"  # a Windows-1252 byte, in a column the firewall drops
                    cells.append(value)
                writer.writerow(cells + ([""] if style == "upper" else []))
            encoding = "cp1252" if style == "spreadsheet" else "utf-8"
            target = path.with_name(_file_name(match["table"], match["period"], int(match["version"]), style))
            target.write_bytes(out.getvalue().encode(encoding))
            path.unlink()
            done += 1
    return done
