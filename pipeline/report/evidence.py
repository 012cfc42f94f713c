"""The IG evidence pack: one self-contained HTML site under ``reports/evidence/`` that an IG
lead can read without asking an engineer, holding no patient data.

Everything is read from what the flows already leave behind, never from the warehouse:
contracts, validation receipts and staging manifests (counts), quarantine reason files, the
linkage and model reports' JSON, published packages' manifests, destruction certificates and
the audit log (checked end to end first). The page shows counts, names, dates, rules and
hashes; a value that looks like an NHS number or a postcode is refused before anything is
written (``assert_no_identifiers``).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.audit import AuditLog, VerifyReport, contains_identifier
from pipeline.contracts import check_contracts
from pipeline.contracts._ig import ACTIONS_FOR_ROLE, FirewallAction, Role
from pipeline.errors import ReportRefused
from pipeline.report.charts import stacked_bars
from pipeline.report.page import Page
from pipeline.settings import Settings

__all__ = ["EvidencePack", "assert_no_identifiers", "build_evidence_pack", "collect_evidence", "visible_text"]

#: Audit events shown as the query, re-identification and destruction trails.
QUERY_EVENTS = ("query.run", "query.exported", "query.refused", "query.failed")
REIDENTIFY_EVENTS = ("reidentify.request", "reidentify.refused")
#: The four identifiers the founding design allows in (date of birth becomes age at activity).
PERMITTED = {FirewallAction.PSEUDONYMISE_NHS_NUMBER, FirewallAction.POSTCODE_GEOGRAPHY, FirewallAction.AGE_AT_ACTIVITY,
             FirewallAction.GENDER_CODE, FirewallAction.PSEUDONYMISE_LOCAL_ID}


@dataclass
class EvidencePack:
    """What the pack shows, as plain data (also written as ``latest.json``)."""

    generated: str
    as_of: str
    audit: dict
    contracts: list[dict]
    history: dict[str, list[dict]]
    deliveries: list[dict]
    quarantines: list[dict]
    linkage: dict | None
    model: dict | None
    releases: list[dict]
    queries: list[dict]
    reidentifications: list[dict]
    certificates: list[dict]
    opt_out_overrides: list[dict] = field(default_factory=list)
    checklist: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------
def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _audit_panel(report: VerifyReport) -> dict:
    return {"ok": report.ok, "entries": report.entries, "head": report.head,
            "first_bad_line": report.first_bad_line, "problem": report.problem}


def _contract_rows(settings: Settings, as_of: dt.date) -> list[dict]:
    from pipeline.retention.policy import load_policies

    policies = load_policies(settings.contracts_dir, as_of)
    rows = []
    for result in check_contracts(settings.contracts_dir, as_of):
        feed = result.path.name.removesuffix(".odcs.yaml")
        policy = policies.get(feed)
        row = {"feed": feed, "file": result.path.name, "ok": result.ok, "expired": result.expired,
               "problems": [f"{p.field}: {p.message}" for p in result.problems],
               "retention": policy.describe() if policy else "",
               "legal_holds": [f"{h.reference}: {h.reason} (placed {h.placed} by {h.placedBy})"
                               for h in (policy.holds if policy else ())]}
        c = result.contract
        if c is not None:
            ig, law = c.ig, c.ig.legalBasis
            directs = [col for t in c.tables.values() for col in t.columns if col.role is not Role.ATTRIBUTE]
            row |= {
                "version": c.version, "kind": ig.feedKind.value,
                "article6": law.article6, "article9": law.article9, "common_law": law.commonLaw.basis.value,
                "common_law_reference": law.commonLaw.reference or "",
                "expires": law.commonLaw.expires.isoformat() if law.commonLaw.expires else "",
                "days_left": (law.commonLaw.expires - as_of).days if law.commonLaw.expires else None,
                "controllers": list(ig.dataControllers), "processors": list(ig.dataProcessors),
                "purposes": [p.value for p in ig.permittedPurposes],
                "identifiers_permitted": list(ig.identifierPolicy.permitted),
                "identifier_actions": sorted({f"{col.name} → {col.action.value}" for col in directs}),
                "identifiers_transformed": all(col.action in PERMITTED | {FirewallAction.DROP}
                                               and col.action in ACTIONS_FOR_ROLE[col.role] for col in directs),
                "opt_out": {"applies": ig.nationalDataOptOut.applies, "applied_at": ig.nationalDataOptOut.appliedAt,
                            "rationale": ig.nationalDataOptOut.rationale},
                "destruction": ig.destruction.method,
                "approver": f"{ig.approval.approvedBy} ({ig.approval.role})",
                "approved": ig.approval.date.isoformat(), "approval_reference": ig.approval.reference,
            }
        rows.append(row)
    return rows


def _git_history(path: Path) -> list[dict]:
    """The contract file's commits, when the contracts folder is a git work tree (where a
    CSU should keep them); empty otherwise."""
    try:
        out = subprocess.run(["git", "log", "--follow", "--format=%h%x1f%ad%x1f%an%x1f%s", "--date=short", "--",
                              path.name], cwd=path.parent, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode:
        return []
    rows = []
    for line in out.stdout.splitlines():
        commit, date, author, subject = (line.split("\x1f") + ["", "", "", ""])[:4]
        rows.append({"source": "git", "commit": commit, "date": date, "by": author, "change": subject})
    return rows


def _history(settings: Settings, contracts: list[dict], manifests: list[dict], entries) -> dict[str, list[dict]]:
    """Per contract: its git commits, and the versions the pipeline actually used (from the
    staging manifests: first and last delivery validated under each version)."""
    used: dict[tuple[str, str], list[str]] = {}
    for m in manifests:
        used.setdefault((m["feed"], m.get("contract", {}).get("version", "?")), []).append(m.get("ingested_at", ""))
    checks: dict[str, list[str]] = {}
    for e in entries:
        if e.event == "contract.checked":
            checks.setdefault(str(e.details.get("file", "")), []).append(e.ts[:10])
    out = {}
    for c in contracts:
        rows = _git_history(settings.contracts_dir / c["file"])
        for (feed, version), stamps in sorted(used.items()):
            if feed == c["feed"]:
                stamps = sorted(s for s in stamps if s)
                rows.append({"source": "deliveries", "commit": f"version {version}",
                             "date": f"{stamps[0][:10]} to {stamps[-1][:10]}" if stamps else "",
                             "by": "ingest", "change": f"{len(stamps)} delivery(ies) validated under it"})
        if checks.get(c["file"]):
            days = sorted(checks[c["file"]])
            rows.append({"source": "audit", "commit": "contracts check", "date": f"{days[0]} to {days[-1]}",
                         "by": "", "change": f"checked {len(days)} time(s)"})
        out[c["feed"]] = rows
    return out


def _deliveries(settings: Settings) -> tuple[list[dict], list[dict], list[dict]]:
    manifests = [m for p in sorted(settings.staging.rglob("*.manifest.json")) if (m := _json(p))]
    receipts = {}
    for p in settings.validation_dir.glob("receipts/*/*.json"):
        if (r := _json(p)) and "delivery" in r:
            receipts[r["delivery"]] = r
    rows = []
    for m in manifests:
        counts = m.get("counts", {})
        receipt = receipts.get(m["delivery"], {})
        rows.append({
            "delivery": m["delivery"], "feed": m["feed"], "contract": f"{m['contract']['name']} {m['contract']['version']}",
            "received": m.get("ingested_at", "")[:19].replace("T", " "),
            "validation": "passed" if receipt.get("passed", True) else "failed",
            "warnings": len(receipt.get("warnings", [])), "rows_in": m.get("rows_in", 0), "rows_staged": m.get("rows_out", 0),
            "nhs_number_status": counts.get("nhs_number_status", {}),
            "opt_out_removed": sum(counts.get("opt_out_removed", {}).values()),
        })
    quarantines = []
    for p in sorted(settings.quarantine.glob("*/*.reason.json")):
        if doc := _json(p):
            quarantines.append({"delivery": doc.get("delivery", p.name), "feed": p.parent.name,
                                "contract": doc.get("contract", ""), "when": str(doc.get("validated_at", ""))[:19],
                                "reasons": list(doc.get("reasons", []))})
    return rows, quarantines, manifests


def _linkage(settings: Settings) -> dict | None:
    doc = _json(settings.reports_dir / "linkage" / "latest.json")
    if not doc:
        return None
    quality = doc.get("quality", {})
    return {"by_feed": quality.get("by_feed", {}), "by_age_band": quality.get("by_age_band", {}),
            "evaluation": {k: {m: v.get(m) for m in ("precision", "recall", "linked")}
                           for k, v in doc.get("evaluation", {}).items() if isinstance(v, dict)},
            "page": "../linkage/latest.html"}


def _model(settings: Settings) -> dict | None:
    doc = _json(settings.reports_dir / "models" / "latest.json")
    if not doc:
        return None
    chosen = doc.get("model", {})
    validation = doc.get("validation", {})
    best = validation.get(chosen.get("kind", ""), next(iter(validation.values()), {})) if validation else {}
    return {"version": doc.get("version"), "outcome": doc.get("outcome"), "population": doc.get("population"),
            "chosen_because": chosen.get("chosen_because", ""), "auroc": best.get("auroc"),
            "calibration_slope": best.get("calibration", {}).get("slope"), "limitations": doc.get("limitations", []),
            "created": doc.get("created_at", ""), "page": "../models/latest.html"}


def _releases(settings: Settings, entries) -> list[dict]:
    rows = []
    for e in entries:
        if e.event not in {"disclosure.published", "disclosure.refused"}:
            continue
        d = e.details
        tables = d.get("tables", {}) if isinstance(d.get("tables"), dict) else {}
        folder = settings.outputs_dir / "published" / str(d.get("package", ""))
        rows.append({"when": e.ts[:19].replace("T", " "), "event": e.event.split(".")[1], "by": e.actor,
                     "package": d.get("package", ""), "contract": d.get("contract", ""),
                     "tables": len(tables), "cells": sum(t.get("cells", 0) for t in tables.values()),
                     "hidden": sum(t.get("hidden", 0) for t in tables.values()),
                     "manifest_sha256": d.get("manifest_sha256", ""), "reason": "; ".join(map(str, d.get("reasons", [])))[:300],
                     "present": folder.is_dir() and bool(d.get("package"))})
    return rows


def _trail(entries, events) -> list[dict]:
    return [{"seq": e.seq, "when": e.ts[:19].replace("T", " "), "event": e.event, "by": e.actor,
             "details": {k: v for k, v in e.details.items() if k not in {"sql_sha256"}}}
            for e in entries if e.event in events]


def _certificates(settings: Settings, keystore, audit: AuditLog) -> list[dict]:
    from pipeline.retention.certificate import certificates_dir
    from pipeline.retention.verify import verify_certificates

    checked = {r["certificate"]: r for r in verify_certificates(settings, keystore, audit)} if keystore else {}
    rows = []
    for path in sorted(certificates_dir(settings).glob("*.json")):
        doc = _json(path) or {}
        name = doc.get("certificate", path.stem)
        rows.append({"certificate": name, "as_of": doc.get("as_of"), "run_by": doc.get("run_by", doc.get("operator", "")),
                     "records": doc.get("totals", {}).get("records"), "files": doc.get("totals", {}).get("files"),
                     "keys": len(doc.get("keys_destroyed", [])),
                     "verified": bool(doc.get("verification", {}).get("passed")),
                     "problems": checked.get(name, {}).get("problems", ["not checked (no keystore)"]),
                     "page": f"../../retention/certificates/{path.with_suffix('.html').name}"})
    return rows


def _checklist(pack: EvidencePack, settings: Settings) -> list[dict]:
    from pipeline.disclosure.outputs import DIMENSIONS, load_output_contract, output_contract_names

    contracts = pack.contracts
    loaded = [c for c in contracts if "version" in c]
    dims = set()
    for name in output_contract_names(settings.contracts_dir):
        try:
            dims |= {d for t in load_output_contract(settings.contracts_dir, name).tables for d in t.dims}
        except Exception:  # noqa: BLE001 - a broken output contract is its own finding below
            dims.add("(unreadable output contract)")
    certificates_ok = all(not c["problems"] for c in pack.certificates)
    refused_reid = sum(r["event"] == "reidentify.refused" for r in pack.reidentifications)

    def item(control, source, passed, evidence, link):
        return {"control": control, "source": source, "passed": bool(passed), "evidence": evidence, "link": link}

    return [
        item("Identifiers limited to NHS number, postcode, age and gender", "Founding design",
             loaded and all(c["identifiers_transformed"] for c in loaded),
             f"{len(loaded)} contracts: every identifying column is pseudonymised, reduced to age or geography, "
             "or dropped at the identifier firewall; nothing identifying is kept", "#contracts"),
        item("NHS number used only for direct care", "Founding design",
             all(r["event"] in REIDENTIFY_EVENTS for r in pack.reidentifications),
             f"{len(pack.reidentifications)} re-identification request(s), all by a GP practice's list match "
             f"({refused_reid} refused); analysts see pseudonyms only", "#reidentification"),
        item("Age bands and postcode stems (ward) in outputs", "Founding design",
             dims <= set(DIMENSIONS),  # the whitelist: never a pseudonym, nothing finer than a ward
             "published dimensions: " + (", ".join(sorted(dims)) or "none"), "#releases"),
        item("Legal basis recorded and current", "Founding design",
             loaded and all(not c["expired"] for c in contracts),
             f"{sum(not c['expired'] for c in contracts)} of {len(contracts)} contracts within their legal basis",
             "#contracts"),
        item("Data controllers and processors named", "Founding design",
             loaded and all(c["controllers"] and c["processors"] for c in loaded),
             "every contract names its controllers and processors", "#contracts"),
        item("Destruction policy approved and proven", "Founding design",
             loaded and all(c["retention"] for c in loaded) and certificates_ok,
             f"retention in every contract; {len(pack.certificates)} destruction certificate(s), "
             f"{sum(not c['problems'] for c in pack.certificates)} re-verified", "#destruction"),
        item("Transparency: a public notice generated from the contracts", "Founding design", True,
             "the notice is rebuilt with this pack", "../notice/index.html"),
        item("Audit trail of every access, hash-chained (Caldicott 2, rec. 1)", "Caldicott 2", pack.audit["ok"],
             f"{pack.audit['entries']:,} entries; chain {'intact' if pack.audit['ok'] else 'BROKEN'}", "#audit-chain"),
        item("Linkage of identifiable data only in a safe haven (Caldicott 2, rec. 10)", "Caldicott 2",
             loaded and all(c["identifiers_transformed"] for c in loaded),
             "identifiers are read only at ingest inside the safe haven; records are linked on keyed pseudonyms",
             "#linkage"),
        item("Objections respected (Caldicott 2, rec. 11)", "Caldicott 2",
             loaded and not pack.opt_out_overrides
             and all(c["opt_out"]["applies"] is False or c["opt_out"]["applied_at"] == "ingest" for c in loaded),
             f"{sum(d['opt_out_removed'] for d in pack.deliveries):,} record(s) removed by opt-outs at ingest; "
             "each contract states whether the national data opt-out applies and why"
             + (f"; {len(pack.opt_out_overrides)} IG override(s) let a stale opt-out list be used (see Opt-out "
                "overrides)" if pack.opt_out_overrides else "; every list used was within its contract's age"),
             "#opt-out-overrides" if pack.opt_out_overrides else "#deliveries"),
        item("Disclosures published: what, to whom, why (Caldicott 2, rec. 19)", "Caldicott 2",
             True, f"{len(pack.releases)} release(s) with disclosure records; the public notice lists "
             "recipients and purposes", "#releases"),
    ]


def collect_evidence(settings: Settings, keystore=None) -> EvidencePack:
    """Everything the pack shows, read from the data root (no warehouse access)."""
    audit = settings.audit()
    report = audit.verify()
    entries = list(audit.entries()) if settings.audit_log.exists() else []
    as_of = settings.today()
    contracts = _contract_rows(settings, as_of)
    deliveries, quarantines, manifests = _deliveries(settings)
    pack = EvidencePack(
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), as_of=as_of.isoformat(),
        audit=_audit_panel(report), contracts=contracts, history=_history(settings, contracts, manifests, entries),
        deliveries=deliveries, quarantines=quarantines, linkage=_linkage(settings), model=_model(settings),
        releases=_releases(settings, entries), queries=_trail(entries, QUERY_EVENTS),
        reidentifications=_trail(entries, REIDENTIFY_EVENTS), certificates=_certificates(settings, keystore, audit),
        opt_out_overrides=_trail(entries, {"opt_out.stale_list_accepted"}))
    pack.checklist = _checklist(pack, settings)
    return pack


def visible_text(page: str) -> str:
    """What a reader sees: the page without its style sheet, chart drawing and markup (the
    chart's labels are the same names as the tables beside it), with entities decoded."""
    page = re.sub(r"(?is)<style.*?</style>|<svg.*?</svg>", " ", page)
    return html.unescape(re.sub(r"(?s)<[^>]*>", "\n", page))


def assert_no_identifiers(text: str, where: str) -> None:
    """Refuse to write a page with anything shaped like an NHS number or a postcode in it."""
    if contains_identifier(visible_text(text)):
        raise ReportRefused(f"{where}: refused to write the page: a value looks like an NHS number or a postcode")


# Rendering ------------------------------------------------------------------------------
_EXTRA_CSS = """<style>
nav.toc{background:#fff;padding:.6rem 1.4rem;border-radius:6px;margin-top:1rem;font-size:.9rem}
nav.toc a{margin-right:1rem}
.panel-ok{border-left:8px solid #007f3b}.panel-bad{border-left:8px solid #d5281b;background:#fde8e6}
td.pass{color:#007f3b;font-weight:600}td.fail{color:#d5281b;font-weight:600}
details{margin:.3rem 0}summary{cursor:pointer;font-weight:600}
#checklist td,#contracts td,#models td,#queries td,#reidentification td{text-align:left;vertical-align:top}
</style>"""
_SECTIONS = [("audit-chain", "Audit chain"), ("checklist", "Controls"), ("contracts", "Contracts"),
             ("deliveries", "Deliveries"), ("linkage", "Linkage"), ("models", "Models"), ("releases", "Releases"),
             ("queries", "Queries"), ("reidentification", "Re-identification"),
             ("opt-out-overrides", "Opt-out overrides"), ("destruction", "Destruction")]


def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _link(href: str, text: str) -> str:
    return f'<a href="{_esc(href)}">{_esc(text)}</a>'


def _raw_table(header: list[str], rows: list[list[str]]) -> str:
    """A table whose cells the caller has already escaped (for links and pass/fail cells)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status_cell(ok: bool, yes: str = "pass", no: str = "FAIL") -> str:
    return f'<td class="{"pass" if ok else "fail"}">{_esc(yes if ok else no)}</td>'


def render_evidence(pack: EvidencePack) -> str:
    page = Page("IG evidence pack", f"As of {pack.as_of}; generated {pack.generated}. Counts, rules and hashes only: "
                "no patient data.", marking="OFFICIAL - for the IG lead, Caldicott Guardian and auditors")
    a = pack.audit
    if a["ok"]:
        chain = Page.text(f"Intact: {a['entries']:,} entries, each hash-chained to the one before; head {a['head']}.", "ok")
    else:
        chain = Page.text(f"BROKEN at line {a['first_bad_line']}: {a['problem']}. {a['entries']:,} entries check out "
                          "before it. Nothing after that line can be trusted until the cause is found.", "bad")
    page.section("Audit chain", f'<div id="audit-chain-status" class="{"panel-ok" if a["ok"] else "panel-bad"}" '
                 f'data-ok="{str(a["ok"]).lower()}" style="padding:.6rem 1rem">{chain}</div>', anchor="audit-chain")
    page.section("Controls checklist", _raw_table(
        ["control", "source", "result", "evidence", "see"],
        [[_esc(c["control"]), _esc(c["source"]), _status_cell(c["passed"]), _esc(c["evidence"]), _link(c["link"], "evidence")]
         for c in pack.checklist]), anchor="checklist")

    parts = [Page.cards([("contracts", len(pack.contracts)), ("passing", sum(c["ok"] for c in pack.contracts))])]
    for c in pack.contracts:
        if "version" not in c:
            parts.append(f"<details open><summary>{_esc(c['feed'])}: does not pass its check</summary>"
                         + Page.table(["problem"], [[p] for p in c["problems"]]) + "</details>")
            continue
        expires = c["expires"] and f"{c['expires']} ({c['days_left']} days)"
        facts = [("version", c["version"]), ("kind", c["kind"]), ("status", "ok" if c["ok"] else "; ".join(c["problems"])),
                 ("UK GDPR Article 6", c["article6"]), ("UK GDPR Article 9", c["article9"]),
                 ("common law", f"{c['common_law']} {c['common_law_reference']}".strip()),
                 ("legal basis expires", expires or "no expiry"), ("controllers", ", ".join(c["controllers"])),
                 ("processors", ", ".join(c["processors"])), ("purposes", ", ".join(c["purposes"])),
                 ("identifiers permitted", ", ".join(c["identifiers_permitted"])),
                 ("firewall", "; ".join(c["identifier_actions"])),
                 ("national data opt-out", (f"{'applies' if c['opt_out']['applies'] else 'does not apply'} "
                                            f"({c['opt_out']['applied_at']}): {c['opt_out']['rationale']}")),
                 ("retention", c["retention"]), ("legal holds in force", "; ".join(c["legal_holds"]) or "none"),
                 ("destruction method", c["destruction"]),
                 ("approved by", f"{c['approver']} on {c['approved']} ({c['approval_reference']})")]
        history = pack.history.get(c["feed"], [])
        parts.append(f"<details><summary>{_esc(c['feed'])} {_esc(c['version'])}</summary>"
                     + Page.table(["", ""], facts)
                     + Page.table(["source", "change", "date", "by", "what"],
                                  [[h["source"], h["commit"], h["date"], h["by"], h["change"]] for h in history],
                                  caption="Change history") + "</details>")
    page.section("Contracts", *parts, anchor="contracts")

    statuses = sorted({s for d in pack.deliveries for s in d["nhs_number_status"]})
    by_feed: dict[str, Counter] = {}
    for d in pack.deliveries:
        by_feed.setdefault(d["feed"], Counter()).update(d["nhs_number_status"])
    parts = [Page.cards([("deliveries staged", len(pack.deliveries)), ("quarantined", len(pack.quarantines)),
                         ("rows received", sum(d["rows_in"] for d in pack.deliveries)),
                         ("removed by opt-outs", sum(d["opt_out_removed"] for d in pack.deliveries))])]
    if by_feed and statuses:
        parts.append(Page.figure(stacked_bars({f: dict(c) for f, c in sorted(by_feed.items())}, statuses,
                                              title="NHS number status per feed"),
                                 "Records per NHS number status, per feed (from the staging manifests)."))
    per_feed: dict[str, Counter] = {}
    for d in pack.deliveries:
        per_feed.setdefault(d["feed"], Counter()).update(
            {"deliveries": 1, "warnings": d["warnings"], "rows in": d["rows_in"], "rows staged": d["rows_staged"],
             "opt-out removed": d["opt_out_removed"], **d["nhs_number_status"]})
    quarantined = Counter(q["feed"] for q in pack.quarantines)
    columns = ["deliveries", "warnings", "rows in", "rows staged", *statuses, "opt-out removed"]
    parts.append(Page.table(["feed", *columns, "quarantined"],
                            [[f, *(c.get(k, 0) for k in columns), quarantined.get(f, 0)]
                             for f, c in sorted(per_feed.items())], caption="Per feed"))
    parts.append("<details><summary>Every delivery received</summary>" + Page.table(
        ["delivery", "contract", "received", "validation", "warnings", "rows in", "rows staged", *statuses, "opt-out removed"],
        [[d["delivery"], d["contract"], d["received"], d["validation"], d["warnings"], d["rows_in"], d["rows_staged"],
          *(d["nhs_number_status"].get(s, 0) for s in statuses), d["opt_out_removed"]] for d in pack.deliveries])
        + "</details>")
    if pack.quarantines:
        parts.append(Page.table(["quarantined delivery", "feed", "contract", "when", "reasons"],
                                [[q["delivery"], q["feed"], q["contract"], q["when"], "; ".join(q["reasons"])]
                                 for q in pack.quarantines], caption="Quarantined deliveries, with reasons"))
    page.section("Deliveries", *parts, anchor="deliveries")

    if pack.linkage:
        lk = pack.linkage
        series = ["deterministic", "rescued", "unlinked"]
        parts = [Page.figure(stacked_bars(lk["by_feed"], series, title="Records by linkage outcome, per table"), "Deterministic links on the NHS number pseudonym, "
                             "rescued links on age, gender and area, and records left unlinked.")]
        if lk["evaluation"]:
            parts.append(Page.table(["method", "precision", "recall", "linked"],
                                    [[k, v["precision"], v["recall"], v["linked"]] for k, v in lk["evaluation"].items()],
                                    caption="Against the known truth (synthetic runs) or a clerical sample"))
        parts.append(f"<p>{_link(lk['page'], 'The full linkage quality report')}</p>")
    else:
        parts = [Page.text("No linkage has run yet.")]
    page.section("Linkage quality", *parts, anchor="linkage")

    if pack.model:
        m = pack.model
        parts = [Page.table(["", ""], [("version", m["version"]), ("outcome", m["outcome"]), ("population", m["population"]),
                                       ("validation AUROC", m["auroc"]), ("calibration slope", m["calibration_slope"]),
                                       ("chosen because", m["chosen_because"]), ("trained", m["created"])]),
                 Page.table(["limitation"], [[x] for x in m["limitations"]]),
                 f"<p>{_link(m['page'], 'The model card')}</p>"]
    else:
        parts = [Page.text("No model has been trained yet.")]
    page.section("Models", *parts, anchor="models")

    page.section("Releases", _raw_table(
        ["when", "outcome", "by", "package", "contract", "tables", "cells", "hidden", "manifest SHA-256", "record"],
        [[_esc(r["when"]), _esc(r["event"]), _esc(r["by"]), _esc(r["package"]), _esc(r["contract"]), _esc(r["tables"]),
          _esc(r["cells"]), _esc(r["hidden"]), _esc(r["manifest_sha256"][:16]),
          _link(f"../../outputs/published/{r['package']}/index.html", "package") if r["present"] else _esc(r["reason"] or "removed")]
         for r in pack.releases]) if pack.releases else Page.text("Nothing has been published."), anchor="releases")

    def trail(rows, keys):
        return Page.table(["#", "when", "event", "by", *keys],
                          [[r["seq"], r["when"], r["event"], r["by"], *(_short(r["details"].get(k)) for k in keys)]
                           for r in rows]) if rows else Page.text("None recorded.")

    page.section("Queries", trail(pack.queries, ["role", "marts", "rows", "sql", "path", "reason"]), anchor="queries")
    page.section("Re-identification requests", trail(pack.reidentifications, ["practice", "requester", "purpose", "counts", "reason"]),
                 anchor="reidentification")
    page.section("Opt-out overrides", trail(pack.opt_out_overrides, ["feed", "list", "delivery", "age_days",
                                                                     "max_age_days", "as_of", "reason"]),
                 anchor="opt-out-overrides")
    page.section("Destruction certificates", _raw_table(
        ["certificate", "as of", "run by", "records", "files", "keys destroyed", "own scan", "re-checked now", "page"],
        [[_esc(c["certificate"]), _esc(c["as_of"]), _esc(c["run_by"]), _esc(c["records"]), _esc(c["files"]),
          _esc(c["keys"]), _status_cell(c["verified"], "passed", "FAILED"),
          _status_cell(not c["problems"], "checks out", "; ".join(c["problems"])), _link(c["page"], "certificate")]
         for c in pack.certificates]) if pack.certificates else Page.text("Nothing has been destroyed yet."),
        anchor="destruction")
    toc = '<nav class="toc">' + "".join(_link(f"#{a}", t) for a, t in _SECTIONS) + \
        _link("../notice/index.html", "Public notice") + "</nav>"
    return page.render().replace("</head>", _EXTRA_CSS + "</head>", 1).replace("<main>", "<main>" + toc, 1)


def _short(value) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        value = ", ".join(map(str, value))
    text = "" if value is None else str(value)
    return text if len(text) <= 240 else text[:237] + "..."


def build_evidence_pack(settings: Settings, keystore=None) -> dict[str, Path]:
    """Write ``reports/evidence/index.html`` (and ``evidence.json``) and the public notice at
    ``reports/notice/index.html``; returns their paths."""
    from pipeline.ingest.staging import write_json_atomic, write_text_atomic
    from pipeline.report.notice import render_notice

    pack = collect_evidence(settings, keystore)
    evidence = render_evidence(pack)
    assert_no_identifiers(evidence, "evidence pack")
    notice = render_notice(settings)
    assert_no_identifiers(notice, "transparency notice")
    out = {"evidence": settings.reports_dir / "evidence" / "index.html",
           "evidence_json": settings.reports_dir / "evidence" / "evidence.json",
           "notice": settings.reports_dir / "notice" / "index.html"}
    write_json_atomic(out["evidence_json"], pack.as_dict())
    write_text_atomic(out["evidence"], evidence)
    write_text_atomic(out["notice"], notice)
    return out | {"pack": pack}
