"""The public transparency notice (Caldicott 2, recommendation 19), generated from the
contracts so that it cannot drift from what the pipeline really does: what personal
confidential data comes in, what de-identified data goes out and to whom, why, on what legal
basis, how to opt out and how long everything is kept. Plain English, one self-contained page.
"""

from __future__ import annotations

import html
from pathlib import Path

import yaml

from pipeline.contracts import check_contracts
from pipeline.contracts._ig import FirewallAction
from pipeline.contracts.check import CONTRACT_SUFFIX
from pipeline.report.page import Page
from pipeline.settings import Settings

__all__ = ["render_notice"]

_IDENTIFIER_WORDS = {
    FirewallAction.PSEUDONYMISE_NHS_NUMBER: "your NHS number, which is replaced by a code (a pseudonym) as soon as it "
                                            "arrives",
    FirewallAction.AGE_AT_ACTIVITY: "your date of birth, which is turned into your age and then thrown away",
    FirewallAction.POSTCODE_GEOGRAPHY: "your postcode, which is turned into the local area (ward) and then thrown away",
    FirewallAction.GENDER_CODE: "your gender",
    FirewallAction.PSEUDONYMISE_LOCAL_ID: "the social care record number, replaced by a code",
}
_PURPOSE_WORDS = {
    "risk-stratification-case-finding": "to help your own GP practice offer you care: finding patients who might "
                                        "benefit from extra support (only your practice can see who you are)",
    "risk-stratification-commissioning": "to plan and buy health and care services for the area, using counts and "
                                         "totals only",
}
_UNIT = {"d": "days", "m": "months", "y": "years"}


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def _ul(items) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def _period(period) -> str:
    unit = _UNIT[period.unit]
    return f"{period.value} {unit[:-1] if period.value == 1 else unit}"


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def render_notice(settings: Settings) -> str:
    from pipeline.disclosure.outputs import load_output_contract, output_contract_names
    from pipeline.retention.policy import load_policies, output_policies

    as_of = settings.today()
    results = [r for r in check_contracts(settings.contracts_dir, as_of) if r.contract is not None]
    policies = load_policies(settings.contracts_dir, as_of)
    kept = output_policies(settings.contracts_dir)
    controllers = sorted({c for r in results for c in r.contract.ig.dataControllers})
    processors = sorted({c for r in results for c in r.contract.ig.dataProcessors})
    page = Page("How we use your health and care information for risk stratification",
                f"A notice for the public, generated from our data agreements on {as_of.isoformat()}.")

    page.section("Who we are", _p(
        f"Your information is used by {', '.join(controllers)}, who decide how it is used (the data controllers). "
        f"The work is done for them by {', '.join(processors)} (the data processors), inside a secure environment "
        "called a safe haven. Nobody outside the safe haven can see it."), anchor="who")

    feeds = []
    for r in results:
        c = r.contract
        raw = _raw(r.path)
        what = str((raw.get("description") or {}).get("purpose", "")).strip()
        actions = {col.action for t in c.tables.values() for col in t.columns if col.action in _IDENTIFIER_WORDS}
        feeds.append(f"<li><strong>{html.escape(c.name.replace('_', ' ').upper())}</strong>: {html.escape(what)}"
                     + (" Details that could identify you: " + html.escape("; ".join(_IDENTIFIER_WORDS[a] for a in sorted(actions)))
                        + "." if actions else " This contains no details about individual people.") + "</li>")
    page.section("What information we receive", _p(
        "We receive records from the health and care services below. We only receive four details that could "
        "identify you: NHS number, postcode, date of birth (to work out your age) and gender, and for social care the "
        "council's own record number. We never receive your name or address."), "<ul>" + "".join(feeds) + "</ul>", anchor="receive")

    page.section("What we do with it", _p(
        "As soon as a file arrives, your NHS number is replaced by a code that cannot be turned back into your NHS "
        "number without a secret key kept separately, your postcode is reduced to your local area and your date of "
        "birth to your age. Records from different services are then joined using the code, and a computer model "
        "estimates how likely each person is to need an emergency hospital admission in the next year."),
        anchor="do")

    shared = []
    for name in output_contract_names(settings.contracts_dir):
        try:
            out = load_output_contract(settings.contracts_dir, name)
        except Exception:  # noqa: BLE001, S112 - an unreadable output contract publishes nothing
            continue
        raw = _raw(settings.contracts_dir / "outputs" / f"{name}{CONTRACT_SUFFIX}")
        desc = raw.get("description") or {}
        recipients = [str(r.get("role", "")).replace("-", " ") + "s" for r in raw.get("roles") or []
                      if isinstance(r, dict) and r.get("access") == "read" and r.get("role")]
        shared.append(f"<li><strong>{html.escape(name.replace('_', ' ').capitalize())} reports</strong>: "
                      f"{html.escape(str(desc.get('purpose', '')).strip())} They contain only counts and totals "
                      f"(for example {html.escape('; '.join(t.description.split('. ')[0].rstrip('.').lower() for t in out.tables[:2]))}); "
                      "small numbers are hidden so that no one can be picked out."
                      + (f" Who receives them: {html.escape('; '.join(recipients))}." if recipients else "") + "</li>")
    shared.append("<li><strong>Lists for your GP practice</strong>: your own GP practice may receive a list of its "
                  "patients who might benefit from extra support. The list carries codes, not names; only your "
                  "practice can match the codes to its own patients, and every such match is recorded.</li>")
    page.section("What we share, and with whom", _p(
        "We never share information that identifies you outside the safe haven. We share:"),
        "<ul>" + "".join(shared) + "</ul>", anchor="share")

    purposes = sorted({p.value for r in results for p in r.contract.ig.permittedPurposes})
    bases = sorted({(r.contract.ig.legalBasis.article6, r.contract.ig.legalBasis.article9,
                     r.contract.ig.legalBasis.commonLaw.basis.value, r.contract.ig.legalBasis.commonLaw.reference or "")
                    for r in results if r.contract.ig.legalBasis.commonLaw.basis.value != "not-applicable"})
    page.section("Why, and our legal basis", _p("We use your information:"),
                 _ul(_PURPOSE_WORDS.get(p, p) for p in purposes),
                 _p("The law that allows this (UK GDPR and the common law duty of confidentiality):"),
                 _ul(f"{a6}; {a9}; common law: {law}{' (' + ref + ')' if ref else ''}" for a6, a9, law, ref in bases),
                 anchor="why")

    applies = [r.contract.name for r in results if r.contract.ig.nationalDataOptOut.applies]
    exempt = [(r.contract.name, r.contract.ig.nationalDataOptOut.rationale) for r in results
              if not r.contract.ig.nationalDataOptOut.applies]
    page.section("Your choices: how to opt out", _p(
        "If you do not want your confidential information used for planning, you can register a national data "
        "opt-out at www.nhs.uk/your-nhs-data-matters or by calling 0300 303 5678. You can also ask your GP practice "
        "to record a type 1 opt-out, which stops your GP record being shared for purposes other than your care. "
        "We remove the records of everyone who has opted out as soon as files arrive, before any other use."),
        _p("The national data opt-out is applied to: " + (", ".join(a.upper() for a in applies) or "none") + "."),
        *([_p("It does not apply to the following, for the reason given:"),
           _ul(f"{n.upper()}: {why}" for n, why in exempt)] if exempt else []), anchor="optout")

    keep = []
    for feed, p in sorted(policies.items()):
        if not p.approved:
            continue
        parts = []
        if p.records:
            parts.append(f"records for {_period(p.records)}")
        if p.landing:
            parts.append(f"the original files for {_period(p.landing)} after they are processed")
        keep.append(f"{feed.upper()}: " + ", ".join(parts) if parts else feed.upper())
    for p in kept.values():
        if p.kept is not None:
            keep.append(f"{p.what.rstrip(': ').capitalize()}: {_period(p.kept)}")
    page.section("How long we keep it", _p(
        "We keep information only as long as our agreements allow. After that it is destroyed: the keys that "
        "unlock it are destroyed too, and a certificate of destruction is recorded."), _ul(keep), anchor="keep")

    links = sorted({(d.get("type", ""), d.get("url", "")) for r in results
                    for d in ((_raw(r.path).get("description") or {}).get("authoritativeDefinitions") or [])
                    if isinstance(d, dict) and d.get("url")})
    page.section("More information and complaints", _p(
        "You can ask the data controllers for a copy of your information, or complain to them. If you are not "
        "happy with their answer you can complain to the Information Commissioner's Office (ico.org.uk, "
        "0303 123 1113)."), _ul(f"{kind}: {url}" for kind, url in links), anchor="more")
    return page.render()
