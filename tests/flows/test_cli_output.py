"""What a person sees at the console (issue 17 items 5, 6 and 11): one clear block per problem,
no traceback, no Prefect noise; tracebacks go to the run's log file under the data root; a bad
delivery is quarantined and the run goes on, exiting non-zero at the end."""

from __future__ import annotations

import json

from tests.cli import SYNTHETIC, run_cli
from tests.conftest import ECDS_ROW, copy_root
from tests.integration.test_fail_closed import SPELLS, keep_only

FEEDS = ["postcode_lookup", "ndoo", "type1_optout", "sus_apc"]
NOISE = ("Traceback", "Error flushing", "CancelledError", "Task run failed", "Finished in state Failed")


def _feeds(*feeds):
    return [a for f in feeds for a in ("--feed", f)]


def _run_logs(root):
    return sorted((root / "logs").glob("*.log"))


def test_an_undecodable_delivery_is_quarantined_the_run_goes_on_and_the_console_stays_clean(population_root, tmp_path):
    root = copy_root(population_root, tmp_path / "data", without=("synthetic-truth",))
    keep_only(root / "landing", "sus_apc", SPELLS)
    path = root / "landing" / "sus_apc" / "sus_apc_spells_2024-01_v1.csv"
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b",", b",Caf\xe9 ", 1)
    path.write_bytes(b"\n".join(lines))
    out = run_cli("ingest", *_feeds(*FEEDS), root=root, env=SYNTHETIC, prefect="ephemeral")
    console = out.stdout + out.stderr
    assert out.returncode == 21, console[-3000:]
    assert not [n for n in NOISE if n in console], console[-3000:]
    assert "sus_apc/sus_apc_spells/2024-01/v1" in console and "row 4" in console and "latin-1" in console.lower()
    assert "1 delivery quarantined" in console
    staged = list((root / "staging" / "sus_apc").rglob("*.manifest.json"))
    assert len(staged) == len(list((root / "landing" / "sus_apc").glob("*.csv")))  # all the others
    assert _run_logs(root), "the run's log file is under <data root>/logs"

    again = run_cli("ingest", *_feeds(*FEEDS), root=root, env=SYNTHETIC)  # nothing new: a clean success
    assert again.returncode == 0 and not [n for n in NOISE if n in again.stdout + again.stderr]


def test_a_user_error_is_one_block_and_its_traceback_goes_to_the_run_log(population_root, tmp_path):
    root = copy_root(population_root, tmp_path / "data", without=("synthetic-truth",))
    out = run_cli("ingest", *_feeds("ndoo"), root=root,
                  env={**SYNTHETIC, "SAFEHAVEN_AS_OF": "2027-10-01"})
    console = out.stdout + out.stderr
    assert out.returncode == 11, console[-3000:]
    assert "expired on 2027-09-30" in console
    assert not [n for n in NOISE if n in console], console[-3000:]
    assert len(console.strip().splitlines()) <= 12, console
    logs = _run_logs(root)
    assert logs and "Traceback" in logs[-1].read_text() and "ContractExpired" in logs[-1].read_text()
    assert str(logs[-1].relative_to(root)) in console or logs[-1].name in console
    assert oct(logs[-1].stat().st_mode & 0o777) == "0o600"


def test_validate_leaves_a_file_outside_landing_where_it_is(tmp_path):
    """Item 5: `safehaven validate PATH` moved the user's own file into landing/_quarantine, and
    a quarantine exited 2 where the README lists 21."""
    mine = tmp_path / "mine" / "ecds_attendances_2025-06_v1.csv"
    mine.parent.mkdir()
    row = dict(ECDS_ROW, patient_name="Jean Smith")
    mine.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
    before = mine.read_bytes()
    root = tmp_path / "data"
    out = run_cli("validate", str(mine), "--feed", "ecds", root=root, env=SYNTHETIC)
    assert out.returncode == 21, out.stdout + out.stderr
    assert mine.read_bytes() == before
    assert not (root / "landing" / "_quarantine").exists()
    assert "patient_name" in out.stdout and "left in place" in out.stdout
    assert "Jean Smith" not in out.stdout + out.stderr
    events = [json.loads(line)["event"] for line in (root / "audit" / "audit.jsonl").read_text().splitlines()]
    assert "delivery.failed_validation" in events and "delivery.quarantined" not in events
