"""An outside ODCS tool reads our contracts as we do: datacontract-cli (its own environment, built
by `make tools` from tools/datacontract/requirements.lock) lints every contract under contracts/
valid with no warnings. Issue 18: 8 of 10 feed contracts had range and date-format rules in
argument forms no other tool can run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import CONTRACTS

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / ".venv-datacontract" / "bin" / "python"


def _lint(folder: Path) -> dict[str, dict]:
    assert TOOL.exists(), "datacontract-cli is not installed: run `make tools` (make test does)"
    done = subprocess.run([str(TOOL), str(ROOT / "tools" / "datacontract" / "lint_all.py"), str(folder)],
                          check=False, capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines and "files" in lines[-1], done.stderr[-2000:]
    return {Path(r["file"]).relative_to(folder).as_posix(): r for r in lines[:-1]}


def test_datacontract_cli_finds_every_contract_valid_with_no_warnings_and_flags_the_old_forms(tmp_path):
    folder = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, folder)
    # the form the contracts used before: a date rule with a 'formats' argument, a range as arguments
    old = yaml.safe_load((CONTRACTS / "ecds.odcs.yaml").read_text())
    rule = next(q for p in old["schema"][0]["properties"] if p["name"] == "arrival_date" for q in p["quality"])
    rule["arguments"] = {"formats": ["%Y-%m-%d"]}
    (folder / "legacy").mkdir()
    (folder / "legacy" / "ecds.odcs.yaml").write_text(yaml.safe_dump(old, sort_keys=False))

    results = _lint(folder)
    ours = {name: r for name, r in results.items() if not name.startswith("legacy/")}
    expected = {p.relative_to(CONTRACTS).as_posix() for p in CONTRACTS.rglob("*.odcs.yaml")}
    assert set(ours) == expected and len(expected) >= 14
    unclean = {name: r["not_passed"] for name, r in ours.items() if r["result"] != "passed" or r["not_passed"]}
    assert not unclean, unclean
    legacy = results["legacy/ecds.odcs.yaml"]
    assert legacy["result"] == "warning"
    assert any("arrival_date" in (c["name"] or "") and "pattern" in (c["reason"] or "") for c in legacy["not_passed"])
