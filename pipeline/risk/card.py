"""The model card: one self-contained HTML page (and the JSON it is drawn from) per model.

Written under ``reports/models/`` (``<stamp>.*`` and ``latest.*``). Internal to the safe haven:
the subgroup counts are not suppressed.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.report import Page, calibration_plot, capture_plot, write_report

__all__ = ["render_model_card", "write_model_card"]

MARKING = ("OFFICIAL-SENSITIVE: internal to the safe haven. Subgroup counts are not suppressed: "
           "do not publish outside the data processing team, IG and the clinical safety officer.")


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _num(x, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def render_model_card(card: dict) -> str:
    chosen = card["model"]["kind"]
    v = card["validation"][chosen]
    cal = v["calibration"]
    page = Page(f"Model card: {card['version']}",
                f"Created {card['created_at']} · {chosen} model · scoring date {card['data']['scoring_date']}",
                MARKING)
    ceiling = card.get("planted_ceiling")
    items = [("validation AUROC", f"{v['auroc']:.3f} ({v['auroc_ci'][0]:.3f}-{v['auroc_ci'][1]:.3f})"),
             ("calibration slope", _num(cal["slope"], 2)), ("calibration intercept", _num(cal["intercept"], 3)),
             ("Brier score", _num(cal["brier"], 4)), ("people validated", v["people"]),
             ("emergency admissions", v["events"])]
    if ceiling:
        items.append(("planted ceiling AUROC", f"{ceiling['auroc']:.3f}"))
    page.section("Summary", page.cards(items),
                 page.text(f"Outcome: {card['outcome']}. Population: {card['population']}."),
                 page.text(f"Chosen: {chosen}, because {card['model']['chosen_because']}. Deployed: "
                           f"{card['model']['deployed']}."))
    d = card["data"]
    page.section("Data", page.table(
        ["window", "reference date", "features from", "features to", "outcome from", "outcome to", "people",
         "admitted"],
        [[name, w["reference_date"], w["features_from"], w["features_to"], w["outcome_from"], w["outcome_to"],
          w["people"], w["events"]] for name, w in (("training", d["training"]), ("validation", d["validation"]))]),
        page.text(f"Activity in the warehouse runs from {d['activity_from']} to {d['activity_to']}. Training data "
                  f"SHA-256 {d['training_data_sha256']}; model file SHA-256 {card['model']['sha256']}."))
    candidates = card["validation"]
    rows = [[kind, _num(r["auroc"]), f"{_num(r['auroc_ci'][0])}-{_num(r['auroc_ci'][1])}",
             _num(r["calibration"]["slope"], 2), _num(r["calibration"]["intercept"], 3),
             _num(r["calibration"]["brier"], 4)] for kind, r in candidates.items()]
    if ceiling:
        rows.append(["planted model (ceiling)", _num(ceiling["auroc"]),
                     f"{_num(ceiling['auroc_ci'][0])}-{_num(ceiling['auroc_ci'][1])}",
                     _num(ceiling["calibration_slope"], 2), "", ""])
    curves = {kind: r["calibration"]["curve"] for kind, r in candidates.items()}
    page.section("Discrimination and calibration (temporal validation)", page.table(
        ["model", "AUROC", "95% CI", "calibration slope", "calibration intercept", "Brier"], rows),
        page.figure(calibration_plot(curves, title="Calibration on the validation year"),
                    "Observed emergency admission rate against mean predicted risk, in 20 bins of equal size."),
        *([page.text(ceiling["note"])] if ceiling else []))
    shares = {kind: [(s["top_share"], s["sensitivity"]) for s in r["top_shares"]] for kind, r in candidates.items()}
    page.section("Case finding: the top of the list", page.table(
        ["top share", "people flagged", "admitted among them", "PPV", "sensitivity", "score cut-off"],
        [[_pct(s["top_share"]), s["flagged"], s["events_flagged"], _pct(s["ppv"]), _pct(s["sensitivity"]),
          _num(s["score_cutoff"], 4)] for s in v["top_shares"]], caption=f"{chosen} model"),
        page.figure(capture_plot(shares, title="Admissions captured by the top of the list"),
                    "Share of the validation year's emergency admissions among the highest scores."))
    subgroup_parts = []
    for name, groups in v["subgroups"].items():
        subgroup_parts.append(page.table(
            [name.replace("_", " "), "people", "admitted", "observed", "expected", "AUROC", "calibration slope",
             "sensitivity at top 5%", "PPV at top 5%"],
            [[g["group"], g["people"], g["events"], _pct(g["observed_rate"]), _pct(g["expected_rate"]),
              _num(g.get("auroc")), _num(g.get("calibration_slope"), 2), _pct(g["sensitivity_top_5pct"]),
              _pct(g["ppv_top_5pct"])] for g in groups]))
    page.section("Subgroups", page.text("The top-5% cut-off is the population's, as the tiers use it. AUROC and "
                                        "calibration are not estimated for groups with fewer than 10 admissions."),
                 *subgroup_parts)
    features = card["features"]
    page.section("Features", page.table(
        ["feature", "description", "look-back (years)", "used"],
        [[f["name"], f["description"], f["lookback_years"], "yes" if f["used"] else f"no: {f['left_out_because']}"]
         for f in features]))
    deployed = bool(card.get("coefficients"))
    coefficients = card["coefficients"] if deployed else card["validated_coefficients"]
    if coefficients:
        page.section("Coefficients (deployed logistic model)" if deployed else
                     "Coefficients (logistic candidate, fitted on the training window; not deployed)", page.table(
            ["term", "description", "coefficient", "odds ratio"],
            [[c["term"], c["description"], _num(c["coefficient"], 4), _num(c["odds_ratio"], 3)]
             for c in coefficients]),
            page.text("Log-odds per unit of each term; the intercept is the log-odds for a person with every "
                      "term at 0 (age 50, least deprived, no activity or conditions)."))
    page.section("Limitations", "<ul>" + "".join(f"<li>{_esc(t)}</li>" for t in card["limitations"]) + "</ul>")
    return page.render()


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def write_model_card(folder: Path, card: dict) -> dict[str, Path]:
    return write_report(folder, card, render_model_card(card))
