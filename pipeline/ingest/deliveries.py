"""Deliveries: one file of one table of one feed, named ``<table>_<period>_v<version>.csv``.

``landing/<feed>/sus_apc_spells_2024-03_v1.csv`` is version 1 of the March 2024 delivery of
the ``sus_apc_spells`` table of the ``sus_apc`` feed. A period is ``YYYY``, ``YYYY-MM`` or
``YYYY-MM-DD``. The delivery id ``sus_apc/sus_apc_spells/2024-03/v1`` names it everywhere
(audit log, receipts, Data Docs); it carries no patient data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import DeliveryError

__all__ = ["DELIVERY_NAME", "Delivery", "find_deliveries", "find_delivery_files"]

DELIVERY_NAME = re.compile(
    r"^(?P<table>[a-z][a-z0-9_]*?)_(?P<period>\d{4}(?:-\d{2}){0,2})_v(?P<version>\d+)\.csv$"
)


@dataclass(frozen=True)
class Delivery:
    feed: str
    table: str
    period: str
    version: int
    path: Path
    layout: bool = False  # named by a supplier pattern of the contract: read in that table's delivery layout

    @property
    def id(self) -> str:
        return f"{self.feed}/{self.table}/{self.period}/v{self.version}"

    @property
    def slug(self) -> str:
        """The id as one path-safe token (for file names and run names)."""
        return self.id.replace("/", "__")

    @classmethod
    def from_path(cls, path: Path | str, feed: str | None = None, contract=None) -> Delivery:
        """Identify a delivery by its name: ``<table>_<period>_v<version>.csv``, or one of the
        file-name patterns the feed's contract declares for a supplier's layout."""
        path = Path(path)
        feed = feed or path.parent.name
        match = DELIVERY_NAME.match(path.name)
        if match:
            return cls(feed=feed, table=match["table"], period=match["period"], version=int(match["version"]),
                       path=path)
        found = _by_contract_pattern(path.name, contract) if contract is not None else None
        if found is not None:
            return cls(feed=feed, table=found[0], period=found[1], version=found[2], path=path, layout=True)
        example = next(iter(contract.tables), "sus_apc_spells") if contract is not None else "sus_apc_spells"
        patterns = [p.regex for t in (contract.tables.values() if contract is not None else ())
                    if t.delivery for p in t.delivery.filenames]
        raise DeliveryError(
            f"cannot identify delivery '{path.name}': names must look like <table>_<period>_v<version>.csv, "
            f"e.g. {example}_2024-03_v1.csv"
            + (f", or match a file-name pattern of the feed's contract ({'; '.join(patterns)})" if patterns else
               "; or declare the supplier's file names in the contract (a table's delivery.filenames)")
        )


def _by_contract_pattern(name: str, contract) -> tuple[str, str, int] | None:
    """(table, period, version) from the first contract file-name pattern that matches."""
    import datetime as dt

    for table in contract.tables.values():
        for pattern in (table.delivery.filenames if table.delivery else ()):
            match = re.fullmatch(pattern.regex, name)
            if not match:
                continue
            try:
                day = dt.datetime.strptime(match["period"], pattern.periodFormat)
            except ValueError:
                continue
            fmt = pattern.periodFormat
            period = day.strftime("%Y-%m-%d" if "%d" in fmt else "%Y-%m" if "%m" in fmt or "%b" in fmt else "%Y")
            version = int(match["version"]) if "version" in match.re.groupindex and match["version"] else pattern.version
            return table.name, period, version
    return None


def find_delivery_files(landing: Path, feeds: list[str] | None = None) -> list[tuple[Path, str]]:
    """Every file waiting in ``landing/<feed>/`` with its feed, well named or not.

    The gate quarantines a file it cannot identify; listing only well-named files would let a
    misnamed extract sit unnoticed, and raising would let one bad name block every delivery.
    """
    landing = Path(landing)
    if not landing.exists():
        return []
    out = []
    for feed_dir in sorted(p for p in landing.iterdir() if p.is_dir() and not p.name.startswith("_")):
        if feeds and feed_dir.name not in feeds:
            continue
        out += [(f, feed_dir.name) for f in sorted(feed_dir.iterdir()) if f.is_file() and not f.name.startswith(".")]
    return out


def find_deliveries(landing: Path, feeds: list[str] | None = None) -> list[Delivery]:
    """Every delivery waiting in ``landing/<feed>/``, sorted by feed, table, period, version."""
    out = []
    landing = Path(landing)
    if not landing.exists():
        return out
    for feed_dir in sorted(p for p in landing.iterdir() if p.is_dir() and not p.name.startswith("_")):
        if feeds and feed_dir.name not in feeds:
            continue
        for f in sorted(feed_dir.glob("*.csv")):
            out.append(Delivery.from_path(f, feed_dir.name))
    return sorted(out, key=lambda d: (d.feed, d.table, d.period, d.version))
