"""Flow tests run the real Prefect flow in a subprocess (`safehaven ...`), each with its own
ephemeral Prefect server and database under its data root, as `make demo` does."""

import os
import subprocess
import sys

import pytest


def run_cli(*args, root, env=None, timeout=900):
    full = {**os.environ, "SAFEHAVEN_DATA_ROOT": str(root), "GX_ANALYTICS_ENABLED": "false", **(env or {})}
    full.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], check=False, capture_output=True,
                          text=True, env=full, timeout=timeout)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """`safehaven demo` on 1,500 people: landing -> staging through the Prefect flow."""
    root = tmp_path_factory.mktemp("demo") / "data"
    out = run_cli("demo", "--population", "1500", root=root)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root
