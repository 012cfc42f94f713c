"""Killing the ingest flow mid-run and running it again gives the same staged rows as one
clean run (the session's), and nothing twice. The kill lands at a fixed point
(``pipeline.failpoints``): the 40th delivery's encrypted file is in place and its manifest is
not. Six feeds (lists, lookup and three activity feeds) are enough for the property."""

import json
import shutil

from tests.cli import SYNTHETIC, run_cli, run_until_crash
from tests.conftest import CONTRACTS, copy_root, synthetic_settings
from tests.staged import feed_options, only_feeds, staged_contents, staged_frame


def test_kill_mid_run_then_rerun_equals_one_clean_run(population_root, staged_root, tmp_path):
    crashed = copy_root(population_root, tmp_path / "crashed")
    shutil.copytree(staged_root / "keys", crashed / "keys")  # the clean run's keystore: the same pseudonyms

    run_until_crash("ingest", *feed_options(), root=crashed, crash_at="ingest.committed:40", env=SYNTHETIC)
    manifests = list((crashed / "staging").rglob("*.manifest.json"))
    files = list((crashed / "staging").rglob("*.parquet"))
    # Where the kill landed: 40 files committed (41 if the other worker was one step behind), the
    # 40th without its manifest (and the one before it too, if that worker was mid-write).
    assert 40 <= len(files) <= 41 and 38 <= len(manifests) <= 39, (len(files), len(manifests))

    again = run_cli("ingest", *feed_options(), root=crashed, env=SYNTHETIC)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    a, b = staged_contents(crashed, CONTRACTS), only_feeds(staged_contents(staged_root, CONTRACTS))
    assert a.keys() == b.keys() and len(a) > 70
    assert a == b
    assert not list((crashed / "staging").rglob(".tmp-*"))
    # Nothing twice: one manifest per delivery, rows out as the manifests say.
    settings = synthetic_settings(crashed)
    for manifest in (crashed / "staging").rglob("*.manifest.json"):
        doc = json.loads(manifest.read_text())
        parquet = manifest.with_name(manifest.name.replace(".manifest.json", ".parquet"))
        assert staged_frame(settings, parquet).height == doc["rows_out"]
