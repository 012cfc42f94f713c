"""Re-identification for direct care: a GP practice's own list, matched to its own pack.

Never a reversal. The practice sends the NHS numbers of its registered patients; each valid
number is pseudonymised under the linkage domain, then under the pack domain, and matched to the
practice's latest verified pack. Only patients on both the list and that practice's pack come
back (NHS number, tier, drivers): a number registered elsewhere is not in this
practice's pack, so it is never returned, whatever the list holds. An expired or tampered pack
is refused.

Every request is audited, refused ones too: requester, practice, purpose, pack, counts, and the
NHS numbers only as keyed hashes (``riskstrat/reidentification`` domain, display form). The
returned list is identifiable, so it is written inside ``landing/reidentification/<practice>/``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import UserError
from pipeline.keys import KeyDomain
from pipeline.pseudonymise.nhs_number import NhsNumberStatus, with_nhs_number_status
from pipeline.pseudonymise.pseudonyms import display_form, hmac_expr, pseudonymise_column
from pipeline.risk.packs import PackInvalid, latest_pack, pack_pseudonyms, public_key_of, read_pack

__all__ = ["ReidentifyResult", "reidentify"]

_AUDIT_PREFIX = "reidentification:v1:"


@dataclass(frozen=True)
class ReidentifyResult:
    output: Path
    counts: dict


def _read_list(path: Path) -> pl.Series:
    """The NHS numbers of a practice list: a CSV with an ``nhs_number`` column, or one per line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{Path(path).name}: cannot read the practice list ({type(exc).__name__})") from None
    first = text.splitlines()[0] if text.strip() else ""
    if "nhs_number" in first.lower():
        frame = pl.read_csv(path, infer_schema=False)
        column = next(c for c in frame.columns if c.lower().strip() == "nhs_number")
        return frame[column].rename("nhs_number")
    return pl.Series("nhs_number", [line.strip() for line in text.splitlines() if line.strip()], dtype=pl.String)


def _keyed(values: pl.Series, keystore) -> list[str]:
    key = keystore.domain_key(KeyDomain.REIDENTIFICATION).material
    hexes = pl.DataFrame({"v": values}).select(hmac_expr(pl.col("v"), key, _AUDIT_PREFIX).alias("v"))["v"]
    return sorted(display_form(h) for h in hexes.to_list())


def reidentify(settings, keystore, audit, *, practice: str, list_path: Path, requester: str, purpose: str,
               now: dt.datetime | None = None) -> ReidentifyResult:
    now = now or dt.datetime.now(dt.UTC)
    practice = practice.strip().upper()
    base = {"requester": requester, "practice": practice, "purpose": purpose, "list_file": Path(list_path).name}
    if not purpose.strip() or not requester.strip():
        audit.append("reidentify.refused", base | {"reason": "requester and purpose are required"})
        raise UserError("re-identification needs --requester and --purpose (both are audited)")
    pack_path = latest_pack(settings.case_finding_dir, practice)
    if pack_path is None:
        audit.append("reidentify.refused", base | {"reason": "no pack for this practice"})
        raise UserError(f"no case-finding pack for practice {practice}: run `safehaven stratify` first")
    try:
        manifest, pack = read_pack(pack_path, public_key_of(keystore), now)
    except PackInvalid as exc:
        audit.append("reidentify.refused", base | {"reason": "pack failed verification or expired",
                                                   "pack": f"{pack_path.parent.name}/{pack_path.name}"})
        raise PackInvalid(str(exc)) from None
    if manifest["practice"] != practice:
        raise PackInvalid(f"{pack_path.name}: signed for practice {manifest['practice']}, not {practice}")

    listed = _read_list(list_path)
    checked = with_nhs_number_status(pl.DataFrame({"nhs_number": listed}), "nhs_number",
                                     allow_test_range=settings.allow_synthetic_nhs_numbers)
    valid = checked.filter(pl.col("nhs_number_status") == NhsNumberStatus.VALID.value) \
        .select("nhs_number_digits").unique(maintain_order=True)
    linkage_key = keystore.domain_key(KeyDomain.LINKAGE).material
    pids = pseudonymise_column(valid, "nhs_number_digits", linkage_key, "person_pid")
    pids = pids.with_columns(pseudonym=pack_pseudonyms(pids["person_pid"], keystore))
    tiers = manifest["tiers"]
    order = pl.col("tier").replace_strict(tiers, list(range(len(tiers))), default=len(tiers))
    matched = pids.join(pack, on="pseudonym", how="inner").sort(order, "nhs_number_digits")
    returned = matched.select(nhs_number="nhs_number_digits", tier="tier", drivers="drivers")

    folder = settings.reidentification_dir / practice
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{now:%Y%m%dT%H%M%S%fZ}.csv"
    tmp = output.with_name(f".tmp-{output.name}")
    returned.write_csv(tmp)
    tmp.replace(output)
    counts = {"list_rows": listed.len(), "valid_nhs_numbers": valid.height,
              "not_valid": listed.len() - int((checked["nhs_number_status"] == NhsNumberStatus.VALID.value).sum()),
              "on_pack_and_list": matched.height, "pack_rows": pack.height}
    audit.append("reidentify.request", base | {
        "pack": f"{pack_path.parent.name}/{pack_path.name}", "pack_expires_at": manifest["expires_at"],
        "model_version": manifest["model_version"], "score_source": manifest["score_source"],
        "counts": counts, "list_digest": hashlib.sha256("".join(_keyed(valid["nhs_number_digits"], keystore))
                                                        .encode()).hexdigest()[:16],
        "returned_keyed": _keyed(returned["nhs_number"], keystore), "output": output.name})
    return ReidentifyResult(output, counts)



