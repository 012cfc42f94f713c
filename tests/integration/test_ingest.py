"""Ingest, library level: firewall output, opt-outs, idempotence, keys, rotation, rejections."""

import datetime as dt
import logging

import polars as pl
import pytest

from pipeline.errors import DeliveryQuarantined, KeyMismatch, OptOutListStale
from pipeline.ingest.ingest import Ingestor
from pipeline.keys import ALL_ROLES, KeyEncryptionKey, LocalKeystore, open_keystore
from tests.staged import staged_frame, staged_frames

FEEDS = ["postcode_lookup", "ndoo", "type1_optout", "sus_apc", "gp"]


def ingest(settings, feeds=FEEDS, keystore=None):
    keystore = keystore or open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    return Ingestor(settings, keystore).ingest_all(feeds)


def test_staged_spells_hold_only_transformed_identifiers(population_copy):
    results = ingest(population_copy)
    assert {r.status for r in results} == {"staged"}
    spells = staged_frames(population_copy, population_copy.staging / "sus_apc")
    assert {"nhs_number", "date_of_birth", "postcode", "patient_name"}.isdisjoint(spells.columns)
    assert {"person_pid", "nhs_number_status", "age", "age_status", "postcode_sector", "lsoa21cd", "ward_code",
            "imd_decile", "postcode_hash", "postcode_status", "gender", "source_row"} <= set(spells.columns)
    valid = spells.filter(pl.col("nhs_number_status") == "valid")
    assert valid["person_pid"].str.contains(r"^[0-9a-f]{32}$").all()
    assert spells.filter(pl.col("nhs_number_status") != "valid")["person_pid"].null_count() == \
        spells.filter(pl.col("nhs_number_status") != "valid").height  # never hash an invalid number
    assert set(spells["nhs_number_status"]) >= {"valid", "invalid_checksum"}
    assert set(spells["postcode_status"]) <= {"matched", "terminated", "unmatched", "malformed", "missing"}
    assert spells["postcode_status"].null_count() == 0 and spells["age_status"].null_count() == 0
    assert set(spells["gender"]) <= {"1", "2", "9", "X"}
    assert spells.filter(pl.col("age_status") == "valid")["age"].is_between(0, 120).all()
    assert spells["postcode_sector"].drop_nulls().str.contains(r"^SS\d \d$").all()
    assert spells["admission_date"].dtype == pl.Date and spells["spell_cost"].dtype == pl.Float64


def test_each_staged_file_is_encrypted_under_its_own_key(population_copy):
    import json

    import pyarrow.parquet as pq

    from pipeline.errors import KeystoreError
    from pipeline.ingest.staging import read_staged

    store = open_keystore(population_copy, create_demo=True, roles=ALL_ROLES)
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout", "sus_apc"], keystore=store)
    manifests = sorted((population_copy.staging / "sus_apc").rglob("*.manifest.json"))
    keys = [json.loads(m.read_text())["output"]["key"] for m in manifests]
    assert len(set(keys)) == len(keys) > 30 and all(k.startswith("staged:sus_apc/") for k in keys)
    parquet = manifests[0].with_name(json.loads(manifests[0].read_text())["output"]["file"])
    frame = staged_frame(population_copy, parquet, store)
    raw = parquet.read_bytes()
    assert frame.height and not any(v.encode() in raw for v in frame["person_pid"].drop_nulls().to_list()[:50])
    assert not any(v.encode() in raw for v in frame["spell_id"].to_list()[:50])
    with pytest.raises(OSError):  # no key, no footer, no data
        pq.read_table(parquet)
    store.destroy_data_key(keys[0])
    with pytest.raises(KeystoreError):
        read_staged(population_copy.staging, parquet, store)


def test_opt_outs_remove_people_and_only_counts_are_kept(population_copy):
    results = {r.delivery_id: r for r in ingest(population_copy)}
    ndoo = staged_frame(population_copy, next((population_copy.staging / "ndoo").rglob("*.parquet")))["person_pid"]
    t1 = staged_frame(population_copy, next((population_copy.staging / "type1_optout").rglob("*.parquet")))["person_pid"]
    spells = staged_frames(population_copy, population_copy.staging / "sus_apc")
    gp = staged_frames(population_copy, population_copy.staging / "gp" / "gp_registrations")
    assert not spells["person_pid"].is_in(ndoo).any()
    assert not gp["person_pid"].is_in(ndoo).any() and not gp["person_pid"].is_in(t1).any()
    assert spells["person_pid"].is_in(t1).any()  # type 1 applies to GP data only
    removed = sum(r.counts.get("opt_out_removed", {}).get("ndoo", 0) for r in results.values())
    assert removed > 0
    audit = population_copy.audit_log.read_text()
    for pid in ndoo.to_list()[:50]:
        assert pid not in audit


def _reference_age(dob: dt.date, on: dt.date) -> int:
    """Whole years on ``on``, the obvious way."""
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


def test_age_at_activity_matches_a_plain_computation_for_every_row(population_copy):
    """Every staged age against the date of birth and admission date in landing (a birthday
    later in the year than the admission must not count: May * 100 once overflowed Int8)."""
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout", "sus_apc"])
    checked = 0
    for manifest in (population_copy.staging / "sus_apc").rglob("*.manifest.json"):
        staged = staged_frame(population_copy, manifest.with_name(manifest.name.replace(".manifest.json", ".parquet")))
        raw = pl.read_csv(population_copy.landing / "sus_apc" / staged_name(manifest), infer_schema=False)
        for row in staged.select("source_row", "age", "admission_date").iter_rows(named=True):
            text = raw["date_of_birth"][row["source_row"]]
            if row["age"] is None or not text:
                continue
            dob = next(d for f in ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d") if (d := _try(text, f)))
            assert row["age"] == _reference_age(dob, row["admission_date"]), (row["source_row"], manifest.name)
            checked += 1
    assert checked > 500


def _try(text: str, fmt: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text.strip(), fmt).date()
    except ValueError:
        return None


def staged_name(manifest) -> str:
    import json

    return json.loads(manifest.read_text())["input"]["file"].split("/")[-1]


def test_stale_opt_out_list_refuses_to_stage(population_copy):
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout"])
    late = population_copy.model_copy(update={"as_of": dt.date.today() + dt.timedelta(days=60)})
    with pytest.raises(OptOutListStale) as exc:
        ingest(late, ["sus_apc"])
    assert "days old" in str(exc.value)
    assert not (population_copy.staging / "sus_apc").exists()


def test_missing_opt_out_list_refuses_to_stage(population_copy):
    with pytest.raises(OptOutListStale):
        ingest(population_copy, ["postcode_lookup", "sus_apc"])


def test_ingesting_twice_is_a_no_op(population_copy):
    ingest(population_copy)
    files = {p: p.read_bytes() for p in population_copy.staging.rglob("*.parquet")}
    again = ingest(population_copy)
    assert {r.status for r in again} == {"skipped"}
    assert {p: p.read_bytes() for p in population_copy.staging.rglob("*.parquet")} == files


def test_data_docs_render_only_what_is_new(population_copy, monkeypatch):
    """The first run renders the whole site; a later run renders the new deliveries' pages and
    the index and leaves earlier pages alone; a run that validated nothing new renders nothing."""
    from pipeline.ingest import _gx

    later = sorted((population_copy.landing / "sus_apc").glob("*.csv"))[-3:]
    aside = population_copy.data_root / "aside"
    aside.mkdir()
    for path in later:
        path.rename(aside / path.name)
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout", "sus_apc"])
    site = population_copy.validation_dir / "gx" / "uncommitted" / "data_docs" / "local_site"
    pages = {p: p.stat().st_mtime_ns for p in (site / "validations").rglob("*.html")}
    assert len(pages) > 30 and (site / "index.html").exists()

    for path in later:
        (aside / path.name).rename(path)
    rendered = []
    real_build = _gx.GxProject.build_data_docs

    def spy(self):
        rendered.append(_gx.unrendered(self.project_dir))
        return real_build(self)

    monkeypatch.setattr(_gx.GxProject, "build_data_docs", spy)
    results = ingest(population_copy, ["sus_apc"])
    assert sorted(r.file for r in results if r.status == "staged") == sorted(p.name for p in later)
    (new_results, _suites), = rendered
    assert len(new_results) == 3  # only the three new deliveries' pages were due
    now = {p: p.stat().st_mtime_ns for p in (site / "validations").rglob("*.html")}
    assert len(now) == len(pages) + 3 and all(now[p] == t for p, t in pages.items())  # the rest untouched
    index = (site / "index.html").read_text()
    assert all(result.parts[1] in index for result in new_results)  # the index links the new runs
    assert _gx.unrendered(population_copy.validation_dir) == ([], set())

    opened = []
    monkeypatch.setattr(_gx.GxProject, "__init__", lambda self, project_dir: opened.append(project_dir))
    again = ingest(population_copy, ["sus_apc"])
    assert {r.status for r in again} == {"skipped"} and opened == []  # nothing new: GX not even opened


def test_a_changed_file_under_the_same_version_is_quarantined(population_copy):
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout", "sus_apc"])
    path = min((population_copy.landing / "sus_apc").glob("*.csv"))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # one row fewer, same name
    (result,) = [r for r in ingest(population_copy, ["sus_apc"]) if r.file == path.name]
    assert result.status == "quarantined" and "new version" in result.reasons[0]


def test_data_under_another_key_is_refused_by_fingerprint(population_copy, tmp_path):
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout"])
    other = LocalKeystore.create(tmp_path / "other.json", KeyEncryptionKey(passphrase="another"))
    with pytest.raises(KeyMismatch) as exc:
        ingest(population_copy, ["sus_apc"], keystore=other)
    assert "fingerprint" in str(exc.value)


def test_rotation_overlap_writes_an_old_to_new_bridge(population_copy):
    store = open_keystore(population_copy, create_demo=True, roles=ALL_ROLES)
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout", "sus_apc"], keystore=store)
    old = staged_frames(population_copy, population_copy.staging / "sus_apc")
    store.rotate()
    # Re-ingest the opt-out lists under the new key, then GP data during the overlap.
    for manifest in (population_copy.staging / "ndoo").rglob("*.manifest.json"):
        manifest.unlink()
    for manifest in (population_copy.staging / "type1_optout").rglob("*.manifest.json"):
        manifest.unlink()
    ingest(population_copy, ["ndoo", "type1_optout", "gp"], keystore=store)
    bridges = list((population_copy.staging / "_bridges").rglob("*.parquet"))
    assert bridges
    bridge = pl.concat([staged_frame(population_copy, p) for p in bridges]).unique()
    gp = staged_frames(population_copy, population_copy.staging / "gp" / "gp_registrations")
    assert bridge["old_pid"].n_unique() == bridge.height  # each old pseudonym has one successor
    t1_new = staged_frame(population_copy, next((population_copy.staging / "type1_optout").rglob("*.parquet")))["person_pid"]
    mapped = old.join(bridge, left_on="person_pid", right_on="old_pid")
    # Everyone with a hospital spell is registered with a GP, unless a type 1 objection removed
    # their GP rows: through the bridge, old spells land on the same people's new pseudonyms.
    # (The synthetic GP list mistypes or omits about 0.3% of NHS numbers; those people have no
    # GP pseudonym, so a few spells in a thousand may not find one.)
    assert mapped.height > 0
    found = mapped["new_pid"].is_in(gp["person_pid"]) | mapped["new_pid"].is_in(t1_new)
    assert found.mean() > 0.99, (found.sum(), found.len())
    pin = (population_copy.staging / "_keys.json").read_text()
    assert "linkage@v2" in pin and "previous" in pin


def test_an_impossible_date_names_column_and_rule_not_the_value(population_copy, caplog):
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout"])
    path = sorted((population_copy.landing / "sus_apc").glob("*.csv"))[3]
    text = path.read_text().splitlines()
    header = text[0].split(",")
    first = text[1].split(",")
    first[header.index("admission_date")] = "2025-02-30"  # right shape, not a real date
    text[1] = ",".join(first)
    path.write_text("\n".join(text) + "\n")
    with caplog.at_level(logging.WARNING):
        (result,) = [r for r in ingest(population_copy, ["sus_apc"]) if r.file == path.name]
    assert result.status == "quarantined"
    assert "column 'admission_date', rule 'admission_date_parses'" in result.reasons[0]
    assert "2025-02-30" not in result.reasons[0]
    assert "admission_date_parses" in caplog.text and "2025-02-30" not in caplog.text
    with pytest.raises(DeliveryQuarantined) as exc:
        result.raise_if_quarantined()
    assert "column 'admission_date'" in str(exc.value) and "2025-02-30" not in str(exc.value)
    assert not (population_copy.staging / "sus_apc" / "sus_apc_spells" / f"{path.stem.split('_')[-2]}__v1.parquet").exists()


def test_a_delivery_failing_the_gate_in_the_single_pass_stages_nothing(population_copy):
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout"])
    path = sorted((population_copy.landing / "sus_apc").glob("*.csv"))[5]
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("gender")] = "Q"
    lines[1] = ",".join(row)
    path.write_text("\n".join(lines) + "\n")
    results = {r.file: r for r in ingest(population_copy, ["sus_apc"])}
    bad = results[path.name]
    assert bad.status == "quarantined" and "rule 'gender_code'" in bad.reasons[0]
    folder = population_copy.staging / "sus_apc" / "sus_apc_spells"
    period = path.stem.split("_")[-2]
    assert not (folder / f"{period}__v1.parquet").exists() and not (folder / f"{period}__v1.manifest.json").exists()
    assert not list(folder.glob(".tmp-*"))
    assert sum(r.status == "staged" for r in results.values()) == len(results) - 1


def test_a_rerun_leaves_the_ingested_markers_alone(population_copy):
    """Issue 17 item 2: a skipped delivery's marker keeps its first ``marked_at``, or the raw
    landing file's destruction date would move on with every scheduled run."""
    import json
    import time

    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout", "gp"])
    markers = sorted((population_copy.landing / "_ingested").rglob("*.json"))
    before = {m: json.loads(m.read_text())["marked_at"] for m in markers}
    assert len(before) >= 4
    time.sleep(1.1)  # marked_at has one-second resolution: a rewrite would show
    assert {r.status for r in ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout", "gp"])} == {"skipped"}
    assert {m: json.loads(m.read_text())["marked_at"] for m in markers} == before


def test_a_gx_file_half_written_by_a_killed_run_does_not_stop_the_next(population_copy):
    """Found by the kill-and-rerun flow test (a fresh-clone CI run): a run killed while GX wrote a
    suite left a file every later run failed on. Suites, validation definitions and checkpoints
    come from the contracts: a damaged one is dropped and made again; results are kept."""
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout"])
    gx_dir = population_copy.validation_dir / "gx"
    damaged = []
    for store, text in (("expectations", ""), ("validation_definitions", '{"name": "validate-'),
                        ("checkpoints", "null")):
        path = min((gx_dir / store).glob("*.json"))
        path.write_text(text)
        damaged.append(path)
    results = sorted((gx_dir / "uncommitted" / "validations").rglob("*.json"))
    staged = ingest(population_copy, ["sus_apc"])
    assert staged and {r.status for r in staged} == {"staged"}
    assert set(results) < set((gx_dir / "uncommitted" / "validations").rglob("*.json"))
    again = [p for p in damaged if p.exists()]
    import json
    assert all(isinstance(json.loads(p.read_text()), dict) for p in again)


@pytest.mark.parametrize("cut", ["empty", "half"])
def test_a_gx_config_truncated_by_a_killed_run_does_not_stop_the_next(population_copy, cut):
    """Found by the kill-and-rerun flow test (this session's full run): GX rewrites
    great_expectations.yml in place, truncating it first; a run killed then left an empty file, and
    the re-run failed with "Error while processing DataContextConfig: _schema". The last loadable
    copy is put back (its contents are derived: the datasource and its assets are added again as
    needed); with no copy, the damaged file is set aside and GX makes a new one."""
    ingest(population_copy, ["postcode_lookup", "ndoo", "type1_optout"])
    config = population_copy.validation_dir / "gx" / "great_expectations.yml"
    text = config.read_text()
    config.write_text("" if cut == "empty" else text[: len(text) // 2])
    staged = ingest(population_copy, ["sus_apc"])
    assert staged and {r.status for r in staged} == {"staged"}
    assert config.read_text().count("config_version") == 1
    kept = config.with_name(config.name + ".last-good")
    kept.unlink()  # now with no good copy to put back
    config.write_text("")
    staged = ingest(population_copy, ["sus_op"])
    assert staged and {r.status for r in staged} == {"staged"}
    assert config.with_name(config.name + ".damaged").exists()
