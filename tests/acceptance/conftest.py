"""One `safehaven demo` run (1,500 people, as `make demo` runs it) shared by the acceptance tests
that only read what it produced; tests that change anything work on a copy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: What `safehaven demo` sets for itself, for the commands tests run on its data root afterwards.
SYNTHETIC = {"SAFEHAVEN_ALLOW_SYNTHETIC_NHS_NUMBERS": "true", "SAFEHAVEN_AS_OF": "2026-04-15"}


def run_safehaven(*args, root: Path, timeout=600, env: dict | None = None):
    env = {**os.environ, "SAFEHAVEN_DATA_ROOT": str(root), "GX_ANALYTICS_ENABLED": "false", **(env or {})}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], check=False, capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """(data root, the demo's stdout)."""
    root = tmp_path_factory.mktemp("acceptance") / "data"
    out = run_safehaven("demo", "--population", "1500", root=root)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root, out.stdout
