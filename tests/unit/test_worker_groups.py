"""`make test` runs on two workers and relies on every user of a costly session fixture running
on the same worker (else the demo and the staged population are built twice). pytest-xdist
groups silently stop working with some pytest releases; this checks it still happens."""

import re
import subprocess
import sys

from tests.conftest import REPO

CONFTEST = """
import pytest
from tests.conftest import pytest_collection_modifyitems  # noqa: F401 - the hook under test

@pytest.fixture(scope="session")
def demo_root():
    return "demo"

@pytest.fixture(scope="session")
def staged_root():
    return "staged"
"""
TESTS = "".join(f"def test_demo_{i}(demo_root): pass\ndef test_staged_{i}(staged_root): pass\ndef test_free_{i}(): pass\n"
                for i in range(4))


def test_users_of_a_shared_fixture_run_on_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_groups.py").write_text(TESTS)
    out = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), str(tmp_path)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ran = re.findall(r"\[(gw\d)\].*PASSED .*::test_(demo|staged|free)_\d", out.stdout)
    assert len(ran) == 12, out.stdout[-2000:]
    for group in ("demo", "staged"):
        assert len({worker for worker, g in ran if g == group}) == 1, out.stdout[-2000:]
