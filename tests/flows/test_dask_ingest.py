"""With a Dask scheduler configured, the ingest flow's per-delivery work runs on the cluster's
workers (a local two-worker cluster here) and stages exactly what the local path staged (the
session's clean ingest of the same landing, under the same keystore)."""

import shutil

import distributed

from tests.cli import SYNTHETIC, run_cli
from tests.conftest import CONTRACTS, copy_root
from tests.staged import feed_options, only_feeds, staged_contents

#: The lookup and lists, then one activity feed: 36 deliveries for the workers to share.
FEEDS = ("postcode_lookup", "ndoo", "type1_optout", "sus_apc")
ENV = {**SYNTHETIC, "GX_ANALYTICS_ENABLED": "false"}


def _ingested_here() -> int:
    """Ingestors a worker process built (one per data root and flow run it served)."""
    from pipeline.flows import ingest

    return len(ingest._INGESTORS)


def test_dask_workers_stage_exactly_what_local_threads_stage(population_root, staged_root, tmp_path, monkeypatch):
    on_dask = copy_root(population_root, tmp_path / "dask")
    shutil.copytree(staged_root / "keys", on_dask / "keys")  # the same keystore, so the same pseudonyms

    for name, value in ENV.items():  # the workers' own environment, as on a real cluster
        monkeypatch.setenv(name, value)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        out = run_cli("ingest", *feed_options(FEEDS), root=on_dask, env={**ENV, "SAFEHAVEN_DASK_ADDRESS": cluster.scheduler_address})
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "Dask cluster" in out.stdout
        per_worker = client.run(_ingested_here)
    assert len(per_worker) == 2 and all(n >= 1 for n in per_worker.values()), per_worker  # both workers did work

    local = only_feeds(staged_contents(staged_root, CONTRACTS), FEEDS)
    on_cluster = staged_contents(on_dask, CONTRACTS)
    assert len(local) > 35 and on_cluster.keys() == local.keys()
    assert on_cluster == local
    assert "Ingest: landing -> staging" in out.stdout and "sus_apc" in out.stdout  # progress and summary from workers
