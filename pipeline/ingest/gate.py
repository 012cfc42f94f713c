"""The validation gate: every delivery is checked against its contract before anything reads it.

Order, failing fast and reading as little as possible:

1. the feed's contract must exist, be consistent and be in date (else ``ContractError``:
   nothing is read, nothing is quarantined: the delivery is not at fault);
2. the file name must identify a table the contract declares;
3. the header must hold exactly the declared columns: an undeclared column (say
   ``patient_name`` where the contract has none) or a missing required one quarantines the
   delivery before a single row is read;
4. rows are streamed in batches of bounded size (deliveries may be larger than memory) and
   each batch runs through the table's Great Expectations suite; counts are summed over
   batches and each rule is judged on the whole delivery;
5. any failing blocking rule, a repeated primary key, or bytes that are not UTF-8 quarantine the
   delivery whole: it moves to ``landing/_quarantine/<feed>/`` with a reason file; nothing from
   it goes further. A file validated by hand from outside ``landing/`` is never moved: the
   verdict is reported and audited, and the file is left where it is.

A passing delivery gets a receipt (``validation/receipts/<feed>/<file>.json``) holding the
file's SHA-256, so a later step can tell the validated file from a changed one. Every
outcome is written to the audit log. No message, reason file, receipt, result or Data Docs
page holds a value from the delivery: they name files, columns, rules and counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipeline.audit import AuditLog
from pipeline.contracts import FeedContract, TableSpec, require_contract
from pipeline.contracts.suites import numeric_shadow
from pipeline.errors import ContractError, DeliveryError, DeliveryQuarantined
from pipeline.ingest._gx import GxProject, data_docs_index, unrendered
from pipeline.ingest.deliveries import Delivery
from pipeline.ingest.rules import (
    IGNORED,
    KeyCounter,
    RuleCounter,
    canonical_header,
    read_batches,
    read_header,
    undecodable,
)
from pipeline.ingest.staging import write_json_atomic
from pipeline.logs import contains_identifier
from pipeline.settings import Settings

__all__ = ["GateResult", "RuleOutcome", "ValidationGate"]

log = logging.getLogger("pipeline.gate")

_SAFE_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]{0,63}$")


#: What a malformed CSV raises: Arrow's messages quote the offending row, so never pass them on.
PARSE_ERRORS = (pa.ArrowInvalid, pl.exceptions.ComputeError, pl.exceptions.NoDataError)


def unparseable_csv(path: Path, rows_read: int) -> str:
    """Why a delivery could not be read as CSV: bytes that are not UTF-8 (with the row and the
    encoding they look like), else a broken row. Never quotes the row."""
    bad = undecodable(path)
    if bad is not None:
        return bad
    return (f"the CSV could not be parsed after row {rows_read:,} "
            "(a row with the wrong number of fields, or a broken quote)")


_DATA_SHAPED = re.compile(r"\d{3}|\d[-/]\d|^\d+([.]\d+)?$")


def _printable_column(name: str, position: int) -> str:
    """A column name safe to show: a header cell that looks like data (an identifier, a date, a
    code or number with digits in a row, free text) is never echoed."""
    if _SAFE_COLUMN.fullmatch(name) and not contains_identifier(name) and not _DATA_SHAPED.search(name):
        return name
    return f"<column {position} (name not shown: it looks like data, not a header)>"


def looks_headerless(header: list[str], table) -> bool:
    """True when the first line is a row of data: none of the contract's columns is named in it
    and most of its cells look like values (digits, dates, codes) rather than names."""
    if not header or set(header) & set(table.column_names):
        return False
    data_like = sum(1 for h in header if not _SAFE_COLUMN.fullmatch(h) or _DATA_SHAPED.search(h)
                    or contains_identifier(h))
    return data_like * 2 >= len(header)


_DELIMITER_NAMES = {",": "',' (comma)", ";": "';' (semicolon)", "\t": "a tab", "|": "'|' (pipe)"}


def _delimiter_mismatch(header: list[str], table: TableSpec, expected: str) -> str | None:
    """The gate's message when the header, read with the ``expected`` delimiter, only makes sense
    split on another: it names both delimiters and how many contract columns the other one finds
    (never a cell)."""
    declared = set(table.column_names)
    if len(set(header) & declared) * 2 > len(declared):
        return None
    best = None
    for delimiter in _DELIMITER_NAMES:
        if delimiter == expected:
            continue
        parts = [p for cell in header for p in cell.split(delimiter)]
        found = len(set(canonical_header(parts, table)) & declared)
        if found >= 2 and found > len(set(header) & declared) and (best is None or found > best[1]):
            best = (delimiter, found)
    if best is None:
        return None
    delimiter, found = best
    return (f"delimiter: the file is separated by {_DELIMITER_NAMES[delimiter]}, but contract table '{table.name}' "
            f"expects {_DELIMITER_NAMES[expected]} (split on {_DELIMITER_NAMES[delimiter]} the header names {found} of "
            f"its {len(declared)} columns). Fix: ask the supplier for a {_DELIMITER_NAMES[expected]}-separated extract, or "
            f"declare the supplier's layout in the contract: the table's delivery property with delimiter "
            f"{_DELIMITER_NAMES[delimiter].split(' ')[0]} and a filenames pattern matching names like this one "
            "(a new contract version)")


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    column: str
    blocking: bool
    considered: int
    failing: int
    threshold: float
    unit: str
    passed: bool
    description: str
    accepts: str = ""
    fix: str = ""

    @classmethod
    def of(cls, rule, considered: int, failing: int, passed: bool) -> RuleOutcome:
        return cls(rule=rule.name, column=rule.column, blocking=rule.blocking, considered=considered,
                   failing=failing, threshold=rule.threshold, unit=rule.unit, passed=passed,
                   description=rule.description, accepts=rule.accepts(), fix=rule.fix())

    def describe(self) -> str:
        share = 100.0 * self.failing / self.considered if self.considered else 0.0
        limit = f"{self.threshold:g}%" if self.unit == "percent" else f"{self.threshold:g} rows"
        return (
            f"column '{self.column}', rule '{self.rule}': {self.failing:,} of {self.considered:,} "
            f"values fail ({share:.2f}%; allowed {limit}). {self.description}"
            + (f" Accepted: {self.accepts}." if self.accepts else "") + (f" Fix: {self.fix}." if self.fix else "")
        )


@dataclass
class GateResult:
    delivery_id: str
    feed: str
    table: str
    file: str
    passed: bool
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0
    contract_version: str = ""
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    outcomes: list[RuleOutcome] = field(default_factory=list)
    receipt: str | None = None
    quarantined_to: str | None = None

    def raise_if_quarantined(self) -> None:
        if not self.passed:
            raise DeliveryQuarantined(
                f"delivery {self.delivery_id} ({self.file}) was quarantined whole:\n  "
                + "\n  ".join(self.reasons),
                self.reasons,
                self.quarantined_to,
            )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(4 * 1024 * 1024), b""):
            h.update(chunk)
    return h.hexdigest()


def register_contract_version(staging: Path, contract: FeedContract, audit: AuditLog) -> str:
    """Pin each contract version to the text it was first used with, and return that text's SHA-256.

    ``staging/_contracts.json`` maps ``<feed>@<version>`` to the SHA-256 of the contract file the
    first time that version checked a delivery. A contract edited without a new version would make
    the rules applied to earlier deliveries unknowable, so it is refused (``ContractError``) and
    nothing is read. Manifests and receipts carry the hash, so each names the exact rules."""
    import fcntl

    digest = hashlib.sha256(contract.path.read_bytes()).hexdigest()
    registry = Path(staging) / "_contracts.json"
    registry.parent.mkdir(parents=True, exist_ok=True)
    name = f"{contract.name}@{contract.version}"
    with open(registry.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = json.loads(registry.read_text()) if registry.exists() else {}
        first = known.get(name)
        if first and first["sha256"] != digest:
            audit.append("contract.edited_without_new_version", {
                "feed": contract.name, "file": contract.path.name, "version": contract.version,
                "first_sha256": first["sha256"], "sha256": digest})
            raise ContractError(
                f"contract {contract.path.name} was edited but still says version {contract.version}: that version "
                f"was first used on {first['first_used'][:10]} with a different text (SHA-256 {first['sha256'][:12]}..., "
                f"now {digest[:12]}...). Deliveries already staged under {name} were checked against the earlier "
                "rules, so the same version cannot mean two rule sets. Bump the contract's version (e.g. "
                f"{_next_patch(contract.version)}), record the change, and run again; nothing was read.")
        if first is None:
            known[name] = {"sha256": digest, "file": contract.path.name,
                           "first_used": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
            write_json_atomic(registry, known)
            audit.append("contract.version_registered", {"feed": contract.name, "version": contract.version,
                                                         "file": contract.path.name, "sha256": digest})
    return digest


def _next_patch(version: str) -> str:
    parts = version.split(".")
    if parts and parts[-1].isdigit():
        return ".".join([*parts[:-1], str(int(parts[-1]) + 1)])
    return version + ".1"


class ValidationGate:
    """Validates deliveries against their contracts; one GX project for the whole run."""

    def __init__(self, settings: Settings, audit: AuditLog | None = None):
        self.settings = settings
        self.audit = audit or settings.audit()
        self._gx: GxProject | None = None
        self._gx_lock = threading.Lock()
        self._contracts: dict[str, FeedContract] = {}
        self._hashes: dict[str, str] = {}

    @property
    def gx(self) -> GxProject:
        with self._gx_lock:
            if self._gx is None:
                self._gx = GxProject(self.settings.validation_dir)
        return self._gx

    def contract(self, feed: str) -> FeedContract:
        """The feed's checked contract; its text must be the one its version was first used with."""
        if feed not in self._contracts:
            contract = require_contract(self.settings.contracts_dir, feed, self.settings.today(), self.audit)
            self._hashes[feed] = register_contract_version(self.settings.staging, contract, self.audit)
            self._contracts[feed] = contract
        return self._contracts[feed]

    def contract_sha256(self, feed: str) -> str:
        """SHA-256 of the contract file the feed's deliveries are checked under in this run."""
        self.contract(feed)
        return self._hashes[feed]

    # ------------------------------------------------------------------------------------
    def validate(
        self,
        path: Path | str,
        feed: str | None = None,
        on_batch: Callable[[int], None] | None = None,
        digest: str | None = None,
    ) -> GateResult:
        """Validate one delivery file; quarantine it if it fails. Returns the result."""
        started = time.perf_counter()
        result, delivery, table, columns = self.open_delivery(path, feed, digest)
        if delivery is None:
            return result
        if self.settings.validation_engine == "polars":
            counter = RuleCounter(table, columns)
            try:
                for batch in read_batches(delivery.path, columns, self.settings.validation_batch_bytes, table,
                                          delivery.layout):
                    counter.add(pl.from_arrow(batch))
                    if on_batch:
                        on_batch(batch.num_rows)
            except PARSE_ERRORS:
                result.reasons.append(unparseable_csv(delivery.path, counter.rows))
            return self.conclude(result, delivery, table, columns, counter, started, digest)
        try:
            self._validate_rows_gx(delivery, table, columns, result, on_batch)
        except PARSE_ERRORS:
            result.reasons.append(unparseable_csv(delivery.path, result.rows))
        return self._finish(result, delivery, started, digest)

    def open_delivery(self, path: Path | str, feed: str | None = None, digest: str | None = None):
        """Contract, name, table and header checks, before any row is read.

        Returns ``(result, delivery, table, columns)``; ``delivery`` is None when the delivery
        was already quarantined (``result`` says why). A contract problem raises.
        """
        path = Path(path)
        if not path.is_file():
            raise DeliveryError(f"delivery file not found: {path}")
        feed = feed or path.parent.name
        contract = self.contract(feed)  # raises before anything is read
        started = time.perf_counter()
        try:
            delivery = Delivery.from_path(path, feed, contract)
        except DeliveryError as exc:
            unknown = Delivery(feed=feed, table="unidentified", period="unknown", version=0, path=path)
            result = GateResult(delivery_id=unknown.id, feed=feed, table=unknown.table, file=path.name,
                                passed=False, contract_version=contract.version, reasons=[str(exc)])
            return self._finish(result, unknown, started, digest), None, None, []
        result = GateResult(delivery_id=delivery.id, feed=delivery.feed, table=delivery.table, file=path.name,
                            passed=False, contract_version=contract.version)
        table = contract.tables.get(delivery.table)
        if table is None:
            result.reasons.append(
                f"table '{delivery.table}' is not declared in contract '{contract.name}' "
                f"(declared: {', '.join(sorted(contract.tables))})"
            )
            return self._finish(result, delivery, started, digest), None, None, []
        try:
            header = canonical_header(read_header(path, table, delivery.layout), table)
        except DeliveryError as exc:  # a header that cannot be decoded: quarantined, named, never shown
            result.reasons.append(str(exc).removeprefix(f"{path.name}: "))
            return self._finish(result, delivery, started, digest), None, None, []
        read_with = table.delivery.delimiter if delivery.layout and table.delivery is not None else ","
        columns = self._check_header(header, table, result, read_with)
        if result.reasons:
            return self._finish(result, delivery, started, digest), None, None, []
        return result, delivery, table, columns

    def conclude(self, result: GateResult, delivery: Delivery, table: TableSpec, columns: list[str],
                 counter: RuleCounter, started: float, digest: str | None = None) -> GateResult:
        """Judge every rule on the whole delivery's counts, record them, and finish (receipt or
        quarantine). Used by ``validate`` and by ingest's single pass."""
        result.rows, result.batches = counter.rows, counter.batches
        counts = counter.counts()
        self._judge(table, {c.rule: [c.elements, c.missing, c.unexpected] for c in counts}, result)
        if (repeated := counter.keys.reason()) is not None:
            result.reasons.append(repeated)
        self.gx.record_counts(table, columns, counts, {o.rule: o.passed for o in result.outcomes},
                              run_name=f"{delivery.slug}__all")
        return self._finish(result, delivery, started, digest)

    def _check_header(self, header: list[str], table: TableSpec, result: GateResult, delimiter: str = ",") -> list[str]:
        declared = set(table.column_names)
        header = [h for h in header if not h.startswith(IGNORED)]  # columns the delivery layout ignores
        shown = {name: _printable_column(name, i + 1) for i, name in enumerate(header)}
        if not header:
            result.reasons.append("the file is empty (no header row)")
            return []
        if (mismatch := _delimiter_mismatch(header, table, delimiter)) is not None:
            result.reasons.append(mismatch)
            return []
        if looks_headerless(header, table):
            result.reasons.append(
                f"header: the first line looks like data, not column names (none of the {len(declared)} columns of "
                f"contract table '{table.name}' is named in it, and its {len(header)} cells look like values); the "
                "file seems to have no header row. Its cells are not shown. Ask the supplier to add the header: "
                + ", ".join(table.column_names))
            return []
        dupes = sorted({shown[h] for h in header if header.count(h) > 1})
        if dupes:
            result.reasons.append(f"duplicate column(s) in the header: {', '.join(dupes)}")
        extra = [shown[h] for h in header if h not in declared]
        if extra:
            result.reasons.append(
                f"undeclared column(s) {', '.join(repr(e) for e in extra)}: not in contract table "
                f"'{table.name}'. The supplier must remove them, or the contract must declare "
                "them with a role and a firewall action"
            )
        missing_required = [c.name for c in table.columns if c.required and c.name not in header]
        if missing_required:
            result.reasons.append(
                f"missing required column(s) {', '.join(repr(m) for m in missing_required)} "
                f"of contract table '{table.name}'"
            )
        missing_optional = [c.name for c in table.columns if not c.required and c.name not in header]
        if missing_optional:
            result.warnings.append(f"optional column(s) absent: {', '.join(missing_optional)}")
        return [h for h in header if h in declared]

    def _validate_rows_gx(self, delivery, table, columns, result, on_batch) -> None:
        import pandas as pd

        totals: dict[str, list[int]] = {r.name: [0, 0, 0] for r in table.rules if r.column in columns}
        keys = KeyCounter(table, columns)
        ranged = [r for r in table.rules if r.column in columns and (r.minimum is not None or r.maximum is not None)]
        structure_ok = True
        for i, batch in enumerate(read_batches(delivery.path, columns, self.settings.validation_batch_bytes, table,
                                               delivery.layout)):
            frame = batch.to_pandas()
            for r in ranged:
                frame[numeric_shadow(r.column)] = pd.to_numeric(frame[r.column], errors="coerce")
            counts, ok = self.gx.validate_batch(
                table, columns, frame, run_name=f"{delivery.slug}__batch{i:04d}"
            )
            structure_ok = structure_ok and ok
            keys.add(pl.from_arrow(batch))
            for c in counts:
                t = totals.setdefault(c.rule, [0, 0, 0])
                t[0] += c.elements
                t[1] += c.missing
                t[2] += c.unexpected
            result.rows += batch.num_rows
            result.batches += 1
            if on_batch:
                on_batch(batch.num_rows)
        if not structure_ok:
            result.reasons.append("the batch columns did not match the contract")
        self._judge(table, totals, result)
        if (repeated := keys.reason()) is not None:
            result.reasons.append(repeated)

    @staticmethod
    def _judge(table: TableSpec, totals: dict[str, list[int]], result: GateResult) -> None:
        """Judge each rule on the whole delivery's counts."""
        for rule in table.rules:
            if rule.name not in totals:
                continue
            elements, missing, unexpected = totals[rule.name]
            considered = elements if rule.metric == "nullValues" else elements - missing
            passed = rule.passes(unexpected, considered)
            outcome = RuleOutcome.of(rule, considered, unexpected, passed)
            result.outcomes.append(outcome)
            if not passed:
                (result.reasons if rule.blocking else result.warnings).append(outcome.describe())

    def quarantine(self, delivery: Delivery, reasons: list[str], contract_version: str) -> GateResult:
        """Quarantine a delivery a later step rejected (e.g. the firewall), with its reasons."""
        result = GateResult(delivery_id=delivery.id, feed=delivery.feed, table=delivery.table,
                            file=delivery.path.name, passed=False, contract_version=contract_version,
                            reasons=list(reasons))
        return self._finish(result, delivery, time.perf_counter())

    # ------------------------------------------------------------------------------------
    def _finish(self, result: GateResult, delivery: Delivery, started: float, digest: str | None = None) -> GateResult:
        result.passed = not result.reasons
        result.seconds = round(time.perf_counter() - started, 3)
        digest = digest or sha256_file(delivery.path)
        record = {
            "delivery": result.delivery_id,
            "file": result.file,
            "sha256": digest,
            "bytes": delivery.path.stat().st_size,
            "contract": f"{delivery.feed}@{result.contract_version}",
            "rows": result.rows,
            "batches": result.batches,
            "passed": result.passed,
            "reasons": result.reasons,
            "warnings": result.warnings,
            "rules": [asdict(o) for o in result.outcomes],
            "validated_at": dt.datetime.now(dt.UTC).isoformat(),
            "as_of": self.settings.as_of.isoformat() if self.settings.as_of else None,
            "contract_sha256": self._hashes.get(delivery.feed),
        }
        inside_landing = delivery.path.resolve().is_relative_to(self.settings.landing.resolve())
        if not result.passed and not inside_landing:
            # A file checked by hand from elsewhere is the user's own: report it, never move it.
            for reason in result.reasons:
                log.warning("%s failed validation: %s", result.file, reason)
            self.audit.append(
                "delivery.failed_validation",
                {k: record[k] for k in ("delivery", "file", "sha256", "contract", "rows", "reasons")}
                | {"left_in_place": True})
            return result
        if result.passed:
            receipt = self.settings.validation_dir / "receipts" / delivery.feed / f"{delivery.path.name}.json"
            receipt.parent.mkdir(parents=True, exist_ok=True)
            receipt.write_text(json.dumps(record, indent=2))
            result.receipt = str(receipt)
            self.audit.append(
                "delivery.validated",
                {k: record[k] for k in ("delivery", "file", "sha256", "contract", "rows", "batches", "warnings")}
                | {"failing_rules": [o.rule for o in result.outcomes if not o.passed]},
            )
        else:
            stale_receipt = self.settings.validation_dir / "receipts" / delivery.feed / f"{delivery.path.name}.json"
            stale_receipt.unlink(missing_ok=True)
            for reason in result.reasons:
                log.warning("delivery %s quarantined: %s", result.delivery_id, reason)
            target_dir = self.settings.quarantine / delivery.feed
            target_dir.mkdir(parents=True, exist_ok=True)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = target_dir / f"{stamp}__{delivery.path.name}"
            shutil.move(str(delivery.path), target)
            reason_file = target.with_name(target.name + ".reason.json")
            reason_file.write_text(json.dumps(record | {"quarantined_file": target.name}, indent=2))
            result.quarantined_to = str(target)
            self.audit.append(
                "delivery.quarantined",
                {k: record[k] for k in ("delivery", "file", "sha256", "contract", "rows", "reasons")}
                | {"quarantined_as": target.name},
            )
        return result

    def build_data_docs(self) -> Path | None:
        """Bring the Data Docs site for IG leads up to date (new pages only); returns the index
        page, or None before anything was ever validated. GX is opened only if a page is due."""
        project = self.settings.validation_dir
        if self._gx is None:
            if not (project / "gx").exists():
                return None
            if data_docs_index(project).exists() and unrendered(project) == ([], set()):
                return data_docs_index(project)
        return self.gx.build_data_docs()
