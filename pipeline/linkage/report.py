"""The linkage quality report: JSON (the counts) and a self-contained HTML page with charts.

Written under ``<data root>/reports/linkage/`` as ``<stamp>.json`` and ``<stamp>.html``, with
``latest.json`` and ``latest.html`` replaced atomically. Internal to the safe haven (counts are
not suppressed); the page says so at the top.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.linkage.quality import LINK_STATUSES
from pipeline.report import Page, stacked_bars, write_report

__all__ = ["MARKING", "render_linkage_report", "write_linkage_report"]

MARKING = ("OFFICIAL-SENSITIVE: internal to the safe haven. Counts are not suppressed: "
           "do not publish or share outside the data processing team and IG.")
_LINK_COLOURS = {"deterministic": "#005eb8", "rescued": "#E69F00", "unlinked": "#D55E00"}


def _status_series(by_feed: dict) -> list[str]:
    order = ["valid", "missing", "invalid_format", "invalid_checksum", "placeholder", "test_range", "out_of_range"]
    seen = {s for row in by_feed.values() for s in row}
    return [s for s in order if s in seen] + sorted(seen - set(order))


def render_linkage_report(quality: dict, evaluation: dict | None = None) -> str:
    q = quality
    page = Page("Linkage quality", f"Generated {q['generated_at']} · linkage key {q['linkage_key']['key_id']} "
                f"(fingerprint {q['linkage_key']['fingerprint']})", MARKING)
    status = q["link_status"]
    page.section("Summary", page.cards([
        ("people on the spine", q["people"]), ("records", q["records"]),
        ("linked on NHS number", status["deterministic"]), ("rescued", status["rescued"]),
        ("unlinked", status["unlinked"]), ("linked share", f"{100 * q['linked_share']:.2f}%"),
        ("deliveries", q["deliveries"]),
    ]), page.text("Deterministic links join records that carry the same pseudonym (a valid NHS number). "
                  "Rescue links match a record without a valid NHS number to exactly one person on keyed postcode, "
                  "gender, birth window (from age at each activity) and GP practice; anything else stays unlinked and "
                  "is counted here."), anchor="summary")
    if evaluation:
        d, r = evaluation["deterministic"], evaluation["rescue"]
        page.section("Against the synthetic ground truth", page.cards([
            ("deterministic precision", d["precision"]), ("deterministic recall", d["recall"]),
            ("share with a valid NHS number", d["valid_nhs_number_share"]), ("people split", d["split_people"]),
            ("rescue precision", r["precision"]), ("rescued (correct)", f"{r['correct']:,} / {r['linked']:,}"),
            ("overall recall", evaluation["overall_recall"]),
        ]), page.text("Synthetic data only: the truth is kept apart from the pipeline and read by the evaluation, "
                      "never by the link flow."), anchor="evaluation")
    page.section("Linkage by feed", page.figure(
        stacked_bars(q["by_feed"], LINK_STATUSES, title="How records were linked, by feed", colours=_LINK_COLOURS),
        "Share of each feed's person-level records linked deterministically, rescued, or left unlinked."),
        page.crosstab(q["by_feed"], LINK_STATUSES, "feed"), anchor="by-feed")
    series = _status_series(q["nhs_number_status_by_feed"])
    page.section("NHS number status by feed", page.figure(
        stacked_bars(q["nhs_number_status_by_feed"], series, title="NHS number status, by feed"),
        "Status assigned at the identifier firewall; only valid numbers become pseudonyms."),
        page.crosstab(q["nhs_number_status_by_feed"], series, "feed"), anchor="nhs-status")
    for key, label in (("by_age_band", "age band"), ("by_gender", "gender"), ("by_imd_quintile", "IMD quintile")):
        page.section(f"Linkage by {label}", page.figure(
            stacked_bars(q[key], LINK_STATUSES, title=f"How records were linked, by {label}", colours=_LINK_COLOURS),
            f"Unequal unlinked shares across {label}s would bias anything built on the linked data."),
            page.crosstab(q[key], LINK_STATUSES, label), anchor=key.replace("_", "-"))
    page.section("Unlinked records and rescue confidence",
                 page.table(["reason", "records"], sorted(q["unlinked_reasons"].items())),
                 page.table(["rescue confidence", "records"], sorted(q["rescue_confidence"].items())),
                 page.text("not_attempted: no postcode, age or gender to match on; ambiguous: two or more people match; "
                           "opted_out: the one match is on an opt-out list, so the record is not linked."),
                 anchor="unlinked")
    page.section("Duplicates and conflicts", page.table(["check", "count"], [
        ("people with conflicting recorded gender", q["conflicts"]["gender"]),
        ("people with ages more than a year apart", q["conflicts"]["age"]),
        ("possible duplicate people (same keyed postcode, gender, birth window)", q["possible_duplicate_people"]),
        ("people without a registered practice", q["spine_gaps"]["no_registered_practice"]),
        ("people without geography", q["spine_gaps"]["no_geography"]),
    ]), page.table(["staged table", "exact duplicate rows"], sorted(q["duplicate_records"].items())),
        anchor="duplicates")
    return page.render()


def write_linkage_report(folder: Path, quality: dict, evaluation: dict | None = None) -> dict[str, Path]:
    """Write ``<stamp>.json``/``.html`` and refresh ``latest.*``; returns the paths."""
    return write_report(folder, {"quality": quality, "evaluation": evaluation},
                        render_linkage_report(quality, evaluation))
