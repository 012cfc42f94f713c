"""The linkage quality counts, the evaluation against the ground truth, and the report page
(rendered in headless Chromium)."""

import json
import re
import struct
import zlib

import polars as pl

from pipeline.linkage import open_warehouse, write_quality_report
from pipeline.linkage.quality import LINK_STATUSES
from tests.browser import render


def test_quality_counts_add_up(linked):
    _, _, summary = linked
    q = summary.quality
    assert q["records"] == sum(q["link_status"].values()) > 20_000
    for breakdown in ("by_feed", "by_age_band", "by_gender", "by_imd_quintile"):
        assert sum(sum(v.values()) for v in q[breakdown].values()) == q["records"], breakdown
    assert sum(sum(v.values()) for v in q["nhs_number_status_by_feed"].values()) == q["records"]
    assert sum(q["unlinked_reasons"].values()) == q["link_status"]["unlinked"]
    assert sum(q["rescue_confidence"].values()) == q["link_status"]["rescued"] == summary.rescue["rescued"]
    valid = sum(v.get("valid", 0) for v in q["nhs_number_status_by_feed"].values())
    assert valid == q["link_status"]["deterministic"]  # exactly the valid numbers link on the pseudonym
    assert q["by_feed"]["asc_clients"]["rescued"] > 0
    text = json.dumps(q)
    assert not re.search(r"[0-9a-f]{32}", text)  # counts only: no pseudonym, no keyed hash


def test_evaluation_agrees_with_a_plain_recount(linked):
    """The SQL evaluation against a straightforward polars recount from the truth files."""
    settings, keystore, _ = linked
    quality, _ = write_quality_report(settings, keystore, truth_dir=settings.synthetic_truth)
    ev = quality["evaluation"]
    con = open_warehouse(settings, keystore).open(create=False)
    try:
        records = con.execute("SELECT source, _period, _version, source_row, link_status, person_pid "
                              "FROM record_linkage").pl()
    finally:
        con.close()
    truth = pl.concat([pl.read_parquet(p) for p in (settings.synthetic_truth / "records").glob("*.parquet")])
    truth = truth.with_columns(stem=pl.col("file").str.extract(r"([^/]+)\.csv$"))
    joined = records.with_columns(
        stem=pl.format("{}_{}_v{}", "source", "_period", "_version")).join(
        truth.select("stem", pl.col("row").alias("source_row"), "person_id", "intended_nhs_status"),
        on=["stem", "source_row"], how="left")
    assert joined["person_id"].null_count() == 0
    det = joined.filter(pl.col("link_status") == "deterministic")
    owners = det.group_by("person_pid").agg(pl.col("person_id").n_unique().alias("n"), pl.col("person_id").first())
    assert owners["n"].max() == 1 and ev["deterministic"]["precision"] == 1.0
    assert ev["deterministic"]["split_people"] == 0 == det.group_by("person_id").agg(
        pl.col("person_pid").n_unique())["person_pid"].gt(1).sum()
    valid_share = (joined["intended_nhs_status"] == "valid").mean()
    assert ev["deterministic"]["recall"] == ev["deterministic"]["valid_nhs_number_share"] == round(valid_share, 6)
    rescued = joined.filter(pl.col("link_status") == "rescued").join(
        owners.select("person_pid", pl.col("person_id").alias("linked_person")), on="person_pid", how="left")
    precision = (rescued["person_id"] == rescued["linked_person"]).mean()
    assert ev["rescue"]["linked"] == rescued.height > 100
    assert ev["rescue"]["precision"] == round(precision, 6) and precision >= 0.99


def _png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    chunks, pos = [], 8
    while pos < len(png):
        length = struct.unpack(">I", png[pos:pos + 4])[0]
        if png[pos + 4:pos + 8] == b"IDAT":
            chunks.append(png[pos + 8:pos + 8 + length])
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    return width, height, len(set(raw[::97]))


def test_the_report_opens_in_a_browser_with_its_charts_and_figures(linked, tmp_path):
    settings, keystore, _ = linked
    quality, paths = write_quality_report(settings, keystore, truth_dir=settings.synthetic_truth)
    html_text = (settings.reports_dir / "linkage" / "latest.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html_text)  # self-contained: nothing fetched
    assert "<script" not in html_text
    dom, png = render(settings.reports_dir / "linkage" / "latest.html", tmp_path)
    assert dom.count("<svg") == 5  # by feed, NHS number status, age band, gender, IMD quintile
    assert dom.count("<g id=\"patch_") > 60  # their bars
    for anchor in ("summary", "evaluation", "by-feed", "nhs-status", "by-age-band", "by-gender",
                   "by-imd-quintile", "unlinked", "duplicates"):
        assert f'id="{anchor}"' in dom, anchor
    ev = quality["evaluation"]
    assert "deterministic precision" in dom and f"{ev['deterministic']['precision']:.4f}" in dom
    assert f"{ev['rescue']['precision']:.4f}" in dom
    assert f"{quality['people']:,}" in dom and f"{quality['link_status']['rescued']:,}" in dom
    assert "not suppressed" in dom  # the internal marking is on the page
    for status in LINK_STATUSES:
        assert status in dom
    width, height, colours = _png_size_and_colours(png)
    assert width >= 1000 and height >= 1000 and colours > 5  # a real rendering, not a blank page
    saved = json.loads((settings.reports_dir / "linkage" / "latest.json").read_text())
    assert saved["quality"]["records"] == quality["records"] and saved["evaluation"] == ev
    assert paths["html"].endswith(".html")
