"""Lint every ODCS contract under a folder with datacontract-cli, the way `datacontract lint` does.

Run with the tool's own environment (`make tools` builds .venv-datacontract from the lock beside
this file): `.venv-datacontract/bin/python tools/datacontract/lint_all.py contracts`. Prints one
JSON object per contract file (result, and every check that did not pass) and exits 1 when any
contract is invalid or has a warning. One process for every file: the tool's start-up is most of
its cost.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from datacontract.data_contract import DataContract


def main(folder: str) -> int:
    bad = 0
    files = sorted(Path(folder).rglob("*.odcs.yaml"))
    for path in files:
        run = DataContract(data_contract_file=str(path), all_errors=True).lint()
        unclean = [{"result": str(c.result.value if hasattr(c.result, "value") else c.result), "name": c.name,
                    "field": c.field, "reason": c.reason} for c in run.checks
                   if str(getattr(c.result, "value", c.result)) != "passed"]
        result = str(getattr(run.result, "value", run.result))
        bad += result != "passed" or bool(unclean)
        sys.stdout.write(json.dumps({"file": str(path), "result": result, "checks": len(run.checks),
                                     "not_passed": unclean}) + "\n")
    sys.stdout.write(json.dumps({"files": len(files), "unclean": bad}) + "\n")
    return 1 if bad or not files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "contracts"))
