"""The IG evidence pack and the public transparency notice, opened in headless Chromium after
`safehaven demo`: the key content is there, no identifier from landing is, and the audit-chain
panel turns red when a line of the audit log is edited. Screenshots go to the test artifact
folder (``SAFEHAVEN_TEST_ARTIFACTS``, default ``test-artifacts/`` in the checkout)."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from pipeline.contracts import feed_names
from pipeline.logs import contains_identifier
from pipeline.report.evidence import visible_text
from tests.browser import render
from tests.cli import SYNTHETIC, run_cli
from tests.conftest import CONTRACTS
from tests.leakscan import collect, hits_in_text

ARTIFACTS = Path(os.environ.get("SAFEHAVEN_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
RED = np.array([0xD5, 0x28, 0x1B]) / 255  # the failing panel's border colour


def _save(name: str, png: bytes) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(png)
    return path


def _red_pixels(png: Path) -> int:
    image = imread(png)[..., :3]
    return int((np.abs(image - RED).max(axis=-1) < 0.08).sum())


def _text(dom: str) -> str:
    return re.sub(r"\s+", " ", visible_text(dom))


def test_evidence_pack_and_notice_in_a_browser(demo_run, tmp_path):
    root, _ = demo_run
    ids = collect(root / "landing")
    dom, png = render(root / "reports" / "evidence" / "index.html", tmp_path / "evidence")
    shot = _save("evidence-pack.png", png)
    text = _text(dom)
    assert "IG evidence pack" in text and 'data-ok="true"' in dom and "Intact:" in text
    for feed in feed_names(CONTRACTS):
        assert f"{feed} " in text, feed  # every contract, with its version
    for heading in ("Controls checklist", "Deliveries", "Linkage quality", "Models", "Releases", "Queries",
                    "Re-identification requests", "Destruction certificates"):
        assert heading in text
    pack = json.loads((root / "reports" / "evidence" / "evidence.json").read_text())
    assert len(pack["checklist"]) == 11 and all(c["passed"] for c in pack["checklist"]), pack["checklist"]
    assert "Caldicott 2, rec. 19" in text and "Identifiers limited to NHS number, postcode, age and gender" in text
    assert len(pack["deliveries"]) > 200 and pack["releases"] and pack["queries"]  # the demo's release and query
    assert pack["releases"][0]["package"] in text and "SELECT p.age_band" in text
    assert "<svg" in dom and shot.stat().st_size > 10_000  # charts drawn

    notice_dom, notice_png = render(root / "reports" / "notice" / "index.html", tmp_path / "notice")
    _save("transparency-notice.png", notice_png)
    notice = _text(notice_dom)
    for words in ("How we use your health and care information", "What information we receive",
                  "What we share, and with whom", "Your choices: how to opt out", "www.nhs.uk/your-nhs-data-matters",
                  "How long we keep it", "section251", "NHS Mid and South Essex Integrated Care Board"):
        assert words in notice, words
    assert "GP: records for 10 years" in notice and "SUS_APC: records for 5 years" in notice

    for name, page in (("evidence pack", dom), ("notice", notice_dom)):
        assert not contains_identifier(visible_text(page)), name
        assert hits_in_text(page, ids) == [], name  # no NHS number, postcode, birth date or name from landing
    assert hits_in_text((root / "reports" / "evidence" / "evidence.json").read_text(), ids) == []


def test_editing_one_audit_line_turns_the_panel_red(demo_run, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_run[0], root)
    _, before = render(root / "reports" / "evidence" / "index.html", tmp_path / "intact")
    red_before = _red_pixels(_save("evidence-pack-intact.png", before))
    log = root / "audit" / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    entry = json.loads(lines[4])
    entry["actor"] = "someone-else"  # one edited field on line 5
    lines[4] = json.dumps(entry, sort_keys=True) + "\n"
    log.write_text("".join(lines))

    out = run_cli("report", root=root, timeout=300, env=SYNTHETIC)
    assert out.returncode == 31, out.stdout[-2000:] + out.stderr[-2000:]  # AuditTampered, after writing the pack
    assert "broken at line 5" in out.stderr
    dom, png = render(root / "reports" / "evidence" / "index.html", tmp_path / "red")
    shot = _save("evidence-pack-audit-broken.png", png)
    assert 'data-ok="false"' in dom and "panel-bad" in dom
    assert "BROKEN at line 5: entry was edited" in _text(dom)
    assert _red_pixels(shot) > red_before + 500  # the panel really is red on screen
    pack = json.loads((root / "reports" / "evidence" / "evidence.json").read_text())
    chain = next(c for c in pack["checklist"] if c["control"].startswith("Audit trail"))
    assert chain["passed"] is False
