"""Retention policies, read from the feed contracts.

Each feed contract says how long every copy of its data is kept:

* records in the warehouse: ``slaProperties`` retention, rolling by the activity date named in
  its ``element`` (``sus_apc_spells.admission_date``). A table without its own activity date
  (a register, a list, a yearly extract) is kept by delivery period, and the newest delivery
  of such a table is always kept: it is the current list or register;
* raw deliveries in ``landing/``: ``retentionPolicy.landing`` after successful ingest;
* staged files: ``retentionPolicy.staging`` after they are loaded into the warehouse (and at
  once when they hold records past retention, which the warehouse rebuild destroys);
* legal holds: ``retentionPolicy.legalHolds``; one in force suspends every destruction of the
  feed's data and is reported.

The contract's approval is the appraisal. A contract that fails its check (a draft, a missing
or future-dated approval, any problem other than an expired legal basis) gives no approved
policy: what would be due under it is reported and never destroyed. An expired legal basis
does not stop destruction (it is when destruction matters most); it is noted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from pipeline.contracts._ig import LegalHold, Period, RetentionPolicy
from pipeline.contracts.check import CONTRACT_SUFFIX, check_contract

__all__ = ["FeedPolicy", "TableRule", "load_policies", "output_policies", "period_end", "period_end_sql"]

_UNITS = {"d": "d", "day": "d", "days": "d", "m": "m", "month": "m", "months": "m",
          "y": "y", "yr": "y", "year": "y", "years": "y"}


def period_end(period: str) -> dt.date:
    """The last day a delivery period covers: ``2024-03`` -> 31 March, ``2025`` -> 31 December."""
    if len(period) == 7:
        year, month = int(period[:4]), int(period[5:])
        return dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    if len(period) == 4:
        return dt.date(int(period), 12, 31)
    return dt.date.fromisoformat(period[:10])


#: The same as ``period_end``, in DuckDB SQL over the warehouse's ``_period`` column.
def period_end_sql(column: str = "_period") -> str:
    return (f"(CASE length({column}) WHEN 7 THEN last_day(strptime({column}, '%Y-%m')::DATE) "
            f"WHEN 4 THEN make_date({column}::INTEGER, 12, 31) ELSE {column}[1:10]::DATE END)")


@dataclass(frozen=True)
class TableRule:
    """Which rows of one warehouse table are past retention on a date."""

    feed: str
    table: str  # the contract's table name; the warehouse table is stg_<table>
    column: str | None  # an activity date column, or None: by delivery period, newest kept
    cutoff: dt.date  # rows dated before this are due

    @property
    def warehouse_table(self) -> str:
        return f"stg_{self.table}"

    def due_sql(self) -> str:
        """A predicate over the warehouse table (no data in it: a column and a date)."""
        if self.column:
            return f"({self.column} < DATE '{self.cutoff.isoformat()}')"
        return (f"({period_end_sql()} < DATE '{self.cutoff.isoformat()}' AND "
                f"_period <> (SELECT max(_period) FROM {{table}}))")

    def describe(self) -> str:
        if self.column:
            return f"rows with {self.column} before {self.cutoff.isoformat()}"
        return f"deliveries for periods ending before {self.cutoff.isoformat()} (the newest is kept)"


@dataclass(frozen=True)
class FeedPolicy:
    feed: str
    contract: str  # file name
    approved: bool
    kind: str = ""  # activity, opt-out-list or reference
    problems: tuple[str, ...] = ()  # why there is no approved policy
    records: Period | None = None
    element_table: str | None = None
    element_column: str | None = None
    tables: tuple[str, ...] = ()
    landing: Period | None = None
    staging: Period | None = None
    holds: tuple[LegalHold, ...] = ()  # in force on the as-of date
    approver: str = ""
    approval_reference: str = ""
    approval_date: str = ""
    method: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    kept: Period | None = None  # packs (after expiry) and output packages (after publication)
    what: str = ""  # for those: what the policy keeps

    @property
    def status(self) -> str:
        """``due`` may destroy; ``held`` and ``not-approved`` only report."""
        if not self.approved:
            return "not-approved"
        return "held" if self.holds else "due"

    def reason(self) -> str:
        if not self.approved:
            return "no approved policy: " + "; ".join(self.problems[:2])
        if self.holds:
            return "legal hold " + ", ".join(f"{h.reference} ({h.reason})" for h in self.holds)
        return ""

    def rules(self, as_of: dt.date) -> list[TableRule]:
        if self.records is None:
            return []
        cutoff = self.records.before(as_of)
        return [TableRule(self.feed, t, self.element_column if t == self.element_table else None, cutoff)
                for t in self.tables]

    def describe(self) -> str:
        if self.kept is not None:
            return f"{self.what} {self.kept.describe()}"
        parts = []
        if self.records:
            what = f"from {self.element_table}.{self.element_column}" if self.element_column else "by delivery period"
            parts.append(f"records {self.records.describe()} {what}")
        if self.landing:
            parts.append(f"raw deliveries {self.landing.describe()} after ingest")
        if self.staging:
            parts.append(f"staged files {self.staging.describe()} after loading")
        return "; ".join(parts)


def _unapproved(name: str, path: Path, problems: tuple[str, ...]) -> FeedPolicy:
    """What the contract *would* keep, read as far as it can be, so that what would be due is
    reported. Nothing under it is ever destroyed."""
    raw = yaml.safe_load(path.read_text()) or {}
    tables = tuple(t.get("name") for t in raw.get("schema") or [] if isinstance(t, dict) and t.get("name"))
    records = element = None
    for sla in raw.get("slaProperties") or []:
        if isinstance(sla, dict) and sla.get("property") == "retention":
            with contextlib.suppress(KeyError, TypeError, ValueError, ValidationError):
                records = Period(value=int(sla["value"]), unit=_UNITS[str(sla["unit"])])
                element = str(sla.get("element", ""))
    kept = next((c.get("value") for c in raw.get("customProperties") or []
                 if isinstance(c, dict) and c.get("property") == "retentionPolicy"), None)
    policy = None
    with contextlib.suppress(ValidationError, TypeError):
        policy = RetentionPolicy.model_validate(kept)
    table, _, column = (element or "").partition(".")
    return FeedPolicy(name, path.name, False, problems=problems, records=records, element_table=table or None,
                      element_column=column or None, tables=tables, landing=policy.landing if policy else None,
                      staging=policy.staging if policy else None)


def load_policies(contracts_dir: Path, as_of: dt.date) -> dict[str, FeedPolicy]:
    """Every feed contract's policy on ``as_of`` (approved or not), by feed name."""
    policies = {}
    for path in sorted(Path(contracts_dir).glob(f"*{CONTRACT_SUFFIX}")):
        result = check_contract(path, as_of)
        name = path.name.removesuffix(CONTRACT_SUFFIX)
        contract = result.contract
        if contract is None:
            problems = tuple(f"{p.field}: {p.message}" for p in result.problems if not p.expired)
            policies[name] = _unapproved(name, path, problems or ("the contract does not pass its check",))
            continue
        ig = contract.ig
        sla = contract.retention
        table, _, column = str(sla.get("element", "")).partition(".")
        records = Period(value=int(sla["value"]), unit=_UNITS[str(sla["unit"])]) if sla else None
        notes = tuple(p.message for p in result.problems if p.expired)
        policies[name] = FeedPolicy(
            feed=name, contract=path.name, approved=True, kind=ig.feedKind.value, records=records, element_table=table or None,
            element_column=column or None, tables=tuple(contract.tables), landing=ig.retentionPolicy.landing,
            staging=ig.retentionPolicy.staging,
            holds=tuple(h for h in ig.retentionPolicy.legalHolds if h.in_force(as_of)),
            approver=ig.approval.approvedBy, approval_reference=ig.approval.reference,
            approval_date=ig.approval.date.isoformat(), method=ig.destruction.method, notes=notes)
    return policies


def _sla(raw: dict, name: str) -> Period | None:
    for sla in raw.get("slaProperties") or []:
        if isinstance(sla, dict) and sla.get("property") == name:
            with contextlib.suppress(KeyError, TypeError, ValueError, ValidationError):
                return Period(value=int(sla["value"]), unit=_UNITS[str(sla["unit"])])
    return None


def output_policies(contracts_dir: Path) -> dict[str, FeedPolicy]:
    """Retention of what leaves the warehouse: case-finding packs (from the person mart
    contract's ``caseFindingPackRetention``, after each pack expires) and published output
    packages (each output contract's ``retention``, after publication). Approved when the
    contract passes its check; the approver is its approving role."""
    from pipeline.contracts.check import odcs_problems

    found = {}
    sources = [("case-finding packs", Path(contracts_dir) / "marts" / f"person{CONTRACT_SUFFIX}",
                "caseFindingPackRetention", "case-finding packs kept after they expire:")]
    sources += [(f"output {p.name.removesuffix(CONTRACT_SUFFIX)}", p, "retention",
                 "published packages kept after publication:")
                for p in sorted((Path(contracts_dir) / "outputs").glob(f"*{CONTRACT_SUFFIX}"))]
    for name, path, prop, what in sources:
        if not path.exists():
            continue
        raw = yaml.safe_load(path.read_text()) or {}
        problems = tuple(odcs_problems(raw, path, "mart" if prop != "retention" else "output"))
        kept = _sla(raw, prop)
        approvers = [r.get("role", "") for r in raw.get("roles") or [] if isinstance(r, dict)
                     and r.get("access") == "approve"]
        if kept is None:
            problems += (f"slaProperties: no {prop} property",)
        found[name] = FeedPolicy(name, path.name, not problems, kind="output", problems=problems,
                                 approver=", ".join(approvers), approval_reference=f"{path.name} {raw.get('version', '')}",
                                 method="delete", kept=kept, what=what)
    return found
