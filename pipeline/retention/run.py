"""``retain run``: destroy what is due, verify, certify. Crash-safe and resumable.

Order, each step recorded in a journal (``retention/journal.json``: ids, paths and counts only)
before the next starts:

1. ``planned``: the due list is fixed (a re-run after a crash finishes *this* plan);
2. ``rebuilt``: the warehouse is rebuilt into a new generation under a new key without the due
   rows (``rebuild.py``); the destroyed pseudonyms are kept for the scan in a Parquet file
   encrypted under a key of the run's own;
3. ``switched``: the warehouse pointer names the new generation (one atomic rename: readers see
   the old warehouse or the new one, never one missing rows that were not due);
4. ``old-destroyed``: the old generation's key is destroyed and its file deleted;
5. ``marts``: the marts are rebuilt from the new warehouse and every superseded mart file is
   deleted with its key (the lineage sweep);
6. ``files``: due staged files (with their keys) and raw deliveries are deleted;
7. ``verified``: the scan (``verify.py``);
8. ``certified``: the signed certificate is written, then recorded in the audit log; the run's
   own key and pseudonym file are destroyed and the journal removed.

A crash before step 3 leaves the old state (the half-built generation is removed and rebuilt by
the re-run); after it, the new state, and the re-run completes the remaining steps.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pqe

from pipeline import __version__
from pipeline.errors import TransientError, UserError
from pipeline.failpoints import crash_point
from pipeline.fsutil import lock_or_fail
from pipeline.ingest.gate import sha256_file
from pipeline.ingest.staging import read_manifest, write_json_atomic
from pipeline.linkage.warehouse import Warehouse
from pipeline.retention.certificate import sign, write_certificate
from pipeline.retention.plan import Plan, make_plan
from pipeline.retention.policy import TableRule
from pipeline.retention.rebuild import rebuild_warehouse
from pipeline.retention.verify import file_key_name, scan

__all__ = ["RUN_STEPS", "RunResult", "journal_path", "run_retention"]

RUN_STEPS = ("plan", "rebuild warehouse", "switch", "destroy old generation", "rebuild marts", "destroy files",
             "verify", "certify")


def retention_dir(settings) -> Path:
    return settings.data_root / "retention"


def journal_path(settings) -> Path:
    return retention_dir(settings) / "journal.json"


class RunResult(dict):
    """The certificate (a dict), or ``{"nothing_due": True, ...}``."""


def _run_lock(settings):
    return lock_or_fail(retention_dir(settings) / ".retain.lock", TransientError("another retention run is in progress"))


def _save(settings, journal: dict, phase: str | None = None) -> None:
    if phase:
        journal["phases"].append(phase)
    write_json_atomic(journal_path(settings), journal)


def _items_for_journal(plan: Plan) -> dict:
    return {"due": [i.to_dict() for i in plan.due()], "reported": [i.to_dict() for i in plan.reported()],
            "rules": [{"feed": r.feed, "table": r.table, "column": r.column, "cutoff": r.cutoff.isoformat()}
                      for r in plan.rules]}


def _rules(journal: dict) -> list[TableRule]:
    return [TableRule(r["feed"], r["table"], r["column"], dt.date.fromisoformat(r["cutoff"]))
            for r in journal["rules"]]


def run_retention(settings, keystore, audit, as_of: dt.date, operator: str | None = None,
                  progress=lambda step: None) -> RunResult:
    """Destroy everything due on ``as_of`` under an approved policy; see the module docstring."""
    warehouse = Warehouse(settings.warehouse_dir, keystore)
    with _run_lock(settings), warehouse.writer():
        journal = read_manifest(journal_path(settings))
        if journal is None:
            plan = make_plan(settings, keystore, as_of)
            if not plan.due():
                progress("plan")
                audit.append("retention.nothing_due", {"as_of": as_of.isoformat(),
                                                       "reported": len(plan.reported())})
                return RunResult(nothing_due=True, as_of=as_of.isoformat(),
                                 reported=[i.to_dict() for i in plan.reported()], policies=_policies(plan))
            stamp = dt.datetime.now(dt.UTC)
            journal = {"certificate": f"DC-{stamp.strftime('%Y%m%dT%H%M%S')}", "as_of": as_of.isoformat(),
                       "started": stamp.isoformat(timespec="seconds"),
                       "operator": operator or settings.operator or _operator(), "phases": [], "keys_destroyed": [],
                       "files_removed": [], "policies": _policies(plan), **_items_for_journal(plan)}
            if plan.due("warehouse-rows"):
                journal["old_generation"] = plan.warehouse_generation
            _save(settings, journal, "planned")
            audit.append("retention.started", {"certificate": journal["certificate"], "as_of": journal["as_of"],
                                               "due": len(journal["due"]), "reported": len(journal["reported"])})
        elif journal["as_of"] != as_of.isoformat():
            raise UserError(f"an interrupted retention run for {journal['as_of']} must finish first: "
                                 f"run 'safehaven retain run --as-of {journal['as_of']}'")
        progress("plan")
        _warehouse_steps(settings, keystore, audit, warehouse, journal, progress)
        _file_steps(settings, keystore, journal, progress)
        return RunResult(_certify(settings, keystore, audit, journal, progress))


def _policies(plan: Plan) -> dict:
    return {name: {"approved": p.approved, "status": p.status, "policy": p.describe(), "approved_by": p.approver,
                   "approval_reference": p.approval_reference, "approval_date": p.approval_date,
                   "method": p.method, "reason": p.reason(), "notes": list(p.notes)}
            for name, p in plan.policies.items()}


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _pids_path(settings, journal: dict) -> Path:
    return retention_dir(settings) / f".{journal['certificate']}.pids.parquet"


def _pids_key(journal: dict) -> str:
    return f"retention-{journal['certificate']}"


def _warehouse_steps(settings, keystore, audit, warehouse: Warehouse, journal: dict, progress) -> None:
    phases = journal["phases"]
    if "old_generation" not in journal:
        for step in ("rebuild warehouse", "switch", "destroy old generation", "rebuild marts"):
            progress(step)
        return
    old = journal["old_generation"]
    if "rebuilt" in phases and "switched" not in phases and \
            sha256_file(warehouse.path_for(old)) != journal["old_file_sha256"]:
        phases.remove("rebuilt")  # the warehouse was written after the rebuild: rebuild again, lose nothing
        _save(settings, journal)
    if "rebuilt" not in phases:
        if "new_generation" in journal:  # a rebuild that crashed: its generation is abandoned
            stale = journal["new_generation"]
            warehouse.path_for(stale).unlink(missing_ok=True)
            warehouse.path_for(stale).with_name(warehouse.path_for(stale).name + ".wal").unlink(missing_ok=True)
            keystore.destroy_data_key(warehouse._key_name(stale), missing_ok=True)
            journal["keys_destroyed"].append(warehouse._key_name(stale))
        used = [int(n.rsplit("-g", 1)[1]) for n in keystore.data_key_names(f"{warehouse.name}-g", include_destroyed=True)
                if n.rsplit("-g", 1)[1].isdigit()]
        journal["new_generation"] = max(used, default=old) + 1
        journal["old_file_sha256"] = sha256_file(warehouse.path_for(old))
        _save(settings, journal)
        result = rebuild_warehouse(warehouse, old, journal["new_generation"], _rules(journal), progress=lambda s: None)
        _keep_pids(settings, keystore, journal, result.destroyed)
        journal["rebuild"] = {"rows_before": result.rows_before, "rows_after": result.rows_after,
                              "rows_destroyed": result.rows_destroyed, "people_before": result.people_before,
                              "people_after": result.people_after, "pseudonyms": _count_kind(result.destroyed, "pseudonym"),
                              "record_ids": _count_kind(result.destroyed, "record id")}
        _save(settings, journal, "rebuilt")
    progress("rebuild warehouse")
    if "switched" not in phases:
        new = journal["new_generation"]
        write_json_atomic(warehouse.pointer, {
            "generation": new, "file": warehouse.path_for(new).name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rebuilt_from": old, "retention": journal["certificate"]})
        _save(settings, journal, "switched")
        crash_point("retention.switched")
    progress("switch")
    if "old-destroyed" not in phases:
        name = warehouse._key_name(old)
        keystore.destroy_data_key(name, missing_ok=True)
        path = warehouse.path_for(old)
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)
        journal["keys_destroyed"].append(name)
        journal["files_removed"].append(str(path.relative_to(settings.data_root)))
        _save(settings, journal, "old-destroyed")
    progress("destroy old generation")
    if "marts" not in phases:
        from pipeline.marts import publish_marts
        from pipeline.marts.build import shred_superseded

        before = sorted(settings.marts_dir.glob("*/*.duckdb"))
        publish_marts(settings, keystore, warehouse, audit)  # prunes the oldest itself
        shred_superseded(settings, keystore)
        gone = [p for p in before if not p.exists()]
        journal["mart_files_destroyed"] = journal.get("mart_files_destroyed", 0) + len(gone)
        journal["keys_destroyed"] += [file_key_name(settings, p) for p in gone]
        journal["files_removed"] += [str(p.relative_to(settings.data_root)) for p in gone]
        _save(settings, journal, "marts")
    progress("rebuild marts")


def _count_kind(table: pa.Table, kind: str) -> int:
    return sum(1 for k in table.column("kind").to_pylist() if k == kind)


def _keep_pids(settings, keystore, journal: dict, pids: pa.Table) -> None:
    key = keystore.data_key(_pids_key(journal), create=True)
    path = _pids_path(settings, journal)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pids, tmp, encryption_properties=pqe.create_encryption_properties(key))
    os.replace(tmp, path)


def _read_pids(settings, keystore, journal: dict) -> dict[str, list[str]]:
    """The destroyed values by kind (``pseudonym``, ``record id``)."""
    path = _pids_path(settings, journal)
    if not path.exists():
        return {}
    key = keystore.data_key(_pids_key(journal))
    table = pq.read_table(path, decryption_properties=pqe.create_decryption_properties(key))
    out: dict[str, list[str]] = {}
    for value, kind in zip(table.column("v").to_pylist(), table.column("kind").to_pylist(), strict=True):
        out.setdefault(kind, []).append(value)
    return out


def _file_steps(settings, keystore, journal: dict, progress) -> None:
    if "files" not in journal["phases"]:
        for item in journal["due"]:
            if item["kind"] == "staged-file":
                parquet = settings.data_root / item["target"]
                manifest = parquet.with_name(parquet.name.removesuffix(".parquet") + ".manifest.json")
                manifest.unlink(missing_ok=True)  # first: a staged file without a manifest is never read
                parquet.unlink(missing_ok=True)
                if item["key"]:
                    keystore.destroy_data_key(item["key"], missing_ok=True)
                    journal["keys_destroyed"].append(item["key"])
                journal["files_removed"] += [item["target"], str(manifest.relative_to(settings.data_root))]
            elif item["kind"] == "raw-delivery":
                raw = settings.data_root / item["target"]
                raw.unlink(missing_ok=True)
                marker = settings.landing / "_ingested" / raw.parent.name / f"{raw.name}.json"
                if settings.quarantine in raw.parents:  # its reason file (no patient data) stays as the record
                    marker = raw.with_name(raw.name + ".reason.json")
                doc = read_manifest(marker)
                if doc is not None and "destroyed" not in doc:
                    write_json_atomic(marker, doc | {"destroyed": journal["certificate"]})
                journal["files_removed"].append(item["target"])
            elif item["kind"] == "case-finding-pack":
                signed = settings.data_root / item["target"]
                csv = signed.with_name(signed.name.removesuffix(".pack.json") + ".csv")
                for path in (csv, signed):
                    path.unlink(missing_ok=True)
                    journal["files_removed"].append(str(path.relative_to(settings.data_root)))
                with contextlib.suppress(OSError):
                    signed.parent.rmdir()  # the run's folder, once its last pack is gone
            elif item["kind"] == "output-package":
                folder = settings.data_root / item["target"]
                if folder.exists():
                    files = sorted(p for p in folder.rglob("*") if p.is_file())
                    for path in [folder, *folder.rglob("*")]:
                        path.chmod(0o750 if path.is_dir() else 0o640)  # published files are read-only
                    journal["files_removed"] += [str(p.relative_to(settings.data_root)) for p in files]
                    shutil.rmtree(folder)
        _save(settings, journal, "files")
    progress("destroy files")


def _grouped(journal: dict) -> list[dict]:
    """One line per feed and kind of data destroyed, with the policy and approver."""
    groups: dict[tuple[str, str], dict] = {}
    names = {"warehouse-rows": "warehouse records", "staged-file": "staged files", "raw-delivery": "raw deliveries",
             "case-finding-pack": "case-finding packs", "output-package": "published packages"}
    rows_destroyed = journal.get("rebuild", {}).get("rows_destroyed", {})
    for item in journal["due"]:
        policy = journal["policies"].get(item["feed"], {})
        g = groups.setdefault((item["feed"], item["kind"]), {
            "feed": item["feed"], "what": names[item["kind"]], "rows": 0, "files": 0, "period_from": None,
            "period_to": None, "policy": policy.get("policy", ""), "approved_by": policy.get("approved_by", ""),
            "approval_reference": policy.get("approval_reference", ""),
            "approval_date": policy.get("approval_date", ""),
            "method": "rebuild without the rows under a new key; old key destroyed" if item["kind"] == "warehouse-rows"
            else "file deleted; its key destroyed" if item["kind"] == "staged-file"
            else "file deleted from the landing zone" if item["kind"] == "raw-delivery"
            else "files deleted",
            "tables": [], "file_hashes": [], "keys": []})
        if item["kind"] == "warehouse-rows":
            g["rows"] += rows_destroyed.get(item["target"], item["rows"])
            g["tables"].append(item["target"])
        else:
            g["rows"] += item["rows"]
            g["files"] += item["files"]
            if item.get("sha256"):
                g["file_hashes"].append({"file": item["target"], "sha256": item["sha256"]})
            if item.get("key"):
                g["keys"].append(item["key"])
        for bound, pick in (("period_from", min), ("period_to", max)):
            if item.get(bound):
                g[bound] = pick(filter(None, [g[bound], item[bound]]))
    return list(groups.values())


def _certify(settings, keystore, audit, journal: dict, progress) -> dict:
    if "verified" not in journal["phases"]:
        pids = _read_pids(settings, keystore, journal)
        journal["verification"] = scan(settings, keystore, pids, _rules(journal), journal["keys_destroyed"],
                                       journal["files_removed"], own=_pids_path(settings, journal))
        _save(settings, journal, "verified")
    progress("verify")
    destroyed = _grouped(journal)
    cert = {
        "format": "safehaven-destruction-certificate/1", "certificate": journal["certificate"],
        "as_of": journal["as_of"], "started": journal["started"],
        "finished": journal.get("finished") or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "operator": journal["operator"], "code_version": __version__, "destroyed": destroyed,
        "totals": {"records": sum(d["rows"] for d in destroyed if d["what"] == "warehouse records"),
                   "staged_rows": sum(d["rows"] for d in destroyed if d["what"] == "staged files"),
                   "files": len(journal["files_removed"]),
                   "pseudonyms": journal.get("rebuild", {}).get("pseudonyms", 0),
                   "record_ids": journal.get("rebuild", {}).get("record_ids", 0)},
        "keys_destroyed": sorted(set(journal["keys_destroyed"])),
        "files_removed": journal["files_removed"],
        "reported": [{"feed": r["feed"], "what": f"{r['kind']} {r['target']}", "status": r["status"],
                      "reason": r["reason"], "rows": r["rows"], "files": r["files"]} for r in journal["reported"]],
        "verification": journal["verification"],
    }
    if "old_generation" in journal:
        rebuild = journal["rebuild"]
        cert["warehouse"] = {"old_generation": journal["old_generation"], "new_generation": journal["new_generation"],
                             "old_file_sha256": journal["old_file_sha256"], "rows_before": rebuild["rows_before"],
                             "rows_after": rebuild["rows_after"], "people_before": rebuild["people_before"],
                             "people_after": rebuild["people_after"],
                             "mart_files_destroyed": journal.get("mart_files_destroyed", 0)}
    cert["run_key"] = {"id": _pids_key(journal), "holds": "the destroyed pseudonyms and record ids, for the scan only",
                       "destroyed": "when this certificate is recorded"}
    if "finished" not in journal:
        journal["finished"] = cert["finished"]
        _save(settings, journal)  # a re-run signs the same bytes again
    cert = sign(cert, keystore)
    if "certified" not in journal["phases"]:
        _, digest = write_certificate(settings, cert)
        already = any(e.event == "retention.destroyed" and e.details.get("certificate") == cert["certificate"]
                      for e in audit.entries())
        if not already:
            audit.append("retention.destroyed", {
                "certificate": cert["certificate"], "sha256": digest, "as_of": cert["as_of"],
                "records": cert["totals"]["records"], "files": cert["totals"]["files"],
                "keys_destroyed": len(cert["keys_destroyed"]), "reported": len(cert["reported"]),
                "verification": "passed" if cert["verification"]["passed"] else "failed"})
        _save(settings, journal, "certified")
    keystore.destroy_data_key(_pids_key(journal), missing_ok=True)
    _pids_path(settings, journal).unlink(missing_ok=True)
    journal_path(settings).unlink(missing_ok=True)
    progress("certify")
    return json.loads(json.dumps(cert, default=str))
