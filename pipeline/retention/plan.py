"""The due list: what retention would destroy on a date, under which policy and approver.

Nothing here changes anything. Every item carries a status: ``due`` (an approved policy, no
legal hold: ``safehaven retain run`` destroys it), ``held`` (a legal hold is in force),
``not-approved`` (no approved policy covers it) or ``waiting`` (due, but destroying it now
would lose data that is not due: a staged file not yet loaded into the warehouse).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass, field

from pipeline.ingest.staging import read_manifest
from pipeline.linkage.warehouse import Warehouse
from pipeline.retention.policy import (
    FeedPolicy,
    TableRule,
    load_policies,
    output_policies,
    period_end,
)

__all__ = ["Item", "Plan", "make_plan", "period_covered", "period_end"]

KINDS = ("warehouse-rows", "staged-file", "raw-delivery", "case-finding-pack", "output-package")


@dataclass
class Item:
    kind: str  # warehouse-rows | staged-file | raw-delivery | case-finding-pack | output-package
    feed: str
    target: str  # a warehouse table, or a path under the data root
    status: str  # due | held | not-approved | waiting
    rule: str
    rows: int = 0
    files: int = 0
    period_from: str | None = None
    period_to: str | None = None
    reason: str = ""
    key: str | None = None  # the data-encryption key destroyed with it
    sha256: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Plan:
    as_of: dt.date
    items: list[Item] = field(default_factory=list)
    policies: dict[str, FeedPolicy] = field(default_factory=dict)
    rules: list[TableRule] = field(default_factory=list)  # due rules only (approved, not held)
    warehouse_generation: int | None = None

    def due(self, kind: str | None = None) -> list[Item]:
        return [i for i in self.items if i.status == "due" and (kind is None or i.kind == kind)]

    def reported(self) -> list[Item]:
        return [i for i in self.items if i.status != "due"]

    def totals(self) -> dict:
        out: dict[str, dict] = {}
        for item in self.items:
            row = out.setdefault(f"{item.kind}:{item.status}", {"items": 0, "rows": 0, "files": 0})
            row["items"] += 1
            row["rows"] += item.rows
            row["files"] += item.files
        return out


def make_plan(settings, keystore, as_of: dt.date) -> Plan:
    policies = load_policies(settings.contracts_dir, as_of)
    plan = Plan(as_of, policies=policies)
    due_periods = _warehouse_items(settings, keystore, plan)
    _staged_items(settings, keystore, plan, due_periods)
    _raw_items(settings, plan)
    outputs = output_policies(settings.contracts_dir)
    plan.policies |= outputs
    _pack_items(settings, plan, outputs.get("case-finding packs"))
    _package_items(settings, plan, outputs)
    return plan


def _status(policy: FeedPolicy | None) -> tuple[str, str]:
    if policy is None:
        return "not-approved", "no contract for this feed"
    return policy.status, policy.reason()


def _warehouse_items(settings, keystore, plan: Plan) -> dict[tuple[str, str], set[str]]:
    """Rows past retention per warehouse table; returns the delivery periods holding them."""
    warehouse = Warehouse(settings.warehouse_dir, keystore)
    pointer = warehouse.current()
    if pointer is None:
        return {}
    plan.warehouse_generation = pointer["generation"]
    con = warehouse.open(create=False)
    periods: dict[tuple[str, str], set[str]] = {}
    try:
        present = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'w'").fetchall()}
        for policy in plan.policies.values():
            status, reason = _status(policy)
            for rule in policy.rules(plan.as_of):
                table = rule.warehouse_table
                if table not in present:
                    continue
                due = rule.due_sql().format(table=table)
                date = rule.column or "_period"
                rows, first, last = con.execute(
                    f"SELECT count(*), min({date})::VARCHAR, max({date})::VARCHAR FROM {table} WHERE {due}").fetchone()
                if not rows:
                    continue
                found = {r[0] for r in con.execute(f"SELECT DISTINCT _period FROM {table} WHERE {due}").fetchall()}
                periods[(policy.feed, rule.table)] = found
                plan.items.append(Item("warehouse-rows", policy.feed, table, status, rule.describe(), rows=rows,
                                       period_from=first, period_to=last, reason=reason))
                if status == "due":
                    plan.rules.append(rule)
    finally:
        con.close()
    return periods


def _loads(settings, keystore) -> dict[str, dict]:
    warehouse = Warehouse(settings.warehouse_dir, keystore)
    if warehouse.current() is None:
        return {}
    con = warehouse.open(create=False)
    try:
        return {r[0]: {"loaded_at": r[1], "superseded_by": r[2]} for r in con.execute(
            "SELECT delivery, loaded_at, superseded_by FROM _loads").fetchall()}
    finally:
        con.close()


def _staged_items(settings, keystore, plan: Plan, due_periods: dict[tuple[str, str], set[str]]) -> None:
    loads = _loads(settings, keystore)
    for manifest in sorted(settings.staging.rglob("*.manifest.json")):
        doc = read_manifest(manifest)
        if not doc:
            continue
        policy = plan.policies.get(doc["feed"])
        status, reason = _status(policy)
        parquet = manifest.with_name(doc["output"]["file"])
        relative = str(parquet.relative_to(settings.data_root))
        loaded = loads.get(doc["delivery"])
        past_retention = doc["period"] in due_periods.get((doc["feed"], doc["table"]), set())
        rule = ""
        if past_retention:
            rule = "holds records past retention"
        elif loaded and policy and policy.staging and loaded["loaded_at"].date() < policy.staging.before(plan.as_of):
            rule = f"loaded into the warehouse on {loaded['loaded_at'].date()}, kept {policy.staging.describe()}"
        if not rule:
            continue
        if status == "due" and not loaded:
            status, reason = "waiting", "not yet loaded into the warehouse: run link first"
        plan.items.append(Item("staged-file", doc["feed"], relative, status, rule, rows=doc["output"]["rows"],
                               files=2, period_from=doc["period"], period_to=doc["period"], reason=reason,
                               key=doc["output"].get("key"), sha256=doc["output"]["sha256"]))


def _raw_items(settings, plan: Plan) -> None:
    markers = settings.landing / "_ingested"
    newest: dict[str, str] = {}  # reference feeds: their newest delivery stays (ingest reads it)
    found = []
    for marker in sorted(markers.glob("*/*.json")):
        feed, name = marker.parent.name, marker.name.removesuffix(".json")
        raw = settings.landing / feed / name
        doc = read_manifest(marker)
        if not raw.exists() or not doc:
            continue
        found.append((feed, raw, doc))
        newest[feed] = max(newest.get(feed, ""), name)
    for feed, raw, doc in found:
        policy = plan.policies.get(feed)
        status, reason = _status(policy)
        if policy is None or policy.landing is None:
            continue
        ingested = dt.datetime.fromisoformat(doc["marked_at"]).date()
        if ingested >= policy.landing.before(plan.as_of):
            continue
        if policy.kind == "reference" and raw.name == newest[feed]:
            continue  # the current reference lookup: ingest reads it from landing
        plan.items.append(Item("raw-delivery", feed, str(raw.relative_to(settings.data_root)), status,
                               f"ingested on {ingested}, kept {policy.landing.describe()}", files=1,
                               period_from=str(ingested), period_to=str(ingested), reason=reason))
    for reason_file in sorted(settings.quarantine.glob("*/*.reason.json")):
        held = reason_file.with_name(reason_file.name.removesuffix(".reason.json"))
        feed = reason_file.parent.name
        policy = plan.policies.get(feed)
        doc = read_manifest(reason_file)
        if not held.exists() or not doc or policy is None or policy.landing is None:
            continue
        quarantined = dt.datetime.fromisoformat(doc["validated_at"]).date()
        if quarantined >= policy.landing.before(plan.as_of):
            continue
        status, reason = _status(policy)
        plan.items.append(Item("raw-delivery", feed, str(held.relative_to(settings.data_root)), status,
                               f"quarantined on {quarantined}, kept {policy.landing.describe()}", files=1,
                               period_from=str(quarantined), period_to=str(quarantined), reason=reason))


def _pack_items(settings, plan: Plan, policy: FeedPolicy | None) -> None:
    """Signed packs kept a while after they expire (practices may still be working from them)."""
    status, reason = _status(policy)
    for signed in sorted(settings.case_finding_dir.glob("*/*.pack.json")):
        manifest = read_manifest(signed)["manifest"]
        expired = dt.datetime.fromisoformat(manifest["expires_at"]).date()
        if policy is None or policy.kept is None or expired >= policy.kept.before(plan.as_of):
            continue
        plan.items.append(Item("case-finding-pack", policy.feed, str(signed.relative_to(settings.data_root)), status,
                               f"expired on {expired}, kept {policy.kept.describe()} after", rows=manifest["rows"],
                               files=2, period_from=manifest["reference_date"], period_to=manifest["reference_date"],
                               reason=reason, sha256=manifest["csv_sha256"]))


def _package_items(settings, plan: Plan, policies: dict[str, FeedPolicy]) -> None:
    """Published packages past their output contract's retention (the ledger keeps what they showed)."""
    for manifest_path in sorted((settings.outputs_dir / "published").glob("*/manifest.json")):
        doc = read_manifest(manifest_path)
        policy = policies.get(f"output {doc['contract']['name']}")
        status, reason = _status(policy)
        published = dt.datetime.fromisoformat(doc["published_at"]).date()
        if policy is None or policy.kept is None or published >= policy.kept.before(plan.as_of):
            continue
        folder = manifest_path.parent
        plan.items.append(Item("output-package", policy.feed, str(folder.relative_to(settings.data_root)), status,
                               f"published on {published}, kept {policy.kept.describe()}",
                               files=sum(1 for p in folder.rglob("*") if p.is_file()),
                               period_from=doc["reference_date"], period_to=doc["reference_date"], reason=reason,
                               sha256=hashlib.sha256(manifest_path.read_bytes()).hexdigest()))


def period_covered(items: list[Item]) -> tuple[str | None, str | None]:
    """The earliest and latest dates the items cover."""
    firsts = [i.period_from for i in items if i.period_from]
    lasts = [i.period_to for i in items if i.period_to]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)

