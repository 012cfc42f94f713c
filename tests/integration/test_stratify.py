"""Stratify on the small linked population: model card, tiers in the person mart, signed packs,
re-identification by list-match only (audited without NHS numbers), and external scores
flowing through the same tiers, packs and re-identification."""

import datetime as dt
import json

import polars as pl
import pytest

from pipeline.errors import UserError
from pipeline.linkage import open_warehouse, publish
from pipeline.marts import run_query
from pipeline.risk import (
    PackInvalid,
    compare_with_planted,
    packs_step,
    reidentify,
    score_step,
    verify_pack,
)
from pipeline.risk.packs import latest_pack, public_key_of
from tests.browser import render
from tests.conftest import stratified_copy
from tests.leakscan import collect, scan


@pytest.fixture(scope="module")
def stratified(stratified, tmp_path_factory):
    """This module's copy of the stratified root (its tests re-identify and re-score)."""
    return stratified_copy(stratified, tmp_path_factory)


def _registrations(settings) -> pl.DataFrame:
    """NHS number and practice of current registrations, from the practice's own (landing) list."""
    path = next((settings.landing / "gp").glob("gp_registrations_*.csv"))
    return pl.read_csv(path, infer_schema=False).filter(pl.col("registration_end").is_null()) \
        .select("nhs_number", "practice_code").drop_nulls()


def test_model_card_reports_the_temporal_validation_and_renders(stratified, tmp_path):
    settings, keystore, audit, trained, _, _ = stratified
    card = json.loads((settings.reports_dir / "models" / "latest.json").read_text())
    assert card["version"] == trained["version"]
    assert card["data"]["training"]["reference_date"] == "2024-04-01"
    assert card["data"]["validation"]["reference_date"] == "2025-04-01"
    assert card["data"]["scoring_date"] == "2026-04-01"
    assert set(card["validation"]) == {"logistic", "gradient-boosted"}
    left_out = {f["name"]: f["left_out_because"] for f in card["features"] if not f["used"]}
    assert set(left_out) == {"emergency_admissions_24m"} and "2023-04-01" in left_out["emergency_admissions_24m"]
    assert {c["term"] for c in card["validated_coefficients"]} >= {"intercept", "log1p_emergency_admissions_12m"}
    v = card["validation"][card["model"]["kind"]]
    assert 0.6 < v["auroc"] < 0.9 and v["auroc_ci"][0] < v["auroc"] < v["auroc_ci"][1]
    assert [s["top_share"] for s in v["top_shares"]] == [0.005, 0.01, 0.02, 0.05, 0.2]
    assert set(v["subgroups"]) == {"age_band", "gender", "imd_quintile"}
    # The planted ceiling is added only by the synthetic-data comparison.
    assert card["planted_ceiling"] is None
    headline = compare_with_planted(settings, keystore, audit, settings.synthetic_truth)
    assert 0.6 < headline["planted_ceiling_auroc"] < 0.9
    dom, png = render(settings.reports_dir / "models" / "latest.html", tmp_path)
    assert "planted model (ceiling)" in dom and dom.count("<svg") >= 2 and "Coefficients" in dom
    assert len(png) > 20_000


def test_tiers_reach_the_person_mart_and_only_the_mart_pseudonyms(stratified):
    settings, keystore, audit, _trained, scored, _ = stratified
    result = run_query(settings, keystore, "analyst", "SELECT tier, count(*) AS n, min(score) AS lo, max(score) AS hi "
                       "FROM risk_scores GROUP BY tier", audit)
    tiers = {r["tier"]: r for r in result.table.to_pylist()}
    assert {t: r["n"] for t, r in tiers.items()} == scored["tiers"]
    assert tiers["very-high"]["lo"] >= tiers["high"]["hi"] >= tiers["high"]["lo"] >= tiers["moderate"]["hi"]
    joined = run_query(settings, keystore, "analyst", "SELECT count(*) AS n FROM risk_scores JOIN people "
                       "USING (person_id)", audit).table.to_pylist()[0]["n"]
    assert joined == sum(scored["tiers"].values())
    drivers = run_query(settings, keystore, "analyst", "SELECT drivers FROM risk_scores WHERE tier = 'very-high'",
                        audit).table.column("drivers").to_pylist()
    assert all(d and "=" in d for d in drivers)


def test_packs_verify_and_hold_only_their_practices_patients(stratified):
    settings, keystore, _, _, scored, packs = stratified
    folder = settings.case_finding_dir / packs["folder"]
    public = public_key_of(keystore)
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        expected = dict(con.execute("SELECT practice_code, count(*) FROM risk_scores WHERE tier IN "
                                    "('very-high', 'high') GROUP BY ALL").fetchall())
    finally:
        con.close()
    seen = {}
    for path in folder.glob("*.pack.json"):
        manifest = verify_pack(path, public)
        seen[manifest["practice"]] = manifest["rows"]
        assert manifest["model_version"] == scored["model_version"]
    assert seen == expected and sum(seen.values()) == packs["patients"]


def test_a_pack_does_not_join_to_the_person_mart(stratified):
    """Issue 20: a pack and the person mart use different pseudonyms, but packs used to carry the
    exact score and rank, so practice + rank (or score) found each pack row's mart row. Tried here
    as an analyst holding a leaked pack would: on every value the two share."""
    from pipeline.risk.packs import DRIVERS_MIN, read_pack

    settings, keystore, audit, _, _, packs = stratified
    mart = run_query(settings, keystore, "super-user", "SELECT registered_practice AS practice, tier, drivers, score, "
                     "tier_rank FROM risk_scores", audit).table
    mart = pl.from_arrow(mart).with_columns(pl.col("drivers").fill_null(""))
    scores = {f"{v:.4f}" for v in mart["score"].to_list()} | {str(v) for v in mart["score"].to_list()}
    ranks = {str(v) for v in mart["tier_rank"].to_list()}
    rows = []
    for path in (settings.case_finding_dir / packs["folder"]).glob("*.pack.json"):
        manifest, pack = read_pack(path, public_key_of(keystore))
        assert set(pack.columns) == {"pseudonym", "tier", "drivers"}
        # Nothing in the pack is a mart score or rank, and its order is the pseudonyms', not the scores'.
        assert not ({v for c in pack.columns for v in pack[c].to_list()} & (scores | ranks))
        order = pack.with_row_index("i").sort(pl.col("tier").replace_strict({"very-high": 0, "high": 1}), "pseudonym")
        assert order["i"].to_list() == list(range(pack.height))
        rows.append(pack.with_columns(practice=pl.lit(manifest["practice"])).fill_null(""))
    packs_rows = pl.concat(rows)
    # Where drivers are shown, at least DRIVERS_MIN mart people share practice, tier and drivers.
    shown = packs_rows.filter(pl.col("drivers") != "")
    matches = shown.join(mart, on=["practice", "tier", "drivers"], how="left").group_by("pseudonym").len()
    assert matches.height == shown.height and (matches["len"] >= DRIVERS_MIN).all()
    # Where they are not, only practice and tier are left: as many candidates as that practice has in the tier.
    hidden = packs_rows.filter(pl.col("drivers") == "").group_by("practice", "tier").len()
    candidates = hidden.join(mart.group_by("practice", "tier").len(), on=["practice", "tier"], suffix="_mart")
    assert (candidates["len_mart"] >= candidates["len"]).all() and candidates.height == hidden.height


def _list_file(tmp_path, numbers, header=True):
    path = tmp_path / "list.csv"
    path.write_text(("nhs_number\n" if header else "") + "\n".join(numbers) + "\n")
    return path


def _pack_practice(settings, packs):
    folder = settings.case_finding_dir / packs["folder"]
    sizes = {p.name.split(".")[0]: json.loads(p.read_text())["manifest"]["rows"] for p in folder.glob("*.pack.json")}
    return max(sizes, key=sizes.get)


def test_a_practice_cannot_get_another_practices_patients_and_every_request_is_audited(stratified, tmp_path):
    settings, keystore, audit, _, _, packs = stratified
    practice = _pack_practice(settings, packs)
    regs = _registrations(settings)
    own = regs.filter(pl.col("practice_code") == practice)["nhs_number"].to_list()
    others = regs.filter(pl.col("practice_code") != practice)["nhs_number"].to_list()
    # The list holds the practice's own patients and every other practice's too.
    result = reidentify(settings, keystore, audit, practice=practice, list_path=_list_file(tmp_path, own + others),
                        requester="Dr Test", purpose="direct care: case finding")
    returned = pl.read_csv(result.output, infer_schema=False)
    digits = {n.replace(" ", "").replace("-", "") for n in own}
    other_digits = {n.replace(" ", "").replace("-", "") for n in others} - digits
    assert returned.height > 0 and set(returned["nhs_number"]) <= digits
    assert not set(returned["nhs_number"]) & other_digits
    pack = json.loads(latest_pack(settings.case_finding_dir, practice).read_text())["manifest"]
    assert returned.height == result.counts["on_pack_and_list"] <= pack["rows"]
    assert result.output.is_relative_to(settings.landing)  # identifiable: only in landing/
    # Only other practices' numbers: nothing comes back.
    nothing = reidentify(settings, keystore, audit, practice=practice, list_path=_list_file(tmp_path, others),
                         requester="Dr Test", purpose="direct care: case finding")
    assert pl.read_csv(nothing.output, infer_schema=False).height == 0
    # Every request is in the audit log, with counts and keyed hashes, and no NHS number anywhere in it.
    entries = [e for e in audit.entries() if e.event == "reidentify.request"]
    assert len(entries) >= 2 and entries[-2].details["practice"] == practice
    assert entries[-2].details["counts"]["on_pack_and_list"] == returned.height
    assert len(entries[-2].details["returned_keyed"]) == returned.height
    text = settings.audit_log.read_text()
    assert not any(n in text for n in digits | other_digits)
    assert audit.verify().ok


def test_reidentification_refuses_an_expired_or_tampered_pack_and_audits_it(stratified, tmp_path):
    settings, keystore, audit, _, _, packs = stratified
    practice = _pack_practice(settings, packs)
    own = _registrations(settings).filter(pl.col("practice_code") == practice)["nhs_number"].to_list()
    listed = _list_file(tmp_path, own, header=False)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=29)
    with pytest.raises(PackInvalid, match="expired"):
        reidentify(settings, keystore, audit, practice=practice, list_path=listed, requester="Dr Test",
                   purpose="direct care", now=later)
    pack = latest_pack(settings.case_finding_dir, practice)
    csv = pack.with_name(f"{practice}.csv")
    original = csv.read_bytes()
    try:
        csv.write_bytes(original.replace(b"very-high", b"high-high", 1).replace(b",high,", b",very-high,", 1))
        with pytest.raises(PackInvalid, match="changed"):
            reidentify(settings, keystore, audit, practice=practice, list_path=listed, requester="Dr Test",
                       purpose="direct care")
    finally:
        csv.write_bytes(original)
    refused = [e for e in audit.entries() if e.event == "reidentify.refused"]
    assert len(refused) >= 2 and all(e.details["practice"] == practice for e in refused[-2:])
    with pytest.raises(UserError, match="no case-finding pack"):
        reidentify(settings, keystore, audit, practice="Z99999", list_path=listed, requester="Dr Test",
                   purpose="direct care")


def test_external_scores_flow_through_tiers_packs_and_reidentification(stratified, tmp_path):
    settings, keystore, audit, _, _, _ = stratified
    people = run_query(settings, keystore, "analyst", "SELECT person_id, age FROM people", audit).table
    frame = pl.from_arrow(people).with_columns(
        score=(pl.col("age").fill_null(0) * 7919 % 1000) / 1000)  # an external tool's own (odd) scale
    path = tmp_path / "vendor.csv"
    frame.select(pseudonym="person_id", score="score").write_csv(path)
    scored = score_step(settings, keystore, audit, external=path)
    assert scored["source"] == "external" and scored["model_version"].startswith("external:")
    assert scored["external"]["matched"] == frame.height and scored["external"]["unknown_pseudonyms"] == 0
    publish(settings, keystore, audit)
    mart = run_query(settings, keystore, "analyst", "SELECT DISTINCT score_source, model_version FROM risk_scores",
                     audit).table.to_pylist()
    assert mart == [{"score_source": "external", "model_version": scored["model_version"]}]
    packs = packs_step(settings, keystore, audit)
    practice = _pack_practice(settings, packs)
    manifest = verify_pack(latest_pack(settings.case_finding_dir, practice), public_key_of(keystore))
    assert manifest["score_source"] == "external"
    own = _registrations(settings).filter(pl.col("practice_code") == practice)["nhs_number"].to_list()
    result = reidentify(settings, keystore, audit, practice=practice, list_path=_list_file(tmp_path, own),
                        requester="Dr Test", purpose="direct care")
    assert result.counts["on_pack_and_list"] > 0
    # Display-form pseudonyms are accepted as well as hex.
    from pipeline.pseudonymise.pseudonyms import display_form

    shown = tmp_path / "vendor.parquet"
    frame.select(pseudonym=pl.col("person_id").map_elements(display_form, return_dtype=pl.String),
                 score="score").write_parquet(shown)
    assert score_step(settings, keystore, audit, external=shown)["external"]["matched"] == frame.height


@pytest.mark.parametrize(("content", "message"), [
    ("id,score\nx,1\n", "no column 'pseudonym'"),
    ("pseudonym,score\nabc,high\n", "not finite numbers"),
    ("pseudonym,score\nabc,0.1\nabc,0.2\n", "repeats 1 pseudonym"),
    ("pseudonym,score\nabc,0.1\n", "no pseudonym matches"),
])
def test_bad_external_scores_name_the_file_and_column(stratified, tmp_path, content, message):
    settings, keystore, audit, _, _, _ = stratified
    path = tmp_path / "vendor-scores.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        score_step(settings, keystore, audit, external=path)
    assert "vendor-scores.csv" in str(info.value)


def test_no_identifier_in_model_cards_packs_or_models(stratified):
    settings, keystore, _, _, _, _ = stratified
    ids = collect(settings.landing)
    for zone in ("outputs", "reports", "warehouse", "audit", "marts"):
        assert (settings.data_root / zone).exists()
    found = scan(settings.data_root, ids, keystore=keystore,
                 skip=("landing", "keys", "staging", "validation", "synthetic-truth"))
    assert found == []
