"""Issue 18: a real supplier's extract gets in without editing it. For every feed, in every
supplier style the synthetic generator can produce, `contracts draft` proposes a contract from a
sample; it is refused until an IG lead approves it; once approved, the supplier's files stage
exactly the rows their native twins stage. The drafts never hold a value from the samples."""

from __future__ import annotations

import csv
import datetime as dt
import shutil

import polars as pl
import pytest
import yaml

from pipeline.contracts import FeedKind, check_contract, feed_names, require_contract
from pipeline.contracts.draft import GENDER_WORDS, draft_contract, write_draft
from pipeline.errors import ContractError
from pipeline.ingest.ingest import Ingestor
from pipeline.ingest.rules import normalised
from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.synth import generate
from pipeline.synth.supplier import STYLES
from tests.cli import run_cli
from tests.conftest import CONTRACTS, synthetic_settings
from tests.staged import staged_contents

POPULATION, SEED = 300, 11
pytestmark = pytest.mark.xdist_group("supplier-drafts")  # one native population for the module
KINDS = {feed: require_contract(CONTRACTS, feed).ig.feedKind for feed in feed_names(CONTRACTS)}  # as --kind says
APPROVAL = {"approvedBy": "A. Example, Information Governance Lead", "role": "ig-lead",
            "date": "2026-04-01", "reference": "IGA-TEST-18"}


def _population(root, style: str):
    settings = synthetic_settings(root)
    generate(settings, population=POPULATION, seed=SEED,
             supplier_style=style)
    return settings


def _ingest(settings):
    results = Ingestor(settings, open_keystore(settings, create_demo=True, roles=ALL_ROLES)).ingest_all()
    bad = [f"{r.delivery_id}: {r.reasons}" for r in results if r.status != "staged"]
    assert not bad, "\n".join(bad)
    return results


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """The small population in the native layout, ingested under the repository's contracts."""
    settings = _population(tmp_path_factory.mktemp("native") / "data", "native")
    _ingest(settings)
    return settings


def _samples(landing, table: str) -> list:
    """Every delivery of the table: the small population's monthly files are a few rows each, and
    a sample should show each column's variety (a real one is months of a full extract)."""
    return sorted(p for p in landing.iterdir() if normalised(p.name).startswith(table + "_"))


def _draft_all(landing, target):
    """A drafted, not yet approved contract for every feed: one sample per table."""
    for feed in feed_names(CONTRACTS):
        tables = list(require_contract(CONTRACTS, feed).tables)
        drafts = [draft_contract(_samples(landing / feed, t), feed, t, KINDS.get(feed, FeedKind.ACTIVITY))
                  for t in tables]
        write_draft(drafts, target / f"{feed}.odcs.yaml", KINDS.get(feed, FeedKind.ACTIVITY),
                    ig_from=CONTRACTS / f"{feed}.odcs.yaml")


def _approve(path) -> None:
    text = path.read_text()
    doc = yaml.safe_load(text)
    doc["status"] = "active"
    next(c for c in doc["customProperties"] if c["property"] == "approval")["value"] = APPROVAL
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _comparable(rows: list[dict]) -> list[tuple]:
    """Rows as sorted tuples of text, numbers compared as numbers (a drafted 'integer' cost and a
    native 'number' cost are the same value)."""
    def cell(v) -> str:
        if v is None or isinstance(v, bool):
            return repr(v)
        if isinstance(v, int | float):
            return repr(float(v))
        return v.isoformat() if isinstance(v, dt.date) else str(v)
    return sorted(tuple(sorted((k, cell(v)) for k, v in r.items())) for r in rows)


@pytest.mark.parametrize("style", [s for s in STYLES if s != "native"])
def test_drafted_approved_contracts_stage_a_supplier_style_exactly_as_the_native_layout(native, style, tmp_path):
    settings = _population(tmp_path / "data", style)
    shutil.copytree(native.data_root / "keys", settings.data_root / "keys")  # the same pseudonyms
    contracts = tmp_path / "contracts"
    _draft_all(settings.landing, contracts)

    # a draft is refused, by the checker and by every flow, until an IG lead approves it
    refused = check_contract(contracts / "ecds.odcs.yaml", settings.today())
    assert not refused.ok and {p.field.split(".")[0] for p in refused.problems} >= {"status", "customProperties[property=approval]"}
    with pytest.raises(ContractError):
        require_contract(contracts, "ecds", settings.today())

    # nothing from a sample is written into a draft
    drafted = "\n".join(p.read_text() for p in contracts.glob("*.yaml"))
    for feed_dir in settings.landing.iterdir():
        for sample in feed_dir.glob("*.csv"):
            encoding = "cp1252" if style == "spreadsheet" else "utf-8"
            with open(sample, newline="", encoding=encoding) as fh:
                rows = list(csv.reader(fh, delimiter="|" if style == "upper" else ";"))[1:40]
            values = {v.strip() for row in rows for v in row if len(v.strip()) >= 5}
            values -= {w.title() for w in GENDER_WORDS} | set(GENDER_WORDS)  # the firewall's own vocabulary
            assert not [v for v in values if v in drafted], sample.name

    for path in contracts.glob("*.odcs.yaml"):
        _approve(path)
        assert check_contract(path, settings.today()).ok, [str(p) for p in check_contract(path).problems]
    if style == "upper":  # approved drafts are as standard as ours: an outside ODCS linter finds no fault
        from tests.integration.test_contract_lint import _lint

        linted = _lint(contracts)
        assert len(linted) == 11 and all(r["result"] == "passed" and not r["not_passed"] for r in linted.values())
    supplier = settings.model_copy(update={"contracts_dir": contracts})
    _ingest(supplier)

    ours, theirs = staged_contents(native.data_root, CONTRACTS), staged_contents(supplier.data_root, contracts)
    assert set(ours) == set(theirs) and len(ours) > 100
    differ = [path for path in ours if _comparable(ours[path]) != _comparable(theirs[path])]
    assert not differ, differ[:5]


def test_the_cli_drafts_from_a_sample_without_showing_a_value_and_audits_it(native, tmp_path):
    sample_dir = tmp_path / "samples"
    sample_dir.mkdir()
    native_file = min((native.landing / "ecds").glob("*.csv"))
    sample = sample_dir / "ECDS_Extract_Southend_202304.csv"
    with open(native_file, newline="") as fh:
        rows = list(csv.reader(fh))
    with open(sample, "w", newline="", encoding="cp1252") as fh:
        csv.writer(fh, delimiter=";").writerows([[h.upper() for h in rows[0]] + [""]] + [r + [""] for r in rows[1:]])
    out = tmp_path / "drafts" / "ecds.odcs.yaml"
    done = run_cli("contracts", "draft", str(sample), "--feed", "ecds", "--table", "ecds_attendances",
                   "--ig-from", "ecds", "--out", str(out), root=tmp_path / "root")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert "pseudonymise-nhs-number" in printed and "age-at-activity" in printed and "refused until approved" in printed
    values = {v for r in rows[1:] for v in r if len(v) >= 5}
    assert not [v for v in values if v in printed or v in out.read_text()]
    doc = yaml.safe_load(out.read_text())
    layout = next(c for c in doc["schema"][0]["customProperties"] if c["property"] == "delivery")["value"]
    assert layout["delimiter"] == ";" and layout["filenames"][0]["periodFormat"] == "%Y%m"
    assert layout["ignoreColumns"] == [""]
    from pipeline.audit import AuditLog
    from tests.conftest import synthetic_settings as _s

    entries = [e for e in AuditLog(_s(tmp_path / "root").audit_log).entries() if e.event == "contract.drafted"]
    assert entries and entries[-1].details["samples"][0]["file"] == sample.name
    again = run_cli("contracts", "draft", str(sample), "--feed", "ecds", "--out", str(out), root=tmp_path / "root")
    assert again.returncode != 0 and "--force" in again.stdout + again.stderr
    assert pl.read_csv(native_file).height == len(rows) - 1
