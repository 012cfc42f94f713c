"""The ``stratify`` flow as ``safehaven stratify`` runs it: killed mid-run and run again, it gives
the same model, scores, tiers, person mart and packs as one clean run; the CLI re-identifies and
verifies packs; Prefect holds count and metric artifacts only."""

import json
import shutil
import sqlite3

import polars as pl

from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.linkage import open_warehouse
from pipeline.linkage.warehouse import connect
from pipeline.marts import current_mart
from pipeline.risk.packs import latest_pack
from tests.cli import run_cli, run_until_crash
from tests.conftest import copy_root
from tests.flows.test_link_flow import ENV, _rows, _settings


def _state(root) -> dict:
    settings = _settings(root)
    keystore = open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    version = json.loads((settings.models_dir / "current.json").read_text())["version"]
    card = json.loads((settings.models_dir / version / "card.json").read_text())
    state = {"version": version, "validation": card["validation"], "coefficients": card["coefficients"]}
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        state["risk_scores"] = _rows(con.execute("SELECT * FROM risk_scores").pl())
        state["risk_features"] = _rows(con.execute("SELECT * FROM risk_features").pl())
        practices = [r[0] for r in con.execute("SELECT DISTINCT practice_code FROM risk_scores WHERE tier IN "
                                               "('very-high', 'high') AND practice_code IS NOT NULL").fetchall()]
    finally:
        con.close()
    pointer = current_mart(settings.marts_dir, "person")
    db = connect()
    db.execute(f"ATTACH '{settings.marts_dir / pointer['file']}' AS m (ENCRYPTION_KEY $k, READ_ONLY)",
               {"k": keystore.data_key(pointer["key"]).hex()})
    state["mart.risk_scores"] = _rows(db.execute("SELECT * FROM m.risk_scores").pl())
    db.close()
    for practice in practices:  # the packs' contents (their folders and signatures carry the time)
        pack = latest_pack(settings.case_finding_dir, practice)
        state[f"pack.{practice}"] = pack.with_name(f"{practice}.csv").read_text()
    return state


def test_kill_stratify_mid_run_then_rerun_equals_one_clean_run(linked, stratified, tmp_path):
    crashed = copy_root(linked[0].data_root, tmp_path / "crashed", without=("landing",))
    settings = _settings(crashed)

    # 1. killed once the chosen model is saved: no card page, no current pointer, nothing scored
    run_until_crash("stratify", root=crashed, crash_at="risk.model-saved", env=ENV)
    assert list(settings.models_dir.glob("*/model.pkl")) and not (settings.models_dir / "current.json").exists()
    assert not settings.case_finding_dir.exists()
    # 2. killed again with three practices' packs written to the unpublished folder
    run_until_crash("stratify", root=crashed, crash_at="packs.written:3", env=ENV)
    (pending,) = settings.case_finding_dir.glob(".tmp-*")
    assert len(list(pending.glob("*.pack.json"))) == 3
    assert not [p for p in settings.case_finding_dir.iterdir() if not p.name.startswith(".")]
    # 3. run to the end
    again = run_cli("stratify", root=crashed, env=ENV)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "signed case-finding packs" in again.stdout and "validation AUROC" in again.stdout

    a, b = _state(crashed), _state(stratified[0].data_root)  # the session's one clean run
    assert a.keys() == b.keys() and any(k.startswith("pack.") for k in a)
    for key in a:
        assert a[key] == b[key], key
    assert not list(settings.case_finding_dir.glob(".tmp-*"))


def test_cli_reidentifies_for_a_practice_and_verifies_its_pack(demo_root, tmp_path):
    demo_root = copy_root(demo_root, tmp_path / "demo")  # re-identification writes landing/ and the audit log
    folder = max(p for p in (demo_root / "outputs" / "case-finding").iterdir() if not p.name.startswith("."))
    pack = max(folder.glob("*.pack.json"), key=lambda p: json.loads(p.read_text())["manifest"]["rows"])
    practice = pack.name.split(".")[0]
    ok = run_cli("packs", "verify", str(pack), root=demo_root, env=ENV)
    assert ok.returncode == 0 and "valid" in ok.stdout, ok.stderr[-2000:]
    key = tmp_path / "public.pem"
    out = run_cli("packs", "public-key", root=demo_root, env=ENV)
    key.write_text(out.stdout)
    assert out.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    tampered = tmp_path / "copy"
    shutil.copytree(folder, tampered)
    csv = tampered / f"{practice}.csv"
    body = csv.read_bytes()  # change the last character (to a 9, or an 8 if it is a 9: a real change)
    csv.write_bytes(body[:-2] + (b"8" if body[-2:-1] == b"9" else b"9") + b"\n")
    bad = run_cli("packs", "verify", str(tampered / pack.name), "--public-key", str(key), root=demo_root, env=ENV)
    assert bad.returncode == 60 and "changed" in bad.stderr and "Traceback" not in bad.stderr

    regs = pl.read_csv(next((demo_root / "landing" / "gp").glob("gp_registrations_*.csv")), infer_schema=False)
    listed = tmp_path / "list.csv"
    regs.select("nhs_number").drop_nulls().write_csv(listed)  # every practice's patients
    run = run_cli("reidentify", "--practice", practice, "--list", str(listed), "--requester", "Dr Flow",
                  root=demo_root, env=ENV)
    assert run.returncode == 0, run.stderr[-2000:]
    returned = max((demo_root / "landing" / "reidentification" / practice).glob("*.csv"))
    numbers = set(pl.read_csv(returned, infer_schema=False)["nhs_number"])
    own = regs.filter((pl.col("practice_code") == practice) & pl.col("registration_end").is_null())
    own_digits = {n.replace(" ", "").replace("-", "") for n in own["nhs_number"].drop_nulls()}
    assert numbers and numbers <= own_digits
    assert json.loads((demo_root / "audit" / "audit.jsonl").read_text().splitlines()[-1])["event"] == \
        "reidentify.request"


def test_the_stratify_run_leaves_metric_and_count_artifacts_in_prefect(demo_root):
    con = sqlite3.connect(next((demo_root / "prefect").glob("*.db")))
    try:
        rows = dict(con.execute("SELECT key, data FROM artifact WHERE key IN ('risk-tiers', 'stratify-summary')")
                    .fetchall())
        params = [r[0] for r in con.execute("SELECT parameters FROM flow_run WHERE flow_id IN "
                                            "(SELECT id FROM flow WHERE name = 'stratify')").fetchall()]
    finally:
        con.close()
    assert set(rows) == {"risk-tiers", "stratify-summary"}
    assert "Validation AUROC" in rows["stratify-summary"] and "very-high" in rows["risk-tiers"]
    assert params and all(set(json.loads(p)) <= {"data_root", "tiers", "pack_tiers", "valid_days",
                                                 "external_scores"} for p in params)


def test_cli_stratify_takes_an_external_tools_scores(demo_root, tmp_path):
    demo_root = copy_root(demo_root, tmp_path / "demo")  # scored again, from the vendor's file
    ids = tmp_path / "people.csv"
    out = run_cli("query", "--role", "analyst", "SELECT person_id, age FROM people", "--csv", str(ids),
                  root=demo_root, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    vendor = tmp_path / "vendor.csv"
    pl.read_csv(ids).select(pseudonym="person_id", score=pl.col("age").fill_null(0) / 10).write_csv(vendor)
    run = run_cli("stratify", "--external-scores", str(vendor), "--tiers", "adults-top-2",
                  "--pack-tiers", "case-management", root=demo_root, env=ENV)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "External scores vendor.csv" in run.stdout and "case-management" in run.stdout
    folder = max(p for p in (demo_root / "outputs" / "case-finding").iterdir() if not p.name.startswith("."))
    manifests = [json.loads(p.read_text())["manifest"] for p in folder.glob("*.pack.json")]
    assert manifests and all(m["score_source"] == "external" and m["tiers"] == ["case-management"]
                             for m in manifests)
    entry = [json.loads(line) for line in (demo_root / "audit" / "audit.jsonl").read_text().splitlines()
             if '"risk.scored"' in line][-1]
    assert entry["details"]["source"] == "external" and entry["details"]["external"]["unknown_pseudonyms"] == 0
