"""Ingest one delivery: contract -> validation gate -> firewall -> opt-outs -> staged Parquet.

``Ingestor.ingest(path, feed)`` is what the Prefect task calls; ``ingest_all`` does every
waiting delivery in a safe order (reference data, then opt-out lists, then activity), because
activity feeds need the postcode lookup and in-date opt-out lists.

Outcomes: ``staged`` (new Parquet + manifest), ``skipped`` (already staged from the same file
under the same key: a no-op), ``quarantined`` (failed the gate or the firewall's checks; moved
whole to ``landing/_quarantine``). Contract, key and stale-opt-out problems raise: they are
not the delivery's fault and nothing is read.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

import pipeline
from pipeline.audit import AuditLog
from pipeline.contracts import FeedContract, FeedKind
from pipeline.errors import DeliveryError, DeliveryQuarantined, OptOutListStale
from pipeline.failpoints import crash_point
from pipeline.ingest.deliveries import Delivery, find_delivery_files
from pipeline.ingest.firewall import Firewall, FirewallKeys, normalised_postcode
from pipeline.ingest.gate import (
    PARSE_ERRORS,
    GateResult,
    ValidationGate,
    sha256_file,
    unparseable_csv,
)
from pipeline.ingest.rules import RuleCounter, canonical_header, read_batches, read_header
from pipeline.ingest.staging import (
    ParquetOut,
    pin_linkage_key,
    read_manifest,
    read_staged,
    staged_key_name,
    staged_paths,
    write_json_atomic,
)
from pipeline.keys import KeyDomain, Keystore
from pipeline.settings import Settings

__all__ = ["INGEST_ORDER", "IngestResult", "Ingestor"]

log = logging.getLogger("pipeline.ingest")

#: Feed kinds in the order they must be ingested.
INGEST_ORDER = (FeedKind.REFERENCE, FeedKind.OPT_OUT_LIST, FeedKind.ACTIVITY)
#: Which opt-out list feed answers which contract question.
OPT_OUT_FEEDS = {"ndoo": ("ndoo", "ndoo_list", "nationalDataOptOut"),
                 "type1": ("type1_optout", "type1_optout_list", "type1OptOut")}


@dataclass
class IngestResult:
    delivery_id: str
    feed: str
    file: str
    status: str  # staged | skipped | quarantined
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    manifest: str | None = None

    def raise_if_quarantined(self) -> None:
        """Raise ``DeliveryQuarantined`` naming the columns and rules (never values)."""
        if self.status == "quarantined":
            raise DeliveryQuarantined(
                f"delivery {self.delivery_id} ({self.file}) was quarantined whole:\n  " + "\n  ".join(self.reasons),
                self.reasons,
            )


def _period_date(period: str) -> dt.date:
    """The date a delivery period stands for: the day itself, or the first of the month/year."""
    parts = [int(p) for p in period.split("-")]
    return dt.date(parts[0], *(parts[1:] + [1, 1])[:2])


class Ingestor:
    def __init__(self, settings: Settings, keystore: Keystore, audit: AuditLog | None = None):
        self.settings = settings
        self.audit = audit or settings.audit()
        self.gate = ValidationGate(settings, self.audit)
        self.keystore = keystore
        active = keystore.active_version()
        previous = [v for v in keystore.usable_versions() if v < active]
        self.keys = FirewallKeys(
            linkage=keystore.domain_key(KeyDomain.LINKAGE),
            postcode=keystore.domain_key(KeyDomain.POSTCODE),
            local_id=keystore.domain_key(KeyDomain.LOCAL_ID),
            linkage_previous=keystore.domain_key(KeyDomain.LINKAGE, previous[-1]) if previous else None,
        )
        self._lookup: pl.DataFrame | None = None
        self._opt_out_cache: dict[str, tuple[dict[str, pl.Series], dict]] = {}
        self._contents: dict[str, dict[str, str]] = {}  # feed -> input SHA-256 -> delivery staged from it
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------
    def plan(self, feeds: list[str] | None = None) -> list[tuple[Path, str]]:
        """Every waiting delivery, in ingest order (reference, opt-out lists, activity)."""
        files = find_delivery_files(self.settings.landing, feeds)
        order = {kind: i for i, kind in enumerate(INGEST_ORDER)}
        files.sort(key=lambda item: (order[self.gate.contract(item[1]).ig.feedKind], item[1], item[0].name))
        return files

    def is_activity(self, feed: str) -> bool:
        return self.gate.contract(feed).ig.feedKind is FeedKind.ACTIVITY

    def prepare_activity(self, feeds: set[str]) -> None:
        """Load what concurrent activity ingests share (contracts, the key pin, the postcode
        lookup, the opt-out sets) once, before they start; raises if a list is stale."""
        pin_linkage_key(self.settings.staging, self.keys.linkage, self.keys.linkage_previous)
        for feed in sorted(feeds):
            contract = self.gate.contract(feed)
            self._opt_outs(contract)
            if any(c.action == "postcode-geography" for t in contract.tables.values() for c in t.columns):
                self._postcode_lookup()

    def ingest_all(self, feeds: list[str] | None = None, on_result=None) -> list[IngestResult]:
        """Ingest every waiting delivery: lists and reference data in order, then activity
        deliveries ``settings.ingest_workers`` at a time."""
        from concurrent.futures import ThreadPoolExecutor

        files = self.plan(feeds)
        first = [(p, f) for p, f in files if not self.is_activity(f)]
        activity = [(p, f) for p, f in files if self.is_activity(f)]
        results = []

        def done(result):
            results.append(result)
            if on_result:
                on_result(result)

        for path, feed in first:
            done(self.ingest(path, feed))
        if activity:
            self.prepare_activity({f for _, f in activity})
            with ThreadPoolExecutor(max_workers=self.settings.ingest_workers, thread_name_prefix="ingest") as pool:
                for result in pool.map(lambda item: self.ingest(*item), activity):
                    done(result)
        self.gate.build_data_docs()
        return results

    def ingest(self, path: Path | str, feed: str) -> IngestResult:
        path = Path(path)
        started = time.perf_counter()
        contract = self.gate.contract(feed)  # a contract problem stops here, nothing read
        try:
            delivery = Delivery.from_path(path, feed, contract)
        except DeliveryError:  # the gate quarantines what it cannot identify
            return self._from_gate(self.gate.validate(path, feed), started)
        paths = staged_paths(self.settings.staging, delivery)
        digest = sha256_file(path)
        manifest = read_manifest(paths.manifest)
        if manifest and manifest["input"]["sha256"] == digest and \
                manifest["keys"]["linkage"]["fingerprint"] == self.keys.linkage.fingerprint and paths.parquet.exists():
            self._mark_done(delivery, paths.manifest)
            return IngestResult(delivery.id, feed, path.name, "skipped", manifest["rows_in"], manifest["rows_out"],
                                round(time.perf_counter() - started, 3), manifest=str(paths.manifest))
        if manifest and manifest["input"]["sha256"] != digest:
            reason = (f"delivery {delivery.id} was already staged from a different file; a changed "
                      f"extract must come as a new version (v{delivery.version + 1})")
            return self._from_gate(self.gate.quarantine(delivery, [reason], contract.version), started)
        kind = contract.ig.feedKind
        if kind is FeedKind.ACTIVITY and (earlier := self._claim_content(feed, digest, delivery.id)) is not None:
            reason = (f"content: the same content as delivery {earlier}, already staged (byte for byte: SHA-256 "
                      f"{digest[:12]}...); loading it again as {delivery.id} would count every record twice. If it "
                      "really is another period's extract, ask the supplier why it is identical to that one")
            return self._from_gate(self.gate.quarantine(delivery, [reason], contract.version), started)

        table = contract.table(delivery.table) if delivery.table in contract.tables else None
        # With the polars engine, activity and opt-out deliveries are validated and transformed in
        # one pass: the firewall's output goes to a temporary file that is committed only if the
        # gate's verdict on the whole delivery passes. Otherwise the gate runs first, on its own.
        single_pass = self.settings.validation_engine == "polars" and kind is not FeedKind.REFERENCE
        gate_started = time.perf_counter()
        if single_pass:
            gate_result, checked_delivery, table, columns = self.gate.open_delivery(path, feed, digest)
            if checked_delivery is None:
                return self._from_gate(gate_result, started)
        else:
            checked = self.gate.validate(path, feed, digest=digest)
            if not checked.passed:
                return self._from_gate(checked, started)
            header = canonical_header(read_header(path, table, delivery.layout), table)
            columns = [c for c in table.column_names if c in header]
        pin_linkage_key(self.settings.staging, self.keys.linkage, self.keys.linkage_previous)

        if kind is FeedKind.REFERENCE:
            firewall = None
        else:
            opt_outs = self._opt_outs(contract) if kind is FeedKind.ACTIVITY else {}
            opt_out_info = self._opt_out_cache.get(contract.name, ({}, {}))[1]
            lookup = self._postcode_lookup() if any(c.action == "postcode-geography" for c in table.columns) else None
            firewall = Firewall(table, feed, self.keys, lookup=lookup, opt_outs=opt_outs,
                                allow_test_range=self.settings.allow_synthetic_nhs_numbers)
        out = ParquetOut(paths.parquet, self._file_key(paths.parquet))
        bridge_out = None
        if firewall and self.keys.linkage_previous is not None:
            bridge_dir = (self.settings.staging / "_bridges" /
                          f"{self.keys.linkage_previous.key_id}__to__{self.keys.linkage.key_id}".replace("/", "-"))
            bridge_path = bridge_dir / f"{delivery.slug}.parquet"
            bridge_out = ParquetOut(bridge_path, self._file_key(bridge_path))

        def abort():
            out.abort()
            if bridge_out is not None:
                bridge_out.abort()

        rows_in = 0
        try:
            if firewall is None:
                staged = self._reference(path, columns, table, delivery.layout)
                rows_in = staged.height
                out.write(staged.to_arrow())
                counts = {"rows_in": rows_in, "rows_out": staged.height}
            else:
                counter = RuleCounter(table, columns) if single_pass else None
                try:
                    for batch in read_batches(path, columns, self.settings.validation_batch_bytes, table,
                                              delivery.layout):
                        frame = pl.from_arrow(batch)
                        if counter is not None:
                            counter.add(frame)
                        staged, bridge = firewall.transform(frame, rows_in)
                        rows_in += batch.num_rows
                        out.write(staged.to_arrow())
                        if bridge_out is not None and bridge is not None and bridge.height:
                            bridge_out.write(bridge.to_arrow())
                except PARSE_ERRORS:
                    if not single_pass:
                        raise
                    abort()
                    gate_result.reasons.append(unparseable_csv(path, rows_in))
                    return self._from_gate(self.gate.conclude(gate_result, checked_delivery, table, columns, counter,
                                                              gate_started, digest), started)
                if single_pass:
                    verdict = self.gate.conclude(gate_result, checked_delivery, table, columns, counter,
                                                 gate_started, digest)
                    if not verdict.passed:
                        abort()  # nothing of a failing delivery is published
                        return self._from_gate(verdict, started)
                counts = firewall.stats.as_dict()
                if firewall.stats.unparseable:
                    abort()
                    reasons = [
                        f"column '{col}', rule '{col}_parses': {n:,} value(s) have the right shape but are "
                        f"not a real {table.column(col).logical_type} (e.g. a 30th of February)"
                        for col, n in sorted(firewall.stats.unparseable.items())
                    ]
                    for reason in reasons:
                        log.warning("delivery %s rejected by the firewall: %s", delivery.id, reason)
                    return self._from_gate(self.gate.quarantine(delivery, reasons, contract.version), started)
            out.commit()
            if bridge_out is not None:
                bridge_out.commit()
        except BaseException:
            abort()
            raise
        crash_point("ingest.committed")
        doc = {
            "delivery": delivery.id,
            "feed": feed,
            "table": delivery.table,
            "period": delivery.period,
            "version": delivery.version,
            "contract": {"id": f"safehaven-{feed.replace('_', '-')}", "name": contract.name, "version": contract.version,
                         "sha256": self.gate.contract_sha256(feed)},
            "as_of": self.settings.as_of.isoformat() if self.settings.as_of else None,
            "input": {"file": path.name, "sha256": digest, "bytes": path.stat().st_size},
            "output": {"file": paths.parquet.name, "sha256": sha256_file(paths.parquet), "rows": out.rows,
                       "key": staged_key_name(self.settings.staging, paths.parquet)},
            "rows_in": counts["rows_in"],
            "rows_out": counts["rows_out"],
            "counts": counts,
            "keys": {
                "linkage": {"key_id": self.keys.linkage.key_id, "fingerprint": self.keys.linkage.fingerprint},
                "postcode": {"key_id": self.keys.postcode.key_id, "fingerprint": self.keys.postcode.fingerprint},
                "local_id": {"key_id": self.keys.local_id.key_id, "fingerprint": self.keys.local_id.fingerprint},
            },
            "opt_out_lists": opt_out_info if firewall is not None and kind is FeedKind.ACTIVITY else {},
            "code_version": pipeline.__version__,
            "allow_synthetic_nhs_numbers": self.settings.allow_synthetic_nhs_numbers,
            "ingested_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(paths.manifest, doc)  # last: its presence means the delivery is staged
        self._mark_done(delivery, paths.manifest)
        self.audit.append("delivery.staged", {
            "delivery": delivery.id, "rows_in": doc["rows_in"], "rows_out": doc["rows_out"],
            "nhs_number_status": counts.get("nhs_number_status", {}),
            "opt_out_removed": counts.get("opt_out_removed", {}),
            "linkage_key": self.keys.linkage.key_id, "fingerprint": self.keys.linkage.fingerprint,
        })
        return IngestResult(delivery.id, feed, path.name, "staged", doc["rows_in"], doc["rows_out"],
                            round(time.perf_counter() - started, 3), counts=counts, manifest=str(paths.manifest))

    # ------------------------------------------------------------------------------------
    @staticmethod
    def _from_gate(result: GateResult, started: float) -> IngestResult:
        """The ingest result for a delivery the gate quarantined."""
        return IngestResult(result.delivery_id, result.feed, result.file, "quarantined", result.rows, 0,
                            round(time.perf_counter() - started, 3), reasons=list(result.reasons))

    def _file_key(self, parquet: Path) -> bytes:
        """The staged file's own data-encryption key (created on first use)."""
        return self.keystore.data_key(staged_key_name(self.settings.staging, parquet), create=True)

    def _claim_content(self, feed: str, digest: str, delivery_id: str) -> str | None:
        """The delivery already staged (or being staged in this run) from the same bytes under
        another name, if any; otherwise claim ``digest`` for ``delivery_id``."""
        with self._lock:
            if feed not in self._contents:
                index = {}
                for path in sorted((self.settings.staging / feed).rglob("*.manifest.json")):
                    doc = read_manifest(path)
                    if doc:
                        index.setdefault(doc["input"]["sha256"], doc["delivery"])
                self._contents[feed] = index
            earlier = self._contents[feed].setdefault(digest, delivery_id)
            return earlier if earlier != delivery_id else None

    def _mark_done(self, delivery: Delivery, manifest: Path) -> None:
        """Mark the raw delivery as ingested, for retention (no identifiers in the marker).

        The first marking stands: a re-run that skips the delivery leaves ``marked_at`` alone,
        or the raw file's destruction date would move on with every scheduled run."""
        marker = self.settings.landing / "_ingested" / delivery.feed / f"{delivery.path.name}.json"
        relative = str(manifest.relative_to(self.settings.data_root))
        existing = read_manifest(marker)
        if existing and existing.get("manifest") == relative and existing.get("marked_at"):
            return
        write_json_atomic(marker, {"delivery": delivery.id, "manifest": relative,
                                   "marked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                   **({"as_of": self.settings.as_of.isoformat()} if self.settings.as_of else {})})

    @staticmethod
    def _reference(path: Path, columns: list[str], table=None, layout: bool = False) -> pl.DataFrame:
        """A reference file's staged form: the postcode lookup's geography only, no postcodes; any
        other reference table (the ODS practices) as delivered, one row per distinct row."""
        frame = pl.concat([pl.from_arrow(b) for b in read_batches(path, columns, 64 * 2**20, table, layout)])
        if "postcode" not in frame.columns:
            return frame.unique().sort(frame.columns)
        keep = [c for c in ("lsoa21cd", "ward_code", "ward_name", "imd_decile", "imd_edition") if c in frame.columns]
        return frame.select(keep).unique().sort(keep).with_columns(pl.col("imd_decile").cast(pl.Int32))

    def _postcode_lookup(self) -> pl.DataFrame:
        """The newest validated postcode lookup, read from landing into this step's memory only."""
        with self._lock:
            if self._lookup is None:
                self._lookup = self._load_postcode_lookup()
            return self._lookup

    def _load_postcode_lookup(self) -> pl.DataFrame:
        candidates = []
        contract = self.gate.contract("postcode_lookup")
        for path, _feed in find_delivery_files(self.settings.landing, ["postcode_lookup"]):
            try:
                d = Delivery.from_path(path, "postcode_lookup", contract)  # a supplier's file names too
            except DeliveryError:  # misnamed files are the gate's business
                continue
            receipt = self.settings.validation_dir / "receipts" / "postcode_lookup" / f"{path.name}.json"
            if receipt.exists() and read_manifest(receipt)["sha256"] == sha256_file(path):
                candidates.append((d.period, d.version, d.layout, path))
        if not candidates:
            raise OptOutListStale(
                "no validated postcode lookup in landing/postcode_lookup: activity feeds cannot derive "
                "geography without it; deliver and ingest the lookup first"
            )
        _, _, layout, path = max(candidates)
        table = contract.table("postcode_lookup")
        columns = list(table.column_names)
        frame = pl.concat([pl.from_arrow(b) for b in read_batches(path, columns, 64 * 2**20, table, layout)])
        _, formatted = normalised_postcode(pl.col("postcode"))
        return frame.select(
            formatted.alias("postcode"), "lsoa21cd", "ward_code",
            pl.col("imd_decile").cast(pl.Int32), terminated=pl.col("date_terminated").is_not_null(),
        ).drop_nulls("postcode").unique("postcode", keep="first")

    def _opt_outs(self, contract: FeedContract) -> dict[str, pl.Series]:
        """Pseudonyms of people whose applicable opt-out removes them; refuses stale lists.
        Loaded once per feed and run (``prepare_activity`` does it before threads start)."""
        with self._lock:
            if contract.name not in self._opt_out_cache:
                self._opt_out_cache[contract.name] = self._load_opt_outs(contract)
            return self._opt_out_cache[contract.name][0]

    def _load_opt_outs(self, contract: FeedContract) -> tuple[dict[str, pl.Series], dict]:
        sets, info = {}, {}
        for name, (feed, table, attribute) in OPT_OUT_FEEDS.items():
            if not getattr(contract.ig, attribute).applies:
                continue
            manifests = sorted((self.settings.staging / feed / table).glob("*.manifest.json"))
            docs = [read_manifest(m) for m in manifests]
            docs = [d for d in docs if d and d["keys"]["linkage"]["fingerprint"] == self.keys.linkage.fingerprint]
            list_contract = self.gate.contract(feed)
            max_age = list_contract.ig.deliveryCadence.maxAgeDays
            if not docs:
                raise OptOutListStale(
                    f"feed '{contract.name}' needs the {name} opt-out list, and none has been ingested under "
                    f"the current key; deliver landing/{feed}/ and ingest it first. Nothing was staged"
                )
            latest = max(docs, key=lambda d: (d["period"], d["version"]))
            judged_on = self.settings.latest_today()  # never the as-of alone: a replay cannot make a list current
            age = max((judged_on - _period_date(latest["period"])).days, 0)
            override = None
            if age > max_age:
                override = self.settings.stale_opt_out_override
                if not override:
                    raise OptOutListStale(
                        f"the {name} opt-out list ({latest['delivery']}) is {age} days old on {judged_on}; its "
                        f"contract allows {max_age}. Refusing to stage '{contract.name}' until a current list is "
                        "ingested (an --as-of date does not change a list's age). An IG lead who accepts the risk "
                        "can override it, audited: safehaven ingest --accept-stale-opt-outs \"WHO: WHY\""
                    )
                self.audit.append("opt_out.stale_list_accepted", {
                    "feed": contract.name, "list": name, "delivery": latest["delivery"], "age_days": age,
                    "max_age_days": max_age, "judged_on": judged_on.isoformat(), "reason": override})
                log.warning("using the %s opt-out list %s, %d days old (contract allows %d), under an IG override",
                            name, latest["delivery"], age, max_age)
            staged = self.settings.staging / feed / table / latest["output"]["file"]
            frame = pl.from_arrow(read_staged(self.settings.staging, staged, self.keystore, columns=["person_pid"]))
            sets[name] = frame["person_pid"].drop_nulls().unique()
            info[name] = {"delivery": latest["delivery"], "age_days": age, "max_age_days": max_age,
                          "judged_on": judged_on.isoformat(), "entries": sets[name].len(),
                          **({"override": override} if override else {})}
        return sets, info

