"""With a Dask scheduler configured, the ingest flow's per-delivery work runs on the cluster's
workers (a local two-worker cluster here) and stages exactly what the local path stages."""

import shutil

import distributed

from pipeline.settings import Settings
from pipeline.synth import EXTRACT_DATE, generate
from tests.conftest import CONTRACTS
from tests.flows.conftest import run_cli
from tests.staged import staged_contents

#: The lists and lookup the activity feeds need, then three activity feeds (about 100 deliveries).
FEEDS = [arg for feed in ("postcode_lookup", "ndoo", "type1_optout", "gp", "sus_apc", "ecds") for arg in ("--feed", feed)]
ENV = {"SAFEHAVEN_AS_OF": EXTRACT_DATE.isoformat(), "SAFEHAVEN_ALLOW_SYNTHETIC_NHS_NUMBERS": "true",
       "GX_ANALYTICS_ENABLED": "false"}


def _ingested_here() -> int:
    """Ingestors a worker process built (one per data root and flow run it served)."""
    from pipeline.flows import ingest

    return len(ingest._INGESTORS)


def test_dask_workers_stage_exactly_what_local_threads_stage(tmp_path, monkeypatch):
    local, on_dask = tmp_path / "local", tmp_path / "dask"
    generate(Settings(data_root=local, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE), population=800, seed=33)
    shutil.copytree(local / "landing", on_dask / "landing")

    first = run_cli("ingest", *FEEDS, root=local, env=ENV)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.copytree(local / "keys", on_dask / "keys")  # the same keystore, so the same pseudonyms

    for name, value in ENV.items():  # the workers' own environment, as on a real cluster
        monkeypatch.setenv(name, value)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        out = run_cli("ingest", *FEEDS, root=on_dask, env={**ENV, "SAFEHAVEN_DASK_ADDRESS": cluster.scheduler_address})
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "Dask cluster" in out.stdout
        per_worker = client.run(_ingested_here)
    assert len(per_worker) == 2 and all(n >= 1 for n in per_worker.values()), per_worker  # both workers did work

    a, b = staged_contents(local, CONTRACTS), staged_contents(on_dask, CONTRACTS)
    assert len(a) > 60 and a.keys() == b.keys()
    assert a == b
    assert "Ingest: landing -> staging" in out.stdout and "sus_apc" in out.stdout  # progress and summary from workers
