"""Case-finding packs: per GP practice, its registered patients in the chosen tiers, signed.

Each run writes ``outputs/case-finding/<stamp>/`` with, per practice, ``<practice>.csv``
(pseudonym in display form, tier, drivers; rows in pseudonym order within each tier) and ``<practice>.pack.json``: a
manifest (practice, model, tiers, rows, created and expiry times, the CSV's SHA-256) and an
Ed25519 signature over the manifest's canonical JSON. Anyone with the service's public key
(``safehaven packs public-key``) can check a pack: a changed byte in either file fails, and a
pack past its expiry is refused by verification and by re-identification.

Pack pseudonyms are HMACs of the warehouse pseudonym under their own key domain
(``riskstrat/case-finding``), and a pack carries no other value a mart has exactly: no score, no
rank, no order by score (rows are sorted by tier, then pseudonym), and drivers only where at
least ``DRIVERS_MIN`` patients of the practice in the same tier share them (blank otherwise). So a
pack cannot be joined to the person mart (practice + rank or score would give the mart's row)
or to staging. No NHS number is
in a pack; a practice gets NHS numbers back only through ``reidentify``, for patients on its own
list.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipeline.errors import SafehavenError
from pipeline.failpoints import crash_point
from pipeline.keys import KeyDomain
from pipeline.pseudonymise.pseudonyms import display_form, hmac_expr

__all__ = [
    "FORMAT",
    "PackInfo",
    "PackInvalid",
    "latest_pack",
    "pack_pseudonyms",
    "public_key_pem",
    "read_pack",
    "verify_pack",
    "write_packs",
]

FORMAT = "safehaven-case-finding-pack/1"
PACK_PREFIX = "case-finding:v1:"
DEFAULT_TIERS = ("very-high", "high")
DEFAULT_VALID_DAYS = 28
COLUMNS = ("pseudonym", "tier", "drivers")
DRIVERS_MIN = 5  # drivers shown only where this many patients of the practice and tier share them


class PackInvalid(SafehavenError):
    """A pack that fails verification or has expired: never used."""

    exit_code = 60


@dataclass(frozen=True)
class PackInfo:
    practice: str
    manifest: Path
    rows: int


def _signing_key(keystore) -> Ed25519PrivateKey:
    seed = hashlib.sha256(keystore.domain_key(KeyDomain.PACK_SIGNING).material).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_pem(keystore) -> str:
    return _signing_key(keystore).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _public_fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _canonical(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def pack_pseudonyms(pids: pl.Series, keystore) -> pl.Series:
    """Display-form pack pseudonyms for warehouse pseudonyms."""
    key = keystore.domain_key(KeyDomain.CASE_FINDING).material
    hexes = pl.DataFrame({"p": pids}).select(hmac_expr(pl.col("p"), key, PACK_PREFIX).alias("p"))["p"]
    return hexes.map_elements(display_form, return_dtype=pl.String)


def write_packs(con: duckdb.DuckDBPyConnection, keystore, folder: Path, *, tiers=DEFAULT_TIERS,
                valid_days: int = DEFAULT_VALID_DAYS, now: dt.datetime | None = None) -> list[PackInfo]:
    """One signed pack per practice from ``w.risk_scores``; returns what was written."""
    now = now or dt.datetime.now(dt.UTC)
    rows = con.execute("""SELECT person_pid, practice_code, tier, tier_rank, score, drivers, model_version,
                                 score_source, reference_date
                          FROM w.risk_scores WHERE practice_code IS NOT NULL AND list_contains(?, tier)
                          ORDER BY practice_code, tier_rank""", [list(tiers)]).pl()
    run = Path(folder) / now.strftime("%Y%m%dT%H%M%S%fZ")
    for stale in Path(folder).glob(".tmp-*"):  # left by a run that died (one writer at a time)
        shutil.rmtree(stale)
    tmp = run.with_name(f".tmp-{run.name}")
    tmp.mkdir(parents=True, exist_ok=False)
    key = _signing_key(keystore)
    written = []
    rows = rows.with_columns(pseudonym=pack_pseudonyms(rows["person_pid"], keystore),
                             drivers=pl.col("drivers").list.join("; ").fill_null(""))
    shared = pl.len().over("practice_code", "tier", "drivers") >= DRIVERS_MIN
    order = pl.col("tier").replace_strict(list(tiers), list(range(len(tiers))), default=len(tiers))
    rows = rows.with_columns(drivers=pl.when(shared).then(pl.col("drivers")).otherwise(pl.lit(""))) \
        .sort("practice_code", order, "pseudonym")
    for (practice,), part in rows.partition_by("practice_code", as_dict=True, maintain_order=True).items():
        csv_bytes = part.select(COLUMNS).write_csv().encode()
        (tmp / f"{practice}.csv").write_bytes(csv_bytes)
        manifest = {
            "format": FORMAT, "practice": practice, "rows": part.height, "tiers": list(tiers),
            "model_version": part["model_version"][0], "score_source": part["score_source"][0],
            "reference_date": str(part["reference_date"][0]),
            "created_at": now.isoformat(timespec="seconds"),
            "expires_at": (now + dt.timedelta(days=valid_days)).isoformat(timespec="seconds"),
            "csv": f"{practice}.csv", "csv_sha256": hashlib.sha256(csv_bytes).hexdigest(),
            "signing_key": _public_fingerprint(key.public_key()),
        }
        signature = base64.b64encode(key.sign(_canonical(manifest))).decode()
        (tmp / f"{practice}.pack.json").write_text(json.dumps({"manifest": manifest, "signature": signature},
                                                              indent=2), encoding="utf-8")
        written.append(PackInfo(practice, run / f"{practice}.pack.json", part.height))
        crash_point("packs.written")
    tmp.rename(run)  # a run's packs appear together or not at all
    return written


def verify_pack(pack_path: Path, public_key: Ed25519PublicKey, now: dt.datetime | None = None) -> dict:
    """The manifest of a pack whose signature, CSV hash and expiry all hold; else PackInvalid."""
    now = now or dt.datetime.now(dt.UTC)
    pack_path = Path(pack_path)
    try:
        doc = json.loads(pack_path.read_text(encoding="utf-8"))
        manifest, signature = doc["manifest"], base64.b64decode(doc["signature"], validate=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackInvalid(f"{pack_path.name}: not a readable pack ({type(exc).__name__})") from None
    if manifest.get("format") != FORMAT:
        raise PackInvalid(f"{pack_path.name}: unknown pack format {manifest.get('format')!r}")
    try:
        public_key.verify(signature, _canonical(manifest))
    except InvalidSignature:
        raise PackInvalid(f"{pack_path.name}: the signature does not match: the manifest was changed or signed "
                          "by another key") from None
    csv_path = pack_path.with_name(manifest["csv"])
    if not csv_path.exists() or hashlib.sha256(csv_path.read_bytes()).hexdigest() != manifest["csv_sha256"]:
        raise PackInvalid(f"{pack_path.name}: {manifest['csv']} is missing or has been changed since it was signed")
    if dt.datetime.fromisoformat(manifest["expires_at"]) <= now:
        raise PackInvalid(f"{pack_path.name}: expired at {manifest['expires_at']}; ask for a new pack")
    return manifest


def read_pack(pack_path: Path, public_key: Ed25519PublicKey, now: dt.datetime | None = None) -> tuple[dict, pl.DataFrame]:
    """A verified pack's manifest and rows."""
    manifest = verify_pack(pack_path, public_key, now)
    rows = pl.read_csv(Path(pack_path).with_name(manifest["csv"]), infer_schema=False)
    return manifest, rows


def latest_pack(folder: Path, practice: str) -> Path | None:
    """The newest run's pack for ``practice``."""
    runs = sorted(p for p in Path(folder).glob("*") if p.is_dir() and not p.name.startswith("."))
    for run in reversed(runs):
        candidate = run / f"{practice}.pack.json"
        if candidate.exists():
            return candidate
    return None


def public_key_of(keystore) -> Ed25519PublicKey:
    return _signing_key(keystore).public_key()
