"""The typed view of a feed contract that the rest of the pipeline uses.

``FeedContract`` is built from the ODCS model plus the validated IG extension; it is frozen
and holds no data, so it is safe to pass anywhere (including to Prefect tasks by feed name).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.contracts._ig import DeliveryFormat, FeedIG, FirewallAction, Role

__all__ = ["ColumnSpec", "FeedContract", "QualityRule", "TableSpec", "date_regex", "readable_format"]


@dataclass(frozen=True)
class QualityRule:
    """One quality rule from a contract, normalised.

    ``threshold`` is the largest failing share (``unit == "percent"``, 0-100) or failing row
    count (``unit == "rows"``) that still passes. ``blocking`` rules quarantine a delivery.
    """

    name: str
    column: str
    metric: str  # nullValues | invalidValues
    threshold: float
    unit: str  # rows | percent
    blocking: bool
    description: str
    valid_values: tuple[str, ...] | None = None
    pattern: str | None = None
    formats: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def accepts(self) -> str:
        """What the rule accepts, in words a supplier can act on (never a delivered value)."""
        if self.metric == "nullValues":
            return "a value in every row" if self.threshold == 0 else "blanks in a few rows only"
        if self.valid_values is not None:
            return "one of " + ", ".join(f"'{v}'" for v in self.valid_values)
        if self.formats:
            return "dates as " + " or ".join(f"{readable_format(f)} ({f})" for f in self.formats)
        if self.minimum is not None or self.maximum is not None:
            low = "any number" if self.minimum is None else f"numbers from {self.minimum:,g}"
            return low + ("" if self.maximum is None else f" to {self.maximum:,g}")
        return f"values matching {self.pattern}"

    def fix(self) -> str:
        """How to put a failure right: the supplier's side first, then the contract's."""
        if self.metric == "nullValues":
            return ("ask the supplier to fill the column; if it may legitimately be blank, the contract can make "
                    "it optional (required: false) in a new version")
        if self.valid_values is not None:
            return ("ask the supplier to send these codes; if theirs is a genuine code, add it with its meaning "
                    "to the column's enum in a new contract version")
        if self.formats:
            return ("ask the supplier for one of these formats; if theirs is a genuine date format, add it to the "
                    "table's delivery.dateFormats (or the column's acceptedFormats) in a new contract version")
        if self.minimum is not None or self.maximum is not None:
            return ("ask the supplier to correct the values; if the range is wrong, change the column's "
                    "logicalTypeOptions minimum/maximum in a new contract version")
        return "ask the supplier for a corrected extract, or change the rule's pattern in a new contract version"

    def passes(self, failing: int, considered: int) -> bool:
        if self.unit == "percent":
            share = 100.0 * failing / considered if considered else 0.0
            return share <= self.threshold + 1e-9
        return failing <= self.threshold


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    logical_type: str
    required: bool
    role: Role
    action: FirewallAction
    description: str
    formats: tuple[str, ...] = ()
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] = ()
    primary_key: bool = False


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[ColumnSpec, ...]
    rules: tuple[QualityRule, ...]
    activity_date: str | None = None
    delivery: DeliveryFormat | None = None  # a supplier's layout (file names, aliases, delimiter...)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The columns marked ``primaryKey: true``: together, unique within a delivery."""
        return tuple(c.name for c in self.columns if c.primary_key)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class FeedContract:
    name: str
    version: str
    path: Path
    ig: FeedIG
    tables: dict[str, TableSpec] = field(default_factory=dict)
    retention: dict[str, object] = field(default_factory=dict)

    @property
    def expires(self) -> dt.date | None:
        return self.ig.legalBasis.commonLaw.expires

    def table(self, name: str) -> TableSpec:
        return self.tables[name]


_FORMAT_PIECES = {
    "%Y": r"[0-9]{4}",
    "%m": r"[0-9]{2}",
    "%d": r"[0-9]{2}",
    "%H": r"[0-9]{2}",
    "%M": r"[0-9]{2}",
    "%S": r"[0-9]{2}",
}


def date_regex(formats: tuple[str, ...] | list[str]) -> str:
    """A regular expression matching any of the strptime ``formats`` (shape only)."""
    alternatives = []
    for fmt in formats:
        out, i = [], 0
        while i < len(fmt):
            piece = fmt[i : i + 2]
            if piece in _FORMAT_PIECES:
                out.append(_FORMAT_PIECES[piece])
                i += 2
            else:
                out.append(re.escape(fmt[i]))
                i += 1
        alternatives.append("".join(out))
    return r"^\s*(?:" + "|".join(alternatives) + r")\s*$"


_READABLE = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "hh", "%M": "mm", "%S": "ss", "%b": "Mon", "%y": "YY"}


def readable_format(fmt: str) -> str:
    """A strptime format as people write it: ``%d/%m/%Y`` -> ``DD/MM/YYYY``."""
    return re.sub(r"%[A-Za-z]", lambda m: _READABLE.get(m.group(0), m.group(0)), fmt)
