"""The ``safehaven`` command line.

Every command takes ``--data-root`` (else ``SAFEHAVEN_DATA_ROOT``, else ``./data``). Settings
are read once here and passed down. User errors print a clear message without a traceback
and exit with the error's code; anything unexpected prints a redacted traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.errors import (
    AuditTampered,
    DeliveryQuarantined,
    DestructionUnverified,
    SafehavenError,
    UserError,
    exit_code_for,
)
from pipeline.logs import install_redaction, redact
from pipeline.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Safe-haven pipeline for risk stratification.")
contracts_app = typer.Typer(no_args_is_help=True, help="Data contracts.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
app.add_typer(contracts_app, name="contracts")
app.add_typer(audit_app, name="audit")
keys_app = typer.Typer(no_args_is_help=True, help="The keystore: master secrets and domain keys.")
app.add_typer(keys_app, name="keys")
disclosure_app = typer.Typer(no_args_is_help=True, help="Disclosure control: check tables before they leave.")
app.add_typer(disclosure_app, name="disclosure")
packs_app = typer.Typer(no_args_is_help=True, help="Case-finding packs: verify them, get the signing public key.")
app.add_typer(packs_app, name="packs")
retain_app = typer.Typer(no_args_is_help=True, help="Retention: what is due, destroy it under approved policies, "
                         "prove it.")
app.add_typer(retain_app, name="retain")

_WIDTH = None if sys.stdout.isatty() else 120  # logs and CI get readable tables too
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)

DataRoot = Annotated[
    Path | None, typer.Option("--data-root", help="Root of the data zones (env SAFEHAVEN_DATA_ROOT; default ./data).")
]
ContractsDir = Annotated[
    Path | None, typer.Option("--contracts-dir", help="Folder of contracts (env SAFEHAVEN_CONTRACTS_DIR).")
]
AsOf = Annotated[
    dt.datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="Act as if today were this date (env SAFEHAVEN_AS_OF; "
                 "default today): recorded in the audit log and every manifest, receipt and record it affects."),
]


def _settings(data_root=None, contracts_dir=None, as_of=None, **extra) -> Settings:
    """Settings for this command, and its logging: the console for people (warnings, one line
    each, no tracebacks), everything else in the run log under ``<data root>/logs``."""
    from pipeline.runlog import ConsoleFilter, ConsoleFormatter, start_run_log

    settings = load_settings(
        data_root=data_root, contracts_dir=contracts_dir, as_of=as_of.date() if as_of else None, **extra
    )
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    if not any(getattr(h, "_safehaven_console", False) for h in root.handlers):
        console_handler = logging.StreamHandler()
        console_handler.setLevel(logging.WARNING)  # records propagate past logger levels, so gate here
        console_handler.setFormatter(ConsoleFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        console_handler.addFilter(ConsoleFilter())
        console_handler._safehaven_console = True
        root.addHandler(console_handler)
    ours = logging.getLogger("pipeline")
    ours.setLevel(settings.log_level)  # our INFO reaches the run log; the console shows warnings
    for noisy in ("httpx", "prefect.server", "uvicorn", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    start_run_log(settings.data_root, _COMMAND["name"])
    return settings


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


# contracts ------------------------------------------------------------------------------
@contracts_app.command("check")
def contracts_check(data_root: DataRoot = None, contracts_dir: ContractsDir = None, as_of: AsOf = None) -> None:
    """Check every contract (ODCS v3.2.0 + the nhs-ig extension); list every problem."""
    from pipeline.contracts import check_contracts

    settings = _settings(data_root, contracts_dir, as_of)
    results = check_contracts(settings.contracts_dir, settings.today())
    audit = settings.audit()
    table = Table(title=f"Contracts in {settings.contracts_dir} (as of {settings.today()})")
    for col in ("feed", "version", "tables", "common-law basis", "reference", "expires", "status"):
        table.add_column(col)
    bad = 0
    for r in results:
        c = r.contract
        law = c.ig.legalBasis.commonLaw if c else None
        expires = "-"
        if law and law.expires:
            days = (law.expires - settings.today()).days
            expires = f"{law.expires.isoformat()} ({days} days)" if days >= 0 else law.expires.isoformat()
            if 0 <= days <= 90:
                err_console.print(f"[yellow]! {r.path.name}: the legal basis expires in {days} days; renew it[/]")
        status = "[green]ok[/]" if r.ok else ("[red]EXPIRED[/]" if r.expired else f"[red]{len(r.problems)} problem(s)[/]")
        table.add_row(
            r.path.name.removesuffix(".odcs.yaml"), c.version if c else "-", str(len(c.tables)) if c else "-",
            str(law.basis) if law else "-", (law.reference or "-") if law else "-", expires, status,
        )
        bad += not r.ok
        audit.append("contract.checked", {"file": r.path.name, "ok": r.ok, "expired": r.expired,
                                          "problems": [f"{p.field}: {p.message}" for p in r.problems][:50]})
    console.print(table)
    for r in results:
        for p in r.problems:
            err_console.print(f"[red]✗[/] {escape(str(p))}")
    if bad:
        raise UserError(f"{bad} of {len(results)} contract(s) have problems; fix them before any flow runs")
    console.print(f"[green]All {len(results)} contracts pass.[/]")


@contracts_app.command("draft")
def contracts_draft(
    samples: Annotated[list[Path], typer.Argument(help="Sample extracts (CSV): one or more per table of the feed.",
                                                  exists=True, dir_okay=False)],
    feed: Annotated[str, typer.Option("--feed", help="The feed's name (the contract's file name).")],
    table: Annotated[list[str] | None, typer.Option("--table", help="Each sample's table name, in order "
                                                    "(default: from the file name).")] = None,
    kind: Annotated[str, typer.Option("--kind", help="activity, opt-out-list or reference.")] = "activity",
    ig_from: Annotated[str | None, typer.Option("--ig-from", help="A feed (or contract file) whose legal basis, "
                                                "controllers, purposes and retention apply to this one.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write (default: the contracts folder).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    data_root: DataRoot = None, contracts_dir: ContractsDir = None, as_of: AsOf = None,
) -> None:
    """Draft a contract from sample extracts: types, formats, delimiter, encoding, a role and firewall
    action for every column (never showing a value). Written as a draft: no flow uses it until an IG
    lead approves it."""
    import hashlib

    from pipeline.contracts import check_contract
    from pipeline.contracts._ig import FeedKind
    from pipeline.contracts.check import contract_path
    from pipeline.contracts.draft import draft_contract, table_name, write_draft

    settings = _settings(data_root, contracts_dir, as_of)
    try:
        feed_kind = FeedKind(kind)
    except ValueError:
        raise UserError(f"--kind must be one of {[k.value for k in FeedKind]}") from None
    tables = list(table or [])
    if tables and len(tables) != len(samples):
        raise UserError(f"give one --table per sample ({len(samples)} samples, {len(tables)} --table)")
    template = None
    if ig_from:
        template = Path(ig_from) if ig_from.endswith(".yaml") else contract_path(settings.contracts_dir, ig_from)
        if not template.exists():
            raise UserError(f"--ig-from: no contract at {template}")
    target = out or contract_path(settings.contracts_dir, feed)
    by_table: dict[str, list[Path]] = {}  # several samples of one table are read together
    for i, sample in enumerate(samples):
        by_table.setdefault(tables[i] if tables else table_name(sample.name, feed), []).append(sample)
    drafts = []
    with _progress() as progress:
        task = progress.add_task("reading samples", total=len(by_table))
        for name, files in by_table.items():
            try:
                drafts.append(draft_contract(files, feed, name, feed_kind))
            except ValueError as exc:
                raise UserError(str(exc)) from None
            progress.advance(task)
    try:
        path = write_draft(drafts, target, feed_kind, template, force)
    except FileExistsError as exc:
        raise UserError(str(exc)) from None
    for d in drafts:
        shown = Table(title=f"{d.table}: {d.rows:,} rows, {d.encoding}, delimiter {d.delimiter!r}")
        for col in ("column", "proposed name", "type", "role", "firewall", "filled"):
            shown.add_column(col, no_wrap=True)
        shown.add_column("why", ratio=1)
        for c in d.columns:
            shown.add_row(str(c.position + 1) if not _printable_header(c.header) else c.header,
                          "(ignored)" if c.ignore else c.name, c.logical_type, c.role.value, c.action.value,
                          f"{c.filled:.0%}", c.why)
        console.print(shown)
    settings.audit().append("contract.drafted", {
        "feed": feed, "file": path.name, "kind": feed_kind.value,
        "samples": [{"file": d.sample, "sha256": d.sample_sha256, "rows": d.rows, "table": d.table} for d in drafts],
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    problems = check_contract(path, settings.today()).problems
    console.print(f"Wrote the draft {path}. It is refused until approved ({len(problems)} item(s) for the IG lead):")
    for p in problems:
        console.print(f"  - {escape(p.field)}: {escape(p.message)}")


def _printable_header(header: str) -> bool:
    from pipeline.ingest.gate import _printable_column

    return _printable_column(header, 0) == header


# synth ----------------------------------------------------------------------------------
@app.command()
def synth(
    population: Annotated[int, typer.Option("--population", "-n", help="People to generate.")] = 175_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")] = 20140601,
    data_root: DataRoot = None, as_of: AsOf = None,
    contracts_dir: ContractsDir = None,
    supplier_style: Annotated[str, typer.Option("--supplier-style", help="native, or a supplier's layout: upper "
                                                "(NHS_NO, pipes, dd/mm/yyyy, trailing column) or spreadsheet (Title "
                                                "Case headers, semicolons, Windows-1252).")] = "native",
) -> None:
    """Generate a synthetic linked population and write every feed's deliveries to landing/."""
    from pipeline.synth.supplier import STYLES

    if supplier_style not in STYLES:
        raise UserError(f"--supplier-style must be one of {', '.join(STYLES)}")
    _synth(_settings(data_root, contracts_dir, as_of), population, seed, supplier_style)


def _synth(settings: Settings, population: int, seed: int, supplier_style: str = "native"):
    from pipeline.synth import generate

    with _progress() as progress:
        task = progress.add_task("synthetic population", total=None)
        result = generate(
            settings, population, seed,
            on_step=lambda s: progress.update(task, description=f"synth: {s}"),
            on_file=lambda _name, _rows: progress.advance(task), supplier_style=supplier_style,
        )
        progress.update(task, description="synth: done", total=result.files, completed=result.files)
    console.print(
        f"Wrote {result.files} deliveries ({result.rows:,} rows) for {result.population:,} people "
        f"to {result.landing} in {result.seconds:.1f}s; ground truth in {result.truth} (never read by flows)."
    )
    return result


# validate -------------------------------------------------------------------------------
@app.command()
def validate(
    file: Annotated[Path | None, typer.Argument(help="One delivery file; omit to validate all of landing/.")] = None,
    feed: Annotated[str | None, typer.Option("--feed", help="The feed the file belongs to.")] = None,
    data_root: DataRoot = None,
    contracts_dir: ContractsDir = None,
    as_of: AsOf = None,
    batch_mb: Annotated[int | None, typer.Option("--batch-mb", help="MB of CSV per validation batch.")] = None,
) -> None:
    """Validate deliveries against their contracts; quarantine any that fail (exit non-zero)."""
    extra = {"validation_batch_bytes": batch_mb * 1024 * 1024} if batch_mb else {}
    settings = _settings(data_root, contracts_dir, as_of, **extra)
    if file is not None:
        if not feed:
            raise UserError("give the feed of the file: safehaven validate FILE --feed FEED")
        results = _validate_files(settings, [(Path(file), feed)])
    else:
        from pipeline.ingest.deliveries import find_delivery_files

        results = _validate_files(settings, find_delivery_files(settings.landing))
    failed = [r for r in results if not r.passed]
    if failed:
        moved = [r for r in failed if r.quarantined_to]
        raise DeliveryQuarantined(
            f"{_deliveries(len(failed))} failed validation: "
            + ("see the reasons above and the .reason.json files in landing/_quarantine" if moved else
               "see the reasons above (files outside landing/ are left where they are)"),
            [reason for r in failed for reason in r.reasons])


def _validate_files(settings: Settings, items: list[tuple[Path, str]]):
    from pipeline.ingest.gate import ValidationGate

    gate = ValidationGate(settings)
    results = []
    with _progress() as progress:
        task = progress.add_task("validating", total=len(items))
        for path, feed in items:
            progress.update(task, description=f"validating {path.name}")
            result = gate.validate(path, feed)
            results.append(result)
            progress.advance(task)
            if not result.passed:
                progress.console.print(f"[red]✗ quarantined[/] {result.delivery_id} ({result.file})")
                for reason in result.reasons:
                    progress.console.print(f"    [red]{reason}[/]")
                progress.console.print(f"    moved to {result.quarantined_to}" if result.quarantined_to else
                                       "    left in place (outside landing/: your file is not moved)")
            for warning in result.warnings:
                progress.console.print(f"[yellow]! {result.delivery_id}: {warning}[/]")
        progress.update(task, description="building Data Docs")
        docs = gate.build_data_docs()
        progress.update(task, description="validation done")
    _summary(results)
    if docs:
        console.print(f"Data Docs for IG leads: {docs}")
    return results


def _summary(results) -> None:
    by_feed: dict[str, list] = {}
    for r in results:
        by_feed.setdefault(r.feed, []).append(r)
    table = Table(title="Validation gate")
    for col in ("feed", "deliveries", "passed", "quarantined", "rows", "warnings", "rows/s"):
        table.add_column(col, justify="right" if col != "feed" else "left")
    for feed, rs in sorted(by_feed.items()):
        rows = sum(r.rows for r in rs)
        secs = sum(r.seconds for r in rs) or 1e-9
        q = sum(not r.passed for r in rs)
        table.add_row(feed, str(len(rs)), str(len(rs) - q), f"[red]{q}[/]" if q else "0", f"{rows:,}",
                      str(sum(len(r.warnings) for r in rs)), f"{rows / secs:,.0f}")
    console.print(table)


# ingest ---------------------------------------------------------------------------------
@app.command()
def ingest(
    feed: Annotated[list[str] | None, typer.Option("--feed", help="Only these feeds (repeatable).")] = None,
    data_root: DataRoot = None,
    contracts_dir: ContractsDir = None,
    as_of: AsOf = None,
    accept_stale_opt_outs: Annotated[str | None, typer.Option(
        "--accept-stale-opt-outs", help="IG override: use opt-out lists older than their contracts allow. Give who "
        "approved it and why (\"J Bloggs, IG lead: supplier outage, ticket 42\"); audited, recorded in each "
        "manifest and shown in the evidence pack.")] = None,
) -> None:
    """Run the Prefect ingest flow: every waiting delivery from landing/ to pseudonymised staging/."""
    settings = _settings(data_root, contracts_dir, as_of,
                         stale_opt_out_override=accept_stale_opt_outs)
    results = _run_ingest(settings, feed)
    quarantined = [r for r in results if r["status"] == "quarantined"]
    if quarantined:
        raise DeliveryQuarantined(
            f"{_deliveries(len(quarantined))} quarantined (the rest of the run went on): "
            + ", ".join(r["delivery"] for r in quarantined)
            + ". The reasons are above and in each .reason.json in landing/_quarantine; a corrected file "
            "delivered as a new version is ingested by the next run",
            [reason for r in quarantined for reason in r["reasons"]])


def _deliveries(n: int) -> str:
    return f"{n} delivery" if n == 1 else f"{n} deliveries"


def _export_to_flow(settings: Settings) -> None:
    """Flows rebuild settings from the environment at their own edge: hand them ours."""
    import os

    for name in ("contracts_dir", "as_of", "allow_synthetic_nhs_numbers", "validation_batch_bytes",
                 "validation_engine", "ingest_workers", "log_level", "stale_opt_out_override"):
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"SAFEHAVEN_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)


def _run_ingest(settings: Settings, feeds: list[str] | None) -> list[dict]:
    from pipeline.flows import prefect_environment
    from pipeline.ingest.deliveries import find_delivery_files

    _export_to_flow(settings)
    prefect_environment(settings)
    from pipeline.flows.ingest import ingest_flow, ingest_task_runner, set_progress_hook

    results: list[dict] = []
    total = len(find_delivery_files(settings.landing, feeds))
    with _progress() as progress:
        task = progress.add_task("ingest (starting Prefect)", total=total)

        def hook(result):
            results.append({"feed": result.feed, "delivery": result.delivery_id, "reasons": list(result.reasons),
                            "status": result.status, "rows_in": result.rows_in,
                            "rows_out": result.rows_out, "seconds": result.seconds,
                            "opt_out_removed": sum(result.counts.get("opt_out_removed", {}).values())})
            progress.update(task, description=f"ingest {result.delivery_id}")
            progress.advance(task)
            if result.status == "quarantined":
                progress.console.print(f"[red]✗ quarantined[/] {result.delivery_id}")
                for reason in result.reasons:
                    progress.console.print(f"    [red]{reason}[/]")

        set_progress_hook(hook)
        if settings.dask_address:
            progress.console.print(f"ingest on the Dask cluster at {settings.dask_address}")
        try:
            ingest_flow.with_options(task_runner=ingest_task_runner(settings))(
                data_root=str(settings.data_root.resolve()), feeds=feeds)
        finally:
            set_progress_hook(None)
        progress.update(task, description="ingest done")
    table = Table(title="Ingest: landing -> staging")
    for col in ("feed", "staged", "skipped", "quarantined", "rows in", "rows staged", "opt-out removed", "rows/s"):
        table.add_column(col, justify="left" if col == "feed" else "right")
    for feed_name in sorted({r["feed"] for r in results}):
        rs = [r for r in results if r["feed"] == feed_name]
        rows_in = sum(r["rows_in"] for r in rs)
        secs = sum(r["seconds"] for r in rs) or 1e-9
        q = sum(r["status"] == "quarantined" for r in rs)
        table.add_row(feed_name, str(sum(r["status"] == "staged" for r in rs)), str(sum(r["status"] == "skipped" for r in rs)),
                      f"[red]{q}[/]" if q else "0", f"{rows_in:,}", f"{sum(r['rows_out'] for r in rs):,}",
                      f"{sum(r['opt_out_removed'] for r in rs):,}", f"{rows_in / secs:,.0f}")
    console.print(table)
    return results


# link -----------------------------------------------------------------------------------
def _with_progress(name: str, steps, run):
    """Run a flow (``run()``) under a rich progress bar advanced by its tasks' step hook."""
    from pipeline.flows.writer import set_progress_hook

    with _progress() as progress:
        task = progress.add_task(f"{name} (starting Prefect)", total=len(steps))

        def hook(step: str) -> None:
            progress.update(task, description=f"{name}: {step} done")
            progress.advance(task)

        set_progress_hook(hook)
        try:
            return run()
        finally:
            set_progress_hook(None)


@app.command()
def link(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Load staged deliveries into the encrypted warehouse, build the person spine, rescue-link."""
    _link(_settings(data_root, as_of=as_of))


def _link(settings: Settings) -> dict:
    """Run the Prefect ``link`` flow (ephemeral server unless PREFECT_API_URL is set)."""
    from pipeline.flows import prefect_environment

    _export_to_flow(settings)
    prefect_environment(settings)
    from pipeline.flows.link import LINK_STEPS, link_flow

    result = _with_progress("link", LINK_STEPS, lambda: link_flow(data_root=str(settings.data_root.resolve())))
    s = result["link_status"]
    r = result["rescue"]
    table = Table(title="Linkage")
    for col in ("people", "records", "on NHS number", "rescued", "unlinked", "ambiguous", "opted out"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{v:,}" for v in (result["people"], result["records"], s["deterministic"], s["rescued"],
                                       s["unlinked"], r["ambiguous"], r["opted_out"])))
    console.print(table)
    console.print(
        f"Loaded {result['loaded']} deliveries "
        f"({result['skipped']} already there, {result['superseded']} superseded). "
        f"Report: {settings.reports_dir / 'linkage' / result['report']}. Marts: "
        + ", ".join(f"{m['name']} ({', '.join(f'{t} {n:,}' for t, n in m['tables'].items())})" for m in result["marts"])
    )
    return result


@app.command("evaluate-linkage")
def evaluate_linkage_command(
    truth: Annotated[Path | None, typer.Option("--truth", help="Ground truth folder (default <data root>/synthetic-truth).")] = None,
    data_root: DataRoot = None, as_of: AsOf = None,
) -> None:
    """Synthetic data only: precision and recall of the linkage against the ground truth, added to the report."""
    settings = _settings(data_root, as_of=as_of)
    evaluation = _evaluate(settings, truth or settings.synthetic_truth)
    d, r = evaluation["deterministic"], evaluation["rescue"]
    console.print(f"deterministic precision {d['precision']}, recall {d['recall']} (valid NHS number share "
                  f"{d['valid_nhs_number_share']}); rescue precision {r['precision']} over {r['linked']:,} links")


def _evaluate(settings: Settings, truth: Path) -> dict:
    from pipeline.keys import open_keystore
    from pipeline.linkage import write_quality_report

    keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers)
    quality, paths = write_quality_report(settings, keystore, truth_dir=truth)
    settings.audit().append("linkage.evaluated", {
        "report": Path(paths["json"]).name, "deterministic_precision": quality["evaluation"]["deterministic"]["precision"],
        "rescue_precision": quality["evaluation"]["rescue"]["precision"]})
    return quality["evaluation"]


# stratify -------------------------------------------------------------------------------
@app.command()
def stratify(
    tiers: Annotated[str, typer.Option("--tiers", help="Tier scheme: default, adults-top-2, or "
                                       "'very-high:0.5,high:4.5,moderate:15' (percent from the top).")] = "default",
    pack_tiers: Annotated[str, typer.Option("--pack-tiers", help="Tiers that go into case-finding packs "
                                            "(comma-separated).")] = "very-high,high",
    valid_days: Annotated[int, typer.Option("--valid-days", help="Days a case-finding pack stays valid.")] = 28,
    external_scores: Annotated[Path | None, typer.Option(
        "--external-scores", help="Use another tool's scores (CSV or Parquet: pseudonym, score) instead of training.",
        exists=True, dir_okay=False)] = None,
    data_root: DataRoot = None, as_of: AsOf = None,
) -> None:
    """Train and validate the risk models, score and tier everyone, publish the person mart, write packs."""
    _stratify(_settings(data_root, as_of=as_of), tiers, [t.strip() for t in pack_tiers.split(",") if t.strip()], valid_days,
              external_scores)


def _stratify(settings: Settings, tiers: str, pack_tiers: list[str], valid_days: int,
              external_scores: Path | None) -> dict:
    """Run the Prefect ``stratify`` flow (ephemeral server unless PREFECT_API_URL is set)."""
    from pipeline.flows import prefect_environment
    from pipeline.risk import parse_scheme

    scheme = parse_scheme(tiers)  # a bad scheme is a user error before anything starts
    unknown = set(pack_tiers) - set(scheme.tiers)
    if unknown:
        raise UserError(f"--pack-tiers names tiers the scheme does not have: {sorted(unknown)} "
                        f"(the scheme has {', '.join(scheme.tiers)})")
    _export_to_flow(settings)
    prefect_environment(settings)
    from pipeline.flows.stratify import STRATIFY_STEPS, stratify_flow

    result = _with_progress("stratify", STRATIFY_STEPS, lambda: stratify_flow(
        data_root=str(settings.data_root.resolve()), tiers=tiers, pack_tiers=pack_tiers, valid_days=valid_days,
        external_scores=str(external_scores.resolve()) if external_scores else None))
    model, scored, packs = result["model"], result["scores"], result["packs"]
    if model:
        console.print(f"Model {model['version']} ({model['kind']}): validation AUROC {model['auroc']:.4f}, "
                      f"calibration slope {model['calibration_slope']:.3f}, intercept "
                      f"{model['calibration_intercept']:+.4f}. Card: {settings.reports_dir / 'models' / model['card']}")
    else:
        ext = scored["external"]
        console.print(f"External scores {ext['file']}: {ext['matched']:,} of {ext['rows']:,} rows matched people "
                      f"({ext['unknown_pseudonyms']:,} unknown pseudonyms; {ext['population_without_score']:,} "
                      "registered people without a score are left untiered)")
    table = Table(title=f"Tiers on {scored['scoring_date']}")
    table.add_column("tier")
    table.add_column("people", justify="right")
    for tier, people in scored["tiers"].items():
        table.add_row(tier, f"{people:,}")
    console.print(table)
    console.print(f"Tier scheme {scored['scheme']}.")
    console.print(f"{packs['packs']} signed case-finding packs ({packs['patients']:,} patients, valid "
                  f"{packs['valid_days']} days) under {settings.case_finding_dir / str(packs['folder'])}")
    return result


@app.command("evaluate-model")
def evaluate_model_command(
    truth: Annotated[Path | None, typer.Option("--truth", help="Ground truth folder (default <data root>/synthetic-truth).")] = None,
    data_root: DataRoot = None, as_of: AsOf = None,
) -> None:
    """Synthetic data only: compare the current model with the planted model (the ceiling) on its card."""
    settings = _settings(data_root, as_of=as_of)
    headline = _evaluate_model(settings, truth or settings.synthetic_truth)
    console.print(f"validation AUROC {headline['auroc']:.4f} against the planted ceiling "
                  f"{headline['planted_ceiling_auroc']:.4f}; calibration slope {headline['calibration_slope']:.3f}. "
                  f"Card: {headline['card_path']}")


def _evaluate_model(settings: Settings, truth: Path) -> dict:
    from pipeline.keys import open_keystore
    from pipeline.risk import compare_with_planted

    keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers)
    return compare_with_planted(settings, keystore, settings.audit(), truth)


@app.command()
def reidentify(
    practice: Annotated[str, typer.Option("--practice", help="The GP practice's ODS code.")],
    list_file: Annotated[Path, typer.Option("--list", help="The practice's registered list: a CSV with an "
                                            "nhs_number column, or one NHS number per line.", exists=True,
                                            dir_okay=False)],
    requester: Annotated[str, typer.Option("--requester", help="Who asks (a named person at the practice).")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why (direct care purpose; audited).")] = "direct care: case finding",
    data_root: DataRoot = None, as_of: AsOf = None,
) -> None:
    """Direct care: return NHS number, tier and drivers for this practice's patients on its own list and pack."""
    from pipeline.keys import open_keystore
    from pipeline.risk import reidentify as run_reidentify

    settings = _settings(data_root, as_of=as_of)
    keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers)
    result = run_reidentify(settings, keystore, settings.audit(), practice=practice,
                            list_path=list_file, requester=requester, purpose=purpose)
    c = result.counts
    console.print(f"{c['on_pack_and_list']:,} of the {c['valid_nhs_numbers']:,} valid NHS numbers on the list are in "
                  f"practice {practice.upper()}'s pack ({c['not_valid']:,} list entries not valid NHS numbers). "
                  f"Written to {result.output} (identifiable: send it to the practice and delete it). Audited.")


@packs_app.command("verify")
def packs_verify(
    pack: Annotated[Path, typer.Argument(help="A <practice>.pack.json file.", exists=True, dir_okay=False)],
    public_key: Annotated[Path | None, typer.Option("--public-key", help="PEM public key (default: this "
                                                    "service's, from the keystore).")] = None,
    data_root: DataRoot = None, as_of: AsOf = None,
) -> None:
    """Check a pack's signature, its CSV's hash and its expiry."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from pipeline.keys import open_keystore
    from pipeline.risk import verify_pack
    from pipeline.risk.packs import public_key_of

    if public_key:
        key = load_pem_public_key(public_key.read_bytes())
    else:
        settings = _settings(data_root, as_of=as_of)
        key = public_key_of(open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers))
    manifest = verify_pack(pack, key)
    console.print(f"[green]valid[/]: practice {manifest['practice']}, {manifest['rows']:,} patients "
                  f"({', '.join(manifest['tiers'])}), model {manifest['model_version']}, expires {manifest['expires_at']}")


@packs_app.command("public-key")
def packs_public_key(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Print the PEM public key that verifies this service's case-finding packs."""
    from pipeline.keys import open_keystore
    from pipeline.risk import public_key_pem

    settings = _settings(data_root, as_of=as_of)
    sys.stdout.write(public_key_pem(open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers)))


# publish --------------------------------------------------------------------------------
@app.command()
def publish(
    contract: Annotated[str, typer.Option("--contract", help="Output contract under contracts/outputs/.")] = "commissioning",
    method: Annotated[str, typer.Option("--method", help="Secondary suppression: auto (default: joint for tables up to 2,000 cells, cube above), cube, lp, or joint (the joint MIP, started from cube's pattern and kept where it hides less within its time limit).")] = "auto",
    data_root: DataRoot = None, as_of: AsOf = None,
) -> None:
    """Build an output contract's tables from the person mart, protect and audit them, publish under outputs/."""
    _publish(_settings(data_root, as_of=as_of), contract, method)


def _publish(settings: Settings, contract: str, method: str = "auto") -> dict:
    """Run the Prefect ``publish`` flow (ephemeral server unless PREFECT_API_URL is set)."""
    from pipeline.disclosure import METHODS
    from pipeline.disclosure.outputs import load_output_contract
    from pipeline.disclosure.publish import publish_steps
    from pipeline.flows import prefect_environment

    if method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}")
    spec = load_output_contract(settings.contracts_dir, contract)  # a bad contract fails before Prefect starts
    _export_to_flow(settings)
    prefect_environment(settings)
    from pipeline.flows.publish import publish_flow

    result = _with_progress("publish", (*publish_steps(spec), "verify-package"), lambda: publish_flow(
        data_root=str(settings.data_root.resolve()), contract=contract, method=method))
    table = Table(title=f"Package {result['package']} (profile {result['profile']}, scoring date "
                        f"{result['reference_date']})")
    for col in ("table", "kind", "cells", "primary", "secondary", "audit", "audited with"):
        table.add_column(col, justify="left" if col in {"table", "kind"} else "right")
    for t in result["tables"]:
        table.add_row(t["name"], t["kind"], f"{t['cells']:,}", f"{t['primary']:,}", f"{t['secondary']:,}",
                      "[green]passed[/]" if t["audit_passed"] else "[red]FAILED[/]",
                      f"{len(t['audited_with'])} earlier")
    console.print(table)
    for t in result["tables"]:
        if t.get("warning"):
            console.print(f"[yellow]warning[/]: {t['warning']}")
    state = "already published (verified, unchanged)" if result["already_published"] else "published"
    console.print(f"{state}: {result['folder']}/ (index.html, a CSV per table, the workbook, records/, "
                  "manifest.json)")
    return result


# retain ---------------------------------------------------------------------------------
RetainAsOf = Annotated[
    dt.datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="Act as if today were this date (default today): see what "
                 "that day would destroy."),
]


@retain_app.command("plan")
def retain_plan(as_of: RetainAsOf = None, data_root: DataRoot = None,
                every: Annotated[bool, typer.Option("--all", help="List every item, not one line per feed "
                                                    "and kind.")] = False,
                as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False) -> None:
    """List what is due for destruction, with the policy and approver; change nothing."""
    from pipeline.keys import open_keystore
    from pipeline.retention.plan import make_plan

    settings = _settings(data_root, as_of=as_of)
    keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers)
    plan = make_plan(settings, keystore, settings.today())
    if as_json:
        sys.stdout.write(json.dumps({"as_of": plan.as_of.isoformat(), "items": [i.to_dict() for i in plan.items],
                                     "totals": plan.totals()}, indent=2) + "\n")
        return
    _print_policies(plan)
    table = Table(title=f"Due on {plan.as_of} ({len(plan.due())} to destroy, {len(plan.reported())} reported only)")
    for col in ("feed", "what", "status", "rows", "files", "period", "rule / reason"):
        table.add_column(col, justify="right" if col in {"rows", "files"} else "left")
    colour = {"due": "red", "held": "yellow", "not-approved": "magenta", "waiting": "cyan"}
    for row in _plan_rows(plan.items, every):
        table.add_row(row["feed"], row["what"], f"[{colour[row['status']]}]{row['status']}[/]", f"{row['rows']:,}",
                      f"{row['files']:,}", row["period"], row["why"])
    console.print(table)
    if not plan.items:
        console.print(f"Nothing is due on {plan.as_of}.")


def _print_policies(plan) -> None:
    table = Table(title="Retention policies (from the feed contracts)")
    for col in ("feed", "policy", "approved by", "reference", "status"):
        table.add_column(col)
    for name, p in sorted(plan.policies.items()):
        status = {"due": "[green]approved[/]", "held": "[yellow]legal hold[/]",
                  "not-approved": "[magenta]not approved[/]"}[p.status]
        table.add_row(name, p.describe() or p.reason(), p.approver, p.approval_reference, status)
    console.print(table)


def _plan_rows(items, every: bool) -> list[dict]:
    groups: dict[tuple, dict] = {}
    for item in items:
        key = (item.feed, item.kind, item.status, item.target if every else "")
        g = groups.setdefault(key, {"feed": item.feed, "what": item.target if every else item.kind,
                                    "status": item.status, "rows": 0, "files": 0, "from": [], "to": [],
                                    "why": item.reason or item.rule})
        g["rows"] += item.rows
        g["files"] += item.files
        g["from"] += [item.period_from] if item.period_from else []
        g["to"] += [item.period_to] if item.period_to else []
    for g in groups.values():
        g["period"] = f"{min(g['from'])} to {max(g['to'])}" if g["from"] else ""
    return sorted(groups.values(), key=lambda g: (g["status"] != "due", g["feed"], g["what"]))


@retain_app.command("run")
def retain_run(as_of: RetainAsOf = None, data_root: DataRoot = None) -> None:
    """Destroy what is due under approved policies, verify, and write a signed certificate."""
    settings = _settings(data_root, as_of=as_of)
    result = _retain(settings)
    if result.get("nothing_due"):
        console.print(f"Nothing is due on {settings.today()}; {result['reported']} item(s) reported, not destroyed.")
        return
    from pipeline.retention.certificate import certificates_dir

    folder = certificates_dir(settings)
    console.print(f"Certificate {result['certificate']}: {result['totals']['records']:,} warehouse records and "
                  f"{result['totals']['files']:,} files destroyed, {result['keys_destroyed']:,} keys destroyed, "
                  f"verification {'[green]passed[/]' if result['verification'] else '[red]FAILED[/]'}.")
    console.print(f"  {folder / (result['certificate'] + '.html')}")
    if result["reported"]:
        console.print(f"{result['reported']} item(s) were not destroyed (legal hold, no approved policy, or waiting); "
                      "see 'safehaven retain plan'.")


def _retain(settings: Settings) -> dict:
    """Run the Prefect ``retain`` flow (ephemeral server unless PREFECT_API_URL is set)."""
    from pipeline.flows import prefect_environment
    from pipeline.retention.run import RUN_STEPS

    _export_to_flow(settings)
    prefect_environment(settings)
    from pipeline.flows.retain import retain_flow

    return _with_progress("retain", RUN_STEPS, lambda: retain_flow(
        data_root=str(settings.data_root.resolve()), as_of=settings.today().isoformat()))


@retain_app.command("verify")
def retain_verify(as_of: RetainAsOf = None, data_root: DataRoot = None) -> None:
    """Re-check every certificate (signature, audit log, keys, files) and what is overdue now."""
    from pipeline.keys import open_keystore
    from pipeline.retention.plan import make_plan
    from pipeline.retention.run import journal_path
    from pipeline.retention.verify import verify_certificates

    settings = _settings(data_root, as_of=as_of)
    keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers)
    rows = verify_certificates(settings, keystore, settings.audit())
    table = Table(title="Certificates of destruction")
    for col in ("certificate", "as of", "records", "files", "keys", "check"):
        table.add_column(col, justify="right" if col in {"records", "files", "keys"} else "left")
    for r in rows:
        table.add_row(r["certificate"], str(r.get("as_of") or ""), f"{r.get('rows') or 0:,}", f"{r.get('files') or 0:,}",
                      f"{r.get('keys') or 0:,}", "[green]ok[/]" if not r["problems"] else "[red]" + "; ".join(
                          r["problems"]) + "[/]")
    console.print(table)
    due = make_plan(settings, keystore, settings.today()).due()
    if due:
        console.print(f"{len(due)} item(s) are due on {settings.today()} and not yet destroyed: run "
                      "'safehaven retain run'.")
    if journal_path(settings).exists():
        console.print("[yellow]A retention run was interrupted: run 'safehaven retain run' to finish it.[/]")
    bad = [r for r in rows if r["problems"]]
    if bad:
        raise DestructionUnverified(f"{len(bad)} of {len(rows)} certificate(s) do not check out: "
                                    f"{bad[0]['certificate']}: {bad[0]['problems'][0]}")
    console.print(f"{len(rows)} certificate(s) check out.")


# disclosure -----------------------------------------------------------------------------
@disclosure_app.command("check")
def disclosure_check(
    file: Annotated[Path, typer.Argument(help="A CSV: one column per dimension ('Total' marks a margin) and a "
                                         "count column ('*' marks a hidden cell).", exists=True, dir_okay=False)],
    dims: Annotated[str, typer.Option("--dims", help="Dimension columns, comma-separated.")],
    count: Annotated[str, typer.Option("--count", help="The count column.")],
    profile: Annotated[str, typer.Option("--profile", help="Rule profile: safehaven, nhs-hes-2018, opensafely, "
                                         "acro.")] = "safehaven",
) -> None:
    """Audit a table made elsewhere: primary rules on what is shown, and the LP attacker on what is hidden."""
    from pipeline.disclosure import get_profile
    from pipeline.disclosure.check import check_table
    from pipeline.errors import DisclosureFailed

    try:
        rules = get_profile(profile)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    result = check_table(file, [d.strip() for d in dims.split(",") if d.strip()], count, rules)
    table = Table(title=f"{result.file}: {result.cells:,} cells, {result.hidden:,} hidden, profile {rules.name} "
                        f"(hidden cells must stay at least {rules.protection_width} wide)")
    for col in ("cell", "problem", "attacker's interval"):
        table.add_column(col)
    for breach in result.rule_breaches:
        table.add_row(_cell_name(breach["cell"]), f"published: {breach['rule']}", "")
    for cert in result.audit.failures:
        interval = f"{cert.lo:g} to {cert.hi:g}"
        problem = "recovered exactly" if cert.lo == cert.hi else f"narrower than {cert.required_width}"
        table.add_row(_cell_name(cert.key), f"hidden, {problem}", interval)
    if result.passed:
        console.print(f"[green]safe[/]: {result.file} ({result.cells:,} cells, {result.hidden:,} hidden; every "
                      f"hidden cell at least {rules.protection_width} wide to an attacker)")
        return
    console.print(table)
    raise DisclosureFailed(f"{result.file}: {len(result.rule_breaches)} published cell(s) break a primary rule, "
                           f"{len(result.audit.failures)} hidden cell(s) can be narrowed too far")


def _cell_name(key: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


# query ----------------------------------------------------------------------------------
@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One read-only SQL statement (SELECT, WITH, FROM, DESCRIBE, SHOW).")],
    role: Annotated[str, typer.Option("--role", help="Your role: analyst, super-user or ig-lead (per the mart contracts).")],
    csv: Annotated[Path | None, typer.Option("--csv", help="Write the result to this CSV file.")] = None,
    parquet: Annotated[Path | None, typer.Option("--parquet", help="Write the result to this Parquet file.")] = None,
    limit: Annotated[int, typer.Option("--show", help="Rows to show in the terminal.")] = 50,
    data_root: DataRoot = None, as_of: AsOf = None,
) -> None:
    """Query the marts your role may read: read-only, external access off, audited."""
    from pipeline.keys import open_keystore
    from pipeline.marts import export_result, run_query

    settings = _settings(data_root, as_of=as_of)
    for target in (csv, parquet):
        if target and settings.outputs_dir.resolve() in target.resolve().parents:
            raise UserError("query results may not be written under outputs/: publish aggregates through "
                            "disclosure control")
    # Only the role's own credential: a query never holds the warehouse's keys or the linkage key.
    keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers, roles=(role,))
    result = run_query(settings, keystore, role, sql, settings.audit())
    for target, fmt in ((csv, "csv"), (parquet, "parquet")):
        if target:
            export_result(result, target, settings.audit(), role, fmt)
            console.print(f"{result.rows:,} rows written to {target} (readable by you only; the export is audited)")
    if not csv and not parquet:
        table = Table(title=f"{result.rows:,} rows (marts: {', '.join(result.marts)})")
        for name in result.table.column_names:
            table.add_column(name, overflow="fold")
        for row in result.table.slice(0, limit).to_pylist():
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        console.print(table)
        if result.rows > limit:
            console.print(f"showing {limit} of {result.rows:,} rows; use --csv or --parquet for all")


# keys -----------------------------------------------------------------------------------
@keys_app.command("init")
def keys_init(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Create the keystore: a key pair per role (engineer, ig-lead and each mart reader), each
    sealed by that role's credential (SAFEHAVEN_KEK for the engineer, SAFEHAVEN_KEK_<ROLE> for the
    others: a key, 'passphrase:...' or a pkcs11: URI). A role with no credential of its own shares
    the engineer's until 'safehaven keys credential' gives it one."""
    from pipeline.keys import ENGINEER, KeyHolders, LocalKeystore, Pkcs11Credential, role_credential

    settings = _settings(data_root, as_of=as_of)
    holders = KeyHolders.from_contracts(settings.contracts_dir)
    engineer = role_credential(settings, ENGINEER)
    if engineer is None:
        raise UserError("set SAFEHAVEN_KEK (or SAFEHAVEN_KEYSTORE_PASSPHRASE): the engineer's credential")
    credentials = {r: c for r in holders.roles if (c := role_credential(settings, r)) is not None}
    for credential in credentials.values():
        if isinstance(credential, Pkcs11Credential):
            credential.create_key()
    store = LocalKeystore.create(settings.keystore_path, engineer, credentials=credentials, roles=holders.roles,
                                 holders=holders)
    settings.audit().append("keys.created", {"active": store.active_version(), "roles": list(holders.roles),
                                             "own_credential": sorted(credentials)})
    console.print(f"Created {settings.keystore_path} (master v{store.active_version()}).")
    _keys_table(store)


@keys_app.command("status")
def keys_status(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Roles and their credentials, master versions and the linkage key's id and fingerprint (never a key)."""
    from pipeline.keys import open_keystore

    _keys_table(open_keystore(_settings(data_root, as_of=as_of)))


@keys_app.command("credential")
def keys_credential(role: Annotated[str, typer.Option("--role", help="The role whose credential changes.")],
                    data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Give a role a new credential: its current one (SAFEHAVEN_KEK_<ROLE>, or SAFEHAVEN_KEK for the
    engineer) opens its private key, SAFEHAVEN_NEW_KEK (a key, 'passphrase:...' or a pkcs11: URI)
    seals it again. Every other role, and every key, is left as it is."""
    import os

    from pipeline.keys import Pkcs11Credential, credential_from_text, open_keystore

    settings = _settings(data_root, as_of=as_of)
    new_text = os.environ.get("SAFEHAVEN_NEW_KEK")
    if not new_text:
        raise UserError("set SAFEHAVEN_NEW_KEK to the role's new credential (a key, 'passphrase:...' or a pkcs11: URI)")
    new = credential_from_text(new_text)
    if isinstance(new, Pkcs11Credential):
        new.create_key()
    store = open_keystore(settings, roles=(role,))
    store.change_credential(role, new)
    settings.audit().append("keys.credential_changed", {"role": role, "credential": new.kind})
    console.print(f"Role '{role}' now opens with its new {new.kind} credential; no other role changed.")
    _keys_table(store)


@keys_app.command("upgrade")
def keys_upgrade(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Re-wrap a keystore made before roles (one key-encryption key for everything) for each role,
    keeping every master version and data key. SAFEHAVEN_KEK or SAFEHAVEN_KEYSTORE_PASSPHRASE is
    the old key-encryption key, and stays the engineer's credential; SAFEHAVEN_KEK_<ROLE> seals the others."""
    from pipeline.keys import ENGINEER, KeyHolders, role_credential
    from pipeline.keys.upgrade import upgrade_v1

    settings = _settings(data_root, as_of=as_of)
    holders = KeyHolders.from_contracts(settings.contracts_dir)
    old = role_credential(settings, ENGINEER)
    if old is None:
        raise UserError("set SAFEHAVEN_KEK or SAFEHAVEN_KEYSTORE_PASSPHRASE to the old keystore's key-encryption key")
    credentials = {r: c for r in holders.roles if r != ENGINEER and (c := role_credential(settings, r)) is not None}
    store = upgrade_v1(settings.keystore_path, old, credentials | {ENGINEER: old}, holders, default=old)
    settings.audit().append("keys.upgraded", {"roles": list(holders.roles), "own_credential": sorted(credentials)})
    _keys_table(store)


@keys_app.command("rotate")
def keys_rotate(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Add a new master version; the old one stays usable (and bridged) until retired."""
    from pipeline.keys import open_keystore

    settings = _settings(data_root, as_of=as_of)
    store = open_keystore(settings)
    version = store.rotate()
    settings.audit().append("keys.rotated", {"active": version, "usable": store.usable_versions()})
    console.print(f"Master v{version} is active; earlier versions stay usable until 'safehaven keys retire'.")
    _keys_table(store)


@keys_app.command("retire")
def keys_retire(version: Annotated[int, typer.Argument(help="Master version to retire.")],
                data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Make a master version unusable and delete its ciphertext from the keystore."""
    from pipeline.keys import open_keystore

    settings = _settings(data_root, as_of=as_of)
    store = open_keystore(settings)
    store.retire(version)
    settings.audit().append("keys.retired", {"version": version, "usable": store.usable_versions()})
    _keys_table(store)


def _keys_table(store) -> None:
    roles = Table(title="Roles (each key is wrapped for the roles that may use it)")
    for col in ("role", "credential", "set by", "changed", "masters", "data keys"):
        roles.add_column(col)
    for r in store.role_status():
        kind = r["credential"] + (" [yellow](shares the engineer's: give it its own)[/]" if r["shared"] else "")
        roles.add_row(r["role"], kind, r["env"], r["changed"], str(r["masters"]), str(r["data_keys"]))
    console.print(roles)
    table = Table(title=f"Keystore {store.path}" + (f" [bold red]{store.label}[/]" if store.label else ""))
    for col in ("version", "status", "created", "linkage key id", "fingerprint"):
        table.add_column(col)
    for row in store.status():
        table.add_row(str(row["version"]), row["status"], row.get("created", ""),
                      row.get("linkage_key_id", "-"), row.get("linkage_fingerprint", "-"))
    console.print(table)


# audit ----------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Walk the hash chain; report the first edited, removed or reordered entry."""
    settings = _settings(data_root, as_of=as_of)
    report = settings.audit().verify_or_raise()
    console.print(f"[green]Audit log intact[/]: {report.entries} entries, head {report.head[:16]}…")


# serve ----------------------------------------------------------------------------------
@app.command()
def serve(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Start a local Prefect server (unless PREFECT_API_URL is set), register every scheduled
    deployment and run them until stopped."""
    from pipeline.flows import prefect_environment

    settings = _settings(data_root, as_of=as_of)
    prefect_environment(settings)
    from pipeline.flows.serve import serve as serve_deployments

    serve_deployments(settings, say=console.print)


# report ---------------------------------------------------------------------------------
@app.command()
def report(data_root: DataRoot = None, as_of: AsOf = None) -> None:
    """Build the IG evidence pack and the public transparency notice (no patient data)."""
    settings = _settings(data_root, as_of=as_of)
    paths = _report(settings)
    audit = paths["pack"].audit
    if not audit["ok"]:
        raise AuditTampered(f"the evidence pack was written, but the audit log is broken at line "
                            f"{audit['first_bad_line']}: {audit['problem']}", audit["first_bad_line"])


def _report(settings: Settings) -> dict:
    from pipeline.keys import open_keystore
    from pipeline.report.evidence import build_evidence_pack

    keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers) \
        if settings.keystore_path.exists() else None
    paths = build_evidence_pack(settings, keystore)
    pack = paths["pack"]
    passed = sum(c["passed"] for c in pack.checklist)
    colour = "green" if pack.audit["ok"] and passed == len(pack.checklist) else "red"
    console.print(f"[{colour}]{'✓' if colour == 'green' else '✗'}[/] IG evidence pack: {passed} of "
                  f"{len(pack.checklist)} controls pass; audit chain {'intact' if pack.audit['ok'] else 'BROKEN'} "
                  f"({pack.audit['entries']:,} entries) -> {paths['evidence']}")
    console.print(f"[green]✓[/] public transparency notice -> {paths['notice']}")
    return paths


# demo -----------------------------------------------------------------------------------
@app.command()
def demo(
    population: Annotated[int, typer.Option("--population", "-n", help="People to generate.")] = 175_000,
    seed: Annotated[int, typer.Option("--seed")] = 20140601,
    data_root: DataRoot = None, as_of: AsOf = None,
) -> None:
    """Run the whole job on built-in defaults: synthetic population, ingest, link, stratify, publish, a first
    query, a retention plan, the IG evidence pack and the public notice."""
    from pipeline.contracts import check_contracts
    from pipeline.synth import EXTRACT_DATE

    # A synthetic run is a replay "as of" the extract date (or the --as-of given), and may accept the 9xx range.
    settings = _settings(data_root, allow_synthetic_nhs_numbers=True,
                         as_of=as_of or dt.datetime.combine(EXTRACT_DATE, dt.time()))
    console.rule("[bold]safehaven demo")
    console.print(f"Data root: {settings.data_root.resolve()}  (as of {settings.today()}, synthetic NHS numbers allowed)")
    problems = [p for r in check_contracts(settings.contracts_dir, settings.today()) for p in r.problems]
    if problems:
        raise UserError("contracts have problems:\n  " + "\n  ".join(map(str, problems)))
    console.print("[green]✓[/] contracts check")
    _synth(settings, population, seed)
    results = _run_ingest(settings, None)
    summary = _link(settings)
    evaluation = _evaluate(settings, settings.synthetic_truth)
    console.print(f"[green]✓[/] linkage against the synthetic truth: deterministic precision "
                  f"{evaluation['deterministic']['precision']:.4f}, rescue precision {evaluation['rescue']['precision']:.4f}")
    _stratify(settings, "default", ["very-high", "high"], 28, None)
    headline = _evaluate_model(settings, settings.synthetic_truth)
    console.print(f"[green]✓[/] model against the planted one: validation AUROC {headline['auroc']:.4f}, ceiling "
                  f"{headline['planted_ceiling_auroc']:.4f}; calibration slope {headline['calibration_slope']:.3f}")
    published = _publish(settings, "commissioning")
    sample = ("SELECT p.age_band, count(*) AS people, sum(p.emergency_spells_12m) AS emergency_spells, "
              "count(*) FILTER (WHERE r.tier IN ('very-high', 'high')) AS high_risk "
              "FROM people p LEFT JOIN risk_scores r USING (person_id) GROUP BY ALL ORDER BY 1")
    console.print(f"An analyst's first query: safehaven query --role analyst \"{sample}\"")
    query(sample, role="analyst", csv=None, parquet=None, limit=20, data_root=settings.data_root)
    plan = _demo_retention_plan(settings)
    pages = _report(settings)
    report = settings.audit().verify_or_raise()
    console.print(f"[green]✓[/] audit log intact: {report.entries} entries")
    quarantined = [r for r in results if r["status"] == "quarantined"]
    staged = sum(r["status"] in {"staged", "skipped"} for r in results)
    console.rule()
    console.print(
        f"Demo produced, under {settings.data_root}:\n"
        f"  landing/            {len(results)} synthetic deliveries (identifiable; only ingest reads here)\n"
        f"  staging/            {staged} pseudonymised Parquet files with manifests (no identifiers)\n"
        f"  warehouse/          the encrypted DuckDB warehouse: {summary['people']:,} people on the spine\n"
        f"  marts/              read-only encrypted marts: person (analysts), linkage, governance\n"
        f"  reports/linkage/    linkage quality report: latest.html (open in a browser) and latest.json\n"
        f"  reports/models/     the model card: latest.html (validation, calibration, subgroups) and latest.json\n"
        f"  outputs/case-finding/ signed case-finding packs, one per GP practice (verify: safehaven packs verify)\n"
        f"  outputs/published/  the commissioning package {published['package']}: index.html (charts), a CSV per\n"
        f"                      table, the workbook, disclosure records; every hidden cell audited\n"
        f"  audit/disclosure/   the release ledger: what every published table showed, hash-chained\n"
        f"  reports/evidence/   the IG evidence pack: index.html (contracts, deliveries, linkage, models, releases,\n"
        f"                      queries, re-identification, destruction, controls checklist, audit chain)\n"
        f"  reports/notice/     the public transparency notice: index.html (plain English, from the contracts)\n"
        f"  retention           nothing destroyed; on {plan.as_of} {len(plan.due())} item(s) would be due and\n"
        f"                      {len(plan.reported())} reported only ('safehaven retain plan' lists them)\n"
        f"  keys/               the DEMO keystore (synthetic data only; its passphrase is public)\n"
        f"  synthetic-truth/    ground truth and the planted model (never read by flows)\n"
        f"  validation/         receipts and Great Expectations Data Docs\n"
        f"  prefect/            Prefect's database for the ephemeral flow runs\n"
        f"  audit/audit.jsonl   hash-chained audit log ({report.entries} entries)\n"
        f"{staged} staged, {len(quarantined)} quarantined.\n"
        f"Open {pages['evidence']} and {pages['notice']} in a browser."
    )
    if quarantined:
        raise UserError("some synthetic deliveries were quarantined: the generator and contracts disagree")


def _demo_retention_plan(settings: Settings):
    """What retention would destroy today, a year on, counted (the demo destroys nothing)."""
    from pipeline.keys import open_keystore
    from pipeline.retention.plan import make_plan

    keystore = open_keystore(settings, create_demo=True)
    plan = make_plan(settings, keystore, settings.today() + dt.timedelta(days=365))
    due = plan.due()
    console.print(f"[green]✓[/] retention plan for {plan.as_of} (a year on): {len(due)} item(s) due under "
                  f"approved policies ({sum(i.rows for i in due):,} records), {len(plan.reported())} reported only; "
                  "nothing destroyed ('safehaven retain plan --as-of DATE', then 'retain run')")
    return plan


def _see_run_log(exc: BaseException) -> str:
    from pipeline.runlog import write_exception

    path = write_exception(exc)
    return f"(details, with the traceback: {path})" if path else ""


#: The command being run, for the run log's name (set by ``main`` from the arguments).
_COMMAND = {"name": "run"}
_GROUPS = {"contracts", "audit", "keys", "disclosure", "packs", "retain"}


def _command_name(args: list[str]) -> str:
    """``ingest``, ``keys-init``...: the command words before any option or argument."""
    words = []
    for arg in args:
        if arg.startswith("-") or len(words) == (2 if words and words[0] in _GROUPS else 1):
            break
        words.append(arg)
    return "-".join(words) or "run"


def _is_usage_error(exc: BaseException) -> bool:
    """A command-line usage error (Click's, or the copy of Click that Typer carries)."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one clear block for a user error, the traceback in the run log."""
    install_redaction()
    _COMMAND["name"] = _command_name(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=argv, standalone_mode=False)
    except SafehavenError as exc:
        err_console.print(f"[bold red]error:[/] {redact(str(exc))}", soft_wrap=True)
        if (where := _see_run_log(exc)):
            err_console.print(where, soft_wrap=True, markup=False)
        sys.exit(exit_code_for(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if _is_usage_error(exc):
            exc.show()
            sys.exit(exc.exit_code)
        where = _see_run_log(exc)
        if where:
            err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {redact(str(exc))}",
                              soft_wrap=True)
            err_console.print(where, soft_wrap=True, markup=False)
        else:  # before the run log exists (settings not read yet): the console is all there is
            import traceback

            err_console.print("[bold red]unexpected error[/] (traceback redacted):")
            err_console.print(redact("".join(traceback.format_exception(exc))), markup=False)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
