"""Publishing an output package: the tables of an output contract, built from the person mart,
protected, audited, recorded, and written under ``outputs/published/<package>/`` in one step.

For each table of the contract (``pipeline.disclosure.outputs``), in order:

1. count distinct people (or total a measure per person) from the person mart, read through the
   analyst's locked, read-only connection; the pseudonyms stay in this process's memory;
2. apply the profile's primary rules; protect with secondary suppression. Count tables of the
   same population (the scored people, named by who they are: ``population_id``) are protected *jointly* with
   every release of it already in the release ledger (earlier tables of this package, an
   earlier run), so no table can be differenced against another;
3. audit: the attacker's LP (or verified moves) on everything published about the population.
   A failing audit stops the package: nothing is written, the refusal is in the audit log;
4. refuse a record-level table (a pseudonym or identifier column, cells that are people);
5. record the release in the ledger (idempotent: a re-run records nothing twice).

Then the package is written to a scratch folder beside its final place (a CSV per table, one
workbook, a page with charts, a disclosure record per table, and a manifest with the SHA-256 of
every file) and renamed into place: a reader sees the whole package or none of it. A package
already there for the same mart generation is verified and returned, not rebuilt, so a re-run
after a crash gives the result of one clean run.

``verify_package`` is what an output checker runs on a folder: every file listed with its
checksum, no file unlisted, every record's audit passed, and each count table's CSV re-audited
from what it shows alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline.audit import AuditLog
from pipeline.disclosure.audit import AuditResult, audit_release
from pipeline.disclosure.ledger import ReleaseLedger, apply_joint
from pipeline.disclosure.outputs import (
    DIMENSIONS,
    LABELS,
    NAMES,
    ORDERS,
    OutputContract,
    OutputTable,
    derived_dimension,
    load_output_contract,
)
from pipeline.disclosure.profiles import Profile, profile_from_parameters
from pipeline.disclosure.record import build_record, refuse_record_level, render_record
from pipeline.disclosure.release import (
    ABSENT,
    PRIMARY,
    SAFE,
    SECONDARY,
    Release,
    apply_magnitude_primary,
    apply_primary,
)
from pipeline.disclosure.secondary import engine_for, protect
from pipeline.disclosure.table import (
    TOTAL,
    Dimension,
    build_magnitude_table,
    build_table,
    count_people,
)
from pipeline.errors import DisclosureFailed, OutputTampered, UserError
from pipeline.failpoints import crash_point
from pipeline.fsutil import fsync_path, lock_or_fail
from pipeline.ingest.gate import sha256_file
from pipeline.ingest.staging import write_json_atomic
from pipeline.report import Page, stacked_bars

__all__ = ["PackageTable", "PublishResult", "ledger_dir", "population_id", "publish", "publish_steps",
           "published_dir", "verify_package"]

MANIFEST = "manifest.json"
MARKING = "OFFICIAL: aggregate output, disclosure controlled"
HIDDEN_WARNING = 0.5  # a table hiding more than this share of its non-zero cells carries a warning


@dataclass
class PackageTable:
    name: str
    kind: str  # "count" or "magnitude"
    csv: str
    cells: int
    hidden: int
    primary: int
    secondary: int
    audit_passed: bool
    audited_with: list[str]
    ledger_release: str
    record: str
    warning: str | None = None  # the table hides more than half its non-zero cells: what would hide less


@dataclass
class PublishResult:
    package: str
    folder: Path
    population: str
    profile: str
    reference_date: str
    tables: list[PackageTable] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    already_published: bool = False


def published_dir(settings) -> Path:
    return settings.outputs_dir / "published"


def ledger_dir(settings) -> Path:
    """The release ledger sits with the audit log: append-only governance evidence."""
    return settings.audit_log.parent / "disclosure"


def publish_steps(contract: OutputContract) -> tuple[str, ...]:
    return ("read-mart", *(t.name for t in contract.tables), "write-package")


def _package_lock(folder: Path):
    return lock_or_fail(folder / ".publish.lock",
                        UserError("another publish is running on this data root; try again when it ends"))


def _read_people(settings, keystore, contract: OutputContract) -> tuple[pl.DataFrame, str, list[str]]:
    """One row per scored person: the mart pseudonym (memory only), every dimension and measure
    the contract's tables use. Also the scoring date and the tiers in rank order."""
    from pipeline.marts.query import open_marts

    dims = sorted({d for t in contract.tables for d in t.dims})
    measures = sorted({t.measure for t in contract.tables if t.magnitude})
    select = ", ".join([*(f"{DIMENSIONS[d]} AS {d}" for d in dims), *(f"p.{m} AS {m}" for m in measures),
                        *(f"{NAMES[d][1]} AS {NAMES[d][0]}" for d in dims if d in NAMES)])
    con, _ = open_marts(settings, keystore, "analyst")
    try:
        people = con.execute(f"SELECT p.person_id, {select} FROM people p JOIN risk_scores r USING (person_id) "
                             "WHERE r.tier IS NOT NULL").pl()
        tiers = [r[0] for r in con.execute("SELECT tier FROM risk_scores WHERE tier IS NOT NULL GROUP BY tier "
                                           "ORDER BY min(tier_rank)").fetchall()]
        reference = con.execute("SELECT max(reference_date) FROM risk_scores").fetchone()[0]
    finally:
        con.close()
    if people.is_empty() or reference is None:
        raise UserError("the person mart has no risk tiers: run `safehaven stratify` before `safehaven publish`")
    return people, reference.isoformat(), tiers


def population_id(mart: str, people: pl.DataFrame) -> str:
    """The population a package counts, named by the people in it (the SHA-256 of their sorted
    mart pseudonyms), not by the mart build: a re-link or re-run that scores the same people makes
    the same population, so what it publishes is audited together with what was published before.
    The digest of a set of pseudonyms names the set and cannot be turned back into them."""
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(people["person_id"].to_list())).encode()).hexdigest()
    return f"{mart}:scored:{digest[:32]}"


def _dimension(name: str, people: pl.DataFrame, tiers: list[str]) -> Dimension:
    present = set(people[name].cast(pl.String).unique().to_list())
    if name == "risk_tier":
        values = [t for t in tiers if t in present]
    elif name in ORDERS:  # fixed categories are all shown (a zero is information too); "unknown" if any
        values = [v for v in ORDERS[name] if v in present or v != "unknown"]
        values += sorted(present - set(values))
    else:
        values = sorted(present)
    return Dimension.flat(name, values)


def _protect(table: OutputTable, people: pl.DataFrame, dims: list[Dimension], profile: Profile,
             ledger: ReleaseLedger, population: str, method: str, package: str,
             pending: list[tuple[str, Release]]) -> tuple[Release, AuditResult, list[str], str]:
    """Primary rules, secondary suppression and the audit. A count table is protected jointly
    with every recorded release of its population and with ``pending`` (this package's earlier
    count tables of it); returns the release, the audit, the names of those releases and the
    secondary-suppression engine used."""
    if table.magnitude:
        release = apply_magnitude_primary(build_magnitude_table(people, dims, table.measure), profile)
        engine = engine_for(release, method)
        release = protect(release, method=method)
        return release, audit_release(release), [], engine
    frame = people.select("person_id", *table.dims)
    release = apply_primary(build_table(count_people(frame, dims), dims), profile)
    ignore = f"{package}/"  # this package's tables from a run that stopped early are made again, not joined
    past = [e.name for e in ledger.entries(population) if not e.name.startswith(ignore)]
    if not past and not pending:
        engine = engine_for(release, method)
        release = protect(release, method=method)
        return release, audit_release(release), [], engine
    joint = ledger.joint(release, people, population, pending=pending, ignore=ignore)
    engine = engine_for(joint, method)
    joint = protect(joint, method=method)
    return apply_joint(joint, release), audit_release(joint), [*past, *(name for name, _ in pending)], engine


def _order(frame: pl.DataFrame, dims: list[Dimension]) -> pl.DataFrame:
    """Rows in each dimension's order, its Total last."""
    ranks = [pl.col(d.name).replace_strict({v: i for i, v in enumerate([*d.leaves, TOTAL])}, return_dtype=pl.Int64)
             .alias(f"_rank_{d.name}") for d in dims]
    return frame.with_columns(ranks).sort([f"_rank_{d.name}" for d in dims]).drop([f"_rank_{d.name}" for d in dims])


def _shown(table: OutputTable, release: Release, dims: list[Dimension], people: pl.DataFrame | None = None,
           ) -> pl.DataFrame:
    """The published table: dimensions (coded ones as labels, a name column beside a code), the
    measure as shown, derived columns from shown numbers. Rows that are zero in every column of
    the last dimension (with every other dimension fixed; a gender or age band no one in that
    ward has) are left out: a reader loses nothing, and the table is no longer mostly zeros."""
    cells = release.table.cells.select(table.dims)
    shown = release.shown()
    frame = cells.with_columns(pl.Series(table.column, shown, dtype=pl.String))
    numbers = pl.Series("_n", [None if h else int(v) for h, v in zip(release.hidden, release.published(),
                                                                        strict=True)], dtype=pl.Int64)
    frame = frame.with_columns(numbers)
    for column in table.derived:
        within = derived_dimension(column, table.dims)  # percent of the ward: of the ward's own Total row
        base = frame.filter(*(pl.col(d) == TOTAL for d in table.dims if d != within)) \
            .select(within, pl.col("_n").alias("_d"))
        frame = frame.join(base, on=within, how="left", maintain_order="left")
        percent = (pl.when(pl.col("_n").is_null()).then(pl.lit(release.profile.symbol))
                   .when(pl.col("_d").is_null() | (pl.col("_d") == 0)).then(pl.lit(""))
                   .otherwise((100 * pl.col("_n") / pl.col("_d")).round(1).cast(pl.String)))
        frame = frame.with_columns(percent.alias(column)).drop("_d")
    if len(table.dims) > 1:
        rest = list(table.dims[:-1])
        frame = frame.filter(~(pl.col("_n") == 0).fill_null(False).all().over(rest))
    frame = _order(frame.drop("_n"), dims)
    for d in table.dims:
        if d in NAMES:
            name = NAMES[d][0]
            names = ({} if people is None or name not in people.columns
                     else dict(people.select(d, name).unique(d).iter_rows())) | {TOTAL: TOTAL}
            frame = frame.with_columns(pl.col(d).replace_strict(names, default="", return_dtype=pl.String).alias(name))
        if d in LABELS:
            frame = frame.with_columns(pl.col(d).replace(LABELS[d]))
    return frame.select(table.published_columns)


def _hidden_nonzero(release: Release) -> float:
    """The share of the table's non-zero cells that are hidden."""
    values = release.values()
    nonzero = (values > 0) & (release.status != ABSENT)
    return float((release.hidden & nonzero).sum() / max(nonzero.sum(), 1))


def _coarser(table: OutputTable, people: pl.DataFrame, dims: list[Dimension], profile: Profile,
             ) -> tuple[str, float] | None:
    """The table without the one dimension whose removal hides the smallest share of non-zero
    cells (protected on its own by the cube engine, quick at any size: the joint engine would
    hide no more): that dimension and the share; None for a one-dimension table."""
    best = None
    for i, dropped in enumerate(table.dims):
        if len(table.dims) < 2:
            break
        keep = [d for j, d in enumerate(dims) if j != i]
        names = [d.name for d in keep]
        if table.magnitude:
            release = apply_magnitude_primary(build_magnitude_table(people, keep, table.measure), profile)
        else:
            release = apply_primary(build_table(count_people(people.select("person_id", *names), keep), keep), profile)
        share = _hidden_nonzero(protect(release, method="cube"))
        if best is None or share < best[1]:
            best = (dropped, share)
    return best


def _warning(table: OutputTable, release: Release, people: pl.DataFrame, dims: list[Dimension],
             profile: Profile) -> str | None:
    """A warning when the table hides more than half its non-zero cells, naming the coarser
    table that would hide less."""
    share = _hidden_nonzero(release)
    if share <= HIDDEN_WARNING:
        return None
    text = (f"{table.name} hides {share:.0%} of its non-zero cells: too fine a breakdown for the number of people "
            "in it")
    coarser = _coarser(table, people, dims, profile)
    if coarser is not None and coarser[1] < share:
        text += f"; without {coarser[0]} it would hide about {coarser[1]:.0%}"
    return text


def _write_workbook(path: Path, built: list, meta: dict) -> None:
    import xlsxwriter

    created = dt.datetime.fromisoformat(meta["reference_date"])
    workbook = xlsxwriter.Workbook(path, {"strings_to_numbers": False})
    workbook.set_properties({"title": meta["package"], "created": created, "author": "safehaven-pipeline",
                             "comments": MARKING})
    bold = workbook.add_format({"bold": True})
    about = workbook.add_worksheet("About")
    lines = [("Package", meta["package"]), ("Contract", f"{meta['contract']['name']} {meta['contract']['version']}"),
             ("Scoring date", meta["reference_date"]), ("Disclosure profile", meta["profile"]["name"]),
             ("Profile", meta["profile"]["description"]),
             ("Symbol", (f"{meta['profile']['symbol']} = hidden (too small to publish, or hidden so that a "
                         "small number cannot be worked out from the totals)")),
             ("Total", "a value of Total is the margin over that column"),
             ("Percentages", "given only where both the count and the total it is a share of are shown"),
             ("Rows left out", "rows that are zero in every column (no one in that group) are not listed"),
             ("Marking", MARKING)]
    for row, (key, value) in enumerate(lines):
        about.write(row, 0, key, bold)
        about.write(row, 1, value)
    about.set_column(0, 0, 20)
    about.set_column(1, 1, 100)
    for table, _, _, shown, _ in built:
        sheet = workbook.add_worksheet(table.name[:31])
        sheet.write_row(0, 0, shown.columns, bold)
        numeric = [c in (table.column, *table.derived) for c in shown.columns]
        for r, row in enumerate(shown.iter_rows(), start=1):
            for c, value in enumerate(row):
                if numeric[c] and value not in (None, "") and value.lstrip("-").replace(".", "", 1).isdigit():
                    sheet.write_number(r, c, float(value) if "." in value else int(value))
                else:
                    sheet.write_string(r, c, value or "")
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, shown.height, len(shown.columns) - 1)
        sheet.set_column(0, len(shown.columns) - 1, 16)
    workbook.close()


def _view(table: OutputTable, shown: pl.DataFrame) -> tuple[dict[str, dict[str, float]], list[str], str, str]:
    """The first dimension by the last, every other at Total: the chart's and summary's view."""
    first, last = table.dims[0], table.dims[-1]
    view = shown
    for d in table.dims[1:-1]:
        view = view.filter(pl.col(d) == TOTAL)
    if first == last:
        return {}, [], first, last
    rows: dict[str, dict[str, float]] = {}
    series = [v for v in dict.fromkeys(view[last].to_list()) if v != TOTAL]
    label = NAMES[first][0] if first in NAMES else first  # a ward by its name
    for a, b, value in view.select(label, last, table.column).iter_rows():
        if a != TOTAL and b != TOTAL:
            rows.setdefault(a, {})[b] = value
    return rows, series, first, last


def _page(meta: dict, built: list) -> str:
    page = Page(f"{meta['contract']['name'].capitalize()} outputs", f"Package {meta['package']}: people scored on "
                f"{meta['reference_date']}; profile {meta['profile']['name']}", MARKING)
    page.section("This package", Page.cards([
        ("tables", len(built)), ("people", meta["people"]), ("scoring date", meta["reference_date"]),
        ("audit", "passed" if all(r.passed for _, _, r, _, _ in built) else "FAILED")]),
        Page.text(f"{meta['profile']['symbol']} marks a hidden cell: a small number, or a cell hidden so that a small "
                  "number cannot be worked out from the totals. Every hidden cell was attacked with everything "
                  "published about these people: a hidden count of people could not be narrowed to fewer than "
                  f"{meta['profile']['parameters']['protection_width']} people, and a hidden total of a magnitude "
                  "table (admissions, costs) could not be narrowed within its own protection level, set per cell by "
                  "the dominance and p% rules (each table's record states its rules and the narrowest interval). "
                  "Full tables: the CSV files and the workbook beside this page; disclosure records under "
                  "records/."), anchor="package")
    symbol = meta["profile"]["symbol"]
    warnings = [extra["warning"] for *_, extra in built if extra.get("warning")]
    if warnings:
        page.section("Tables that hide too much", Page.text(
            "These tables hide more than half of their non-zero cells, so most of what they could say is "
            "hidden. A coarser table (one breakdown fewer) would show more; change the output contract to "
            "publish it."), *(Page.text(f"{w}.", "bad") for w in warnings), anchor="warnings")
    for table, release, result, shown, extra in built:
        rows, series, first, last = _view(table, shown)
        parts = [Page.text(table.description)]
        if extra.get("warning"):
            parts.append(Page.text(f"Warning: {extra['warning']}.", "bad"))
        numeric = {a: {b: float(v) for b, v in r.items() if v != symbol} for a, r in rows.items()}
        if rows and series:
            parts.append(Page.figure(stacked_bars(numeric, series, title=f"{table.column} by {first} and {last}",
                                                  percent=False), f"Published numbers only: hidden cells ({symbol}) "
                                     "are left out of the bars, so a bar can be shorter than its total."))
            parts.append(Page.table([first, *series], [[a, *(r.get(s, "") for s in series)] for a, r in rows.items()],
                                    caption=f"{table.column}: {first} by {last}"
                                    + (f", other columns at {TOTAL}" if len(table.dims) > 2 else "")))
        status = {s: int((release.status == s).sum()) for s in (SAFE, PRIMARY, SECONDARY)}
        parts.append(Page.text(f"{table.name}.csv: {shown.height:,} rows; {status[PRIMARY]:,} cells hidden by a "
                               f"primary rule, {status[SECONDARY]:,} more to protect them; audit "
                               f"{'passed' if result.passed else 'FAILED'} (record: records/{table.name}.html)."))
        page.section(table.name.replace("_", " ").capitalize(), *parts, anchor=table.name)
    return page.render()


def _write_package(folder: Path, built: list, meta: dict) -> list[str]:
    """Every file of the package into ``folder`` (a scratch folder), the manifest last."""
    (folder / "records").mkdir(parents=True)
    for table, _, _, shown, _ in built:
        shown.write_csv(folder / f"{table.name}.csv")
    _write_workbook(folder / f"{meta['package']}.xlsx", built, meta)
    (folder / "index.html").write_text(_page(meta, built), encoding="utf-8")
    for table, release, result, _, extra in built:
        files = [folder / f"{table.name}.csv", folder / f"{meta['package']}.xlsx"]
        doc = build_record(table.name, release, result, files, method=extra["method"],
                           population=meta["population"], ledger_release=extra["ledger_release"])
        doc |= {"package": meta["package"], "contract": meta["contract"], "audited_with": extra["audited_with"],
                "kind": "magnitude" if table.magnitude else "count", "dims": list(table.dims),
                "column": table.column, "created": meta["published_at"]}
        write_json_atomic(folder / "records" / f"{table.name}.json", doc)
        (folder / "records" / f"{table.name}.html").write_text(render_record(doc), encoding="utf-8")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    meta["files"] = [{"name": f, "bytes": (folder / f).stat().st_size, "sha256": sha256_file(folder / f)} for f in files]
    write_json_atomic(folder / MANIFEST, meta)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o444)  # a published file is never changed in place
    return files


def publish(settings, keystore, audit: AuditLog, *, contract: str = "commissioning", method: str = "auto",
            progress: Callable[[str], None] | None = None) -> PublishResult:
    """Build, protect, audit and publish the output package of ``contract``; see the module doc."""
    from pipeline.marts.build import current_mart

    step = progress or (lambda _: None)
    spec = load_output_contract(settings.contracts_dir, contract)
    pointer = current_mart(settings.marts_dir, spec.source_mart)
    if pointer is None:
        raise UserError(f"no {spec.source_mart} mart yet: run `safehaven link` and `safehaven stratify` first")
    generation = Path(pointer["file"]).stem
    root = published_dir(settings)
    with _package_lock(root):
        for stale in root.glob(".pending-*"):  # left by a run killed while writing (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        people, reference, tiers = _read_people(settings, keystore, spec)
        population = population_id(spec.source_mart, people)
        package = f"{spec.name}-{reference}-{generation.removeprefix(f'{spec.source_mart}-')}"
        result = PublishResult(package, root / package, population, spec.profile.name, reference)
        if result.folder.exists():
            problems = verify_package(result.folder)
            if problems:
                raise OutputTampered(f"published package {package} does not match its manifest: {problems[0]}")
            return _already(result, audit)
        step("read-mart")
        ledger = ReleaseLedger(ledger_dir(settings))
        built, pending = [], {}
        for table in spec.tables:
            dims = [_dimension(d, people, tiers) for d in table.dims]
            table_population = f"{population}#{table.measure}" if table.magnitude else population
            release, audited, joint, engine = _protect(table, people, dims, spec.profile, ledger, table_population,
                                                       method, package, pending.get(table_population, []))
            if not audited.passed:
                cells = "; ".join(", ".join(f"{k}={v}" for k, v in c.key.items()) for c in audited.failures[:5])
                audit.append("disclosure.refused", {"package": package, "table": table.name,
                                                    "failures": len(audited.failures)})
                raise DisclosureFailed(f"{table.name}: {len(audited.failures)} hidden cell(s) can be narrowed below "
                                       f"{spec.profile.protection_width} (e.g. {cells}); nothing was published")
            shown = _shown(table, release, dims, people)
            refuse_record_level(shown, table.name, count=table.column)
            pending.setdefault(table_population, []).append((f"{package}/{table.name}", release))
            built.append((table, release, audited, shown, {
                "method": engine, "audited_with": joint, "population": table_population,
                "warning": _warning(table, release, people, dims, spec.profile)}))
            step(table.name)
            crash_point("publish.table-protected")
        meta = {"package": package, "contract": {"name": spec.name, "version": spec.version},
                "profile": {"name": spec.profile.name, "version": spec.profile.version,
                            "description": spec.profile.description, "symbol": spec.profile.symbol,
                            "parameters": spec.profile.parameters()},
                "population": population, "people": people.height, "reference_date": reference,
                "mart": pointer["file"], "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        # The ledger first (idempotent), then the package in one rename: a crash in between leaves
        # releases recorded that did not leave, which only makes later releases more careful, and
        # a re-run makes the same tables again (it leaves this package's entries out of its joints).
        for table, release, _, _, extra in built:
            extra["ledger_release"] = ledger.record(release, name=f"{package}/{table.name}",
                                                    population=extra["population"]).release_id
        meta["tables"] = [_summary(table, release, audited, extra) for table, release, audited, _, extra in built]
        scratch = root / f".pending-{package}-{uuid.uuid4().hex[:8]}"
        try:
            result.files = _write_package(scratch, built, meta)
            os.replace(scratch, result.folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        fsync_path(root)
        result.tables = [PackageTable(**t) for t in meta["tables"]]
        audit.append("disclosure.published", {
            "package": package, "contract": f"{spec.name} {spec.version}", "profile": spec.profile.name,
            "population": population, "tables": {t.name: {"cells": t.cells, "hidden": t.hidden,
                                                          "ledger_release": t.ledger_release} for t in result.tables},
            "manifest_sha256": sha256_file(result.folder / MANIFEST)})
        step("write-package")
        return result


def _summary(table: OutputTable, release: Release, audited: AuditResult, extra: dict) -> dict:
    return {"name": table.name, "kind": "magnitude" if table.magnitude else "count", "csv": f"{table.name}.csv",
            "cells": release.table.cells.height, "hidden": int(release.hidden.sum()),
            "primary": int((release.status == PRIMARY).sum()), "secondary": int((release.status == SECONDARY).sum()),
            "audit_passed": audited.passed, "audited_with": extra["audited_with"],
            "ledger_release": extra["ledger_release"], "record": f"records/{table.name}.json",
            "warning": extra["warning"]}


def _already(result: PublishResult, audit: AuditLog) -> PublishResult:
    """The package is there and verifies: return it (audited once, even if the run that wrote it
    stopped before its audit entry)."""
    meta = json.loads((result.folder / MANIFEST).read_text())
    if not any(e.event == "disclosure.published" and e.details.get("package") == result.package
               for e in audit.entries()):
        audit.append("disclosure.published", {"package": result.package, "population": result.population,
                                              "manifest_sha256": sha256_file(result.folder / MANIFEST),
                                              "completed_by_rerun": True})
    result.tables = [PackageTable(**t) for t in meta["tables"]]
    result.files = [f["name"] for f in meta["files"]]
    result.already_published = True
    return result


def verify_package(folder: Path) -> list[str]:
    """Problems with a published package (none: it may leave): the manifest lists every file
    with its checksum and nothing else is there; every table's record shows a passing audit;
    each count table's CSV, attacked from what it shows alone, still protects every hidden cell."""
    from pipeline.disclosure.check import check_table

    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.exists():
        return [f"{folder.name}: no {MANIFEST}"]
    meta = json.loads(manifest.read_text())
    problems = []
    listed = {f["name"]: f for f in meta.get("files", [])}
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    problems += [f"{name}: not in the manifest" for name in sorted(present - set(listed))]
    problems += [f"{name}: listed but missing" for name in sorted(set(listed) - present)]
    problems += [f"{name}: checksum differs from the manifest" for name in sorted(present & set(listed))
                 if sha256_file(folder / name) != listed[name]["sha256"]]
    if problems:
        return problems
    profile = profile_from_parameters(meta["profile"]["parameters"])
    for table in meta["tables"]:
        record = json.loads((folder / table["record"]).read_text())
        if not record["audit"]["passed"]:
            problems.append(f"{table['name']}: its record shows a failed audit")
        if table["kind"] == "count":
            checked = check_table(folder / table["csv"], record["dims"], record["column"], profile)
            if not checked.passed:
                problems.append(f"{table['name']}: re-audited from the CSV alone, "
                                f"{len(checked.audit.failures)} hidden cell(s) narrow too far, "
                                f"{len(checked.rule_breaches)} shown cell(s) break a rule")
    return problems

