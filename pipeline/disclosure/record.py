"""The disclosure record of an output: what an output checker (or an IG lead, later) needs to
see that a table may leave, in JSON for machines and a self-contained HTML page for people.

It holds the rule profile with its version and parameters, the suppression method, the counts
by status, the information loss (cells and people hidden, margins hidden), the audit's result
with the narrowest intervals an attacker can reach, and the SHA-256 of every file written.

``refuse_record_level`` stops an output that is not an aggregate at all: a column that names or
holds a pseudonym or an identifier, or a table so fine that its cells are people.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import polars as pl

from pipeline.disclosure.audit import AuditResult
from pipeline.disclosure.release import ABSENT, PRIMARY, SAFE, SECONDARY, Release
from pipeline.errors import DisclosureFailed
from pipeline.logs import contains_identifier
from pipeline.report import Page, stacked_bars, write_report

__all__ = ["build_record", "information_loss", "refuse_record_level", "render_record", "write_record"]

RECORD_LEVEL_NAMES = re.compile(r"pseudonym|person_id|patient_id|nhs_?number|date_of_birth|^dob$|^postcode$|address|"
                                r"forename|surname|family_name|given_name", re.IGNORECASE)
PSEUDONYM_SHAPE = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{64}|P\d+-(?:[0-9A-Z]{4}-){4}[0-9A-Z*~$=U])$")
STATUS_COLOURS = {SAFE: "#007f3b", PRIMARY: "#d5281b", SECONDARY: "#ffb81c"}


def refuse_record_level(frame: pl.DataFrame, name: str, *, count: str | None = None) -> None:
    """Raise ``DisclosureFailed`` naming the column if ``frame`` is record-level rather than an
    aggregate: a column named like an identifier or pseudonym, a value shaped like one, or
    (given the count column) non-empty cells that are mostly single people."""
    for column in frame.columns:
        if RECORD_LEVEL_NAMES.search(column):
            raise DisclosureFailed(f"{name}: column '{column}' is record-level (a pseudonym or identifier); "
                                   "aggregate outputs may not carry one")
        if frame[column].dtype == pl.String:
            values = frame[column].drop_nulls().unique().head(1000).to_list()
            if any(PSEUDONYM_SHAPE.match(v) or contains_identifier(v) for v in values):
                raise DisclosureFailed(f"{name}: column '{column}' holds values shaped like pseudonyms or "
                                       "identifiers; aggregate outputs may not carry them")
    if count is not None and frame.height >= 20:
        counts = frame[count].cast(pl.Int64, strict=False).drop_nulls()
        counts = counts.filter(counts != 0)  # an empty cell is no one, not a person
        if counts.len() >= 10 and (counts == 1).mean() > 0.5:
            raise DisclosureFailed(f"{name}: most non-empty cells of '{count}' hold one person: the table is "
                                   "record-level; use coarser categories")


def information_loss(release: Release) -> dict:
    """How much the protection hides, in cells and in people."""
    values = release.values()
    inner = release.table.cells["inner"].to_numpy()
    present = release.status != ABSENT
    hidden = release.hidden & present
    people = int(values[inner & present].sum())
    secondary = release.status == SECONDARY
    return {"cells": int(present.sum()), "hidden_cells": int(hidden.sum()),
            "hidden_share": round(float(hidden.sum() / max(present.sum(), 1)), 4),
            "people": people, "people_in_hidden_inner_cells": int(values[inner & hidden].sum()),
            "hidden_people_share": round(float(values[inner & hidden].sum() / max(people, 1)), 4),
            "margins_hidden": int((hidden & ~inner).sum()),
            "secondary_cells": int(secondary.sum()), "people_in_secondary_cells": int(values[secondary & inner].sum()),
            "primary_only_hidden_share": round(float((release.status == PRIMARY).sum() / max(present.sum(), 1)), 4)}


def build_record(name: str, release: Release, audit: AuditResult, files: list[Path], *, method: str,
                 population: str, ledger_release: str | None = None) -> dict:
    """The record of one output package."""
    statuses = {s: int((release.status == s).sum()) for s in (SAFE, PRIMARY, SECONDARY)}
    narrowest = sorted(audit.certificates, key=lambda c: (c.hi - c.lo, c.cell))[:10]
    profile = release.profile
    return {
        "name": name, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "population": population, "ledger_release": ledger_release,
        "profile": {"name": profile.name, "version": profile.version, "description": profile.description,
                    "parameters": profile.parameters()},
        "method": method, "dimensions": release.table.dim_names, "counts_by_status": statuses,
        "information_loss": information_loss(release),
        "audit": {"passed": audit.passed, "hidden_cells_checked": len(audit.certificates), "by_method": audit.by_method(),
                  "failures": [_certificate(c) for c in audit.failures[:50]],
                  "narrowest": [_certificate(c) for c in narrowest]},
        "files": [{"name": Path(f).name, "bytes": Path(f).stat().st_size,
                   "sha256": hashlib.sha256(Path(f).read_bytes()).hexdigest()} for f in files],
    }


def _certificate(c) -> dict:
    return {"cell": c.key, "status": c.status, "reasons": list(c.reasons), "interval": [c.lo, c.hi],
            "required_width": c.required_width, "method": c.method, "passed": c.passed}


def render_record(doc: dict) -> str:
    audit, loss = doc["audit"], doc["information_loss"]
    page = Page(f"Disclosure record: {doc['name']}", f"{doc['profile']['name']} profile, version "
                f"{doc['profile']['version']}; {doc['created']}", "OFFICIAL-SENSITIVE: disclosure control record")
    verdict = "passed" if audit["passed"] else "FAILED"
    page.section("Result", Page.cards([
        ("audit", verdict), ("hidden cells checked", audit["hidden_cells_checked"]),
        ("cells", loss["cells"]), ("hidden", loss["hidden_cells"]),
        ("people in hidden cells", f"{100 * loss['hidden_people_share']:.1f}%")]),
        Page.text(f"Every hidden cell was attacked with everything this output (and any earlier output of "
                  f"population {doc['population']}) shows; {verdict}."), anchor="result")
    page.section("Cells by status", Page.figure(stacked_bars(
        {"cells": doc["counts_by_status"]}, [SAFE, PRIMARY, SECONDARY], title="Cells by status", percent=True,
        colours=STATUS_COLOURS), "Share of cells published, hidden by a primary rule, and hidden to protect them"),
        Page.table(["status", "cells"], doc["counts_by_status"].items()), anchor="status")
    page.section("Information loss", Page.table(["measure", "value"], loss.items()), anchor="loss")
    page.section("Narrowest intervals an attacker can reach", Page.table(
        ["cell", "status", "interval", "required width", "method"],
        [(", ".join(f"{k}={v}" for k, v in c["cell"].items()), c["status"],
          f"{c['interval'][0]:g} to {c['interval'][1]:g}", c["required_width"], c["method"])
         for c in audit["narrowest"]]),
        Page.text("lp: the exact interval; moves: an interval the attacker cannot narrow, proved by a "
                  "verified move"), anchor="narrowest")
    if audit["failures"]:
        page.section("Failures", Page.table(["cell", "interval", "required width", "reasons"],
                                            [(str(c["cell"]), str(c["interval"]), c["required_width"],
                                              "; ".join(c["reasons"])) for c in audit["failures"]], ),
                     anchor="failures")
    page.section("Rule profile", Page.table(["parameter", "value"], doc["profile"]["parameters"].items()),
                 Page.text(doc["profile"]["description"]), anchor="profile")
    page.section("Files", Page.table(["file", "bytes", "SHA-256"], [(f["name"], f["bytes"], f["sha256"])
                                                                   for f in doc["files"]]), anchor="files")
    return page.render()


def write_record(folder: Path, doc: dict) -> dict[str, Path]:
    return write_report(folder, doc, render_record(doc))

