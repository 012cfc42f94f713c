"""Killing the ingest flow mid-run and running it again gives the same staged rows as one
clean run, and nothing twice."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from pipeline.settings import Settings
from pipeline.synth import EXTRACT_DATE, generate
from tests.conftest import CONTRACTS
from tests.flows.conftest import run_cli
from tests.staged import staged_contents, staged_frame

ENV = {"SAFEHAVEN_AS_OF": EXTRACT_DATE.isoformat(), "SAFEHAVEN_ALLOW_SYNTHETIC_NHS_NUMBERS": "true"}


def test_kill_mid_run_then_rerun_equals_one_clean_run(tmp_path):
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    generate(Settings(data_root=crashed, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE), population=1200, seed=21)
    shutil.copytree(crashed / "landing", clean / "landing")

    env = {**os.environ, **ENV, "SAFEHAVEN_DATA_ROOT": str(crashed), "GX_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "ingest"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((crashed / "staging").rglob("*.manifest.json"))) < 40:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    staged_before = len(list((crashed / "staging").rglob("*.manifest.json")))
    assert 40 <= staged_before < 200  # really killed mid-run

    again = run_cli("ingest", root=crashed, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    shutil.copytree(crashed / "keys", clean / "keys")  # the same keystore, so the same pseudonyms
    once = run_cli("ingest", root=clean, env=ENV)
    assert once.returncode == 0, once.stderr[-3000:]

    a, b = staged_contents(crashed, CONTRACTS), staged_contents(clean, CONTRACTS)
    assert a.keys() == b.keys() and len(a) > 200
    assert a == b
    assert not list((crashed / "staging").rglob(".tmp-*"))
    # Nothing twice: one manifest per delivery, rows out as the manifests say.
    for manifest in (crashed / "staging").rglob("*.manifest.json"):
        doc = json.loads(manifest.read_text())
        parquet = manifest.with_name(manifest.name.replace(".manifest.json", ".parquet"))
        assert staged_frame(Settings(data_root=crashed, contracts_dir=CONTRACTS), parquet).height == doc["rows_out"]
