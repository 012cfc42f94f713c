"""Certificates of destruction: signed, in the audit log, and readable by the IG lead.

A certificate says what was destroyed (dataset, period, row and file counts, file hashes), when,
under which policy and approver, by which method, which keys were destroyed, who ran it, and the
verification scan's result. It is signed with Ed25519 (the IG lead's signing key, wrapped in the keystore
for the IG lead alone; anyone with the public key can check it), written as
``<data root>/retention/certificates/<id>.json`` and ``.html``, and recorded in the audit log
with its SHA-256, so a certificate edited later no longer matches either.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipeline.ingest.staging import write_json_atomic, write_text_atomic
from pipeline.report.page import Page

__all__ = ["FORMAT", "certificates_dir", "public_key", "sign", "signature_valid", "write_certificate"]

FORMAT = "safehaven-destruction-certificate/1"


def certificates_dir(settings) -> Path:
    return settings.data_root / "retention" / "certificates"


def _signing_key(keystore) -> Ed25519PrivateKey:
    """The IG lead's signing key: a keystore opened without the IG lead's credential cannot sign."""
    return Ed25519PrivateKey.from_private_bytes(keystore.certificate_signing_seed())


def public_key(keystore) -> Ed25519PublicKey:
    """The key that checks certificates: public, so any role can check them."""
    return Ed25519PublicKey.from_public_bytes(keystore.certificate_signing_public_key())


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _body(doc: dict) -> bytes:
    return json.dumps({k: v for k, v in doc.items() if k != "signature"}, sort_keys=True,
                      separators=(",", ":"), default=str).encode()


def sign(doc: dict, keystore) -> dict:
    key = _signing_key(keystore)
    public = _raw(key.public_key())
    return doc | {"signature": {"algorithm": "Ed25519",
                                "public_key": base64.b64encode(public).decode(),
                                "public_key_fingerprint": hashlib.sha256(public).hexdigest()[:16],
                                "value": base64.b64encode(key.sign(_body(doc))).decode()}}


def signature_valid(doc: dict, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(base64.b64decode(doc["signature"]["value"]), _body(doc))
    except (InvalidSignature, KeyError, ValueError):
        return False
    return True


def write_certificate(settings, doc: dict) -> tuple[Path, str]:
    """Write the signed certificate (JSON, then its page); returns (path, SHA-256 of the JSON)."""
    folder = certificates_dir(settings)
    path = folder / f"{doc['certificate']}.json"
    write_json_atomic(path, doc)
    write_text_atomic(folder / f"{doc['certificate']}.html", render(doc))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def render(doc: dict) -> str:
    verification = doc["verification"]
    page = Page(f"Certificate of destruction {doc['certificate']}",
                f"as of {doc['as_of']}, run by {doc['operator']}, finished {doc['finished']}",
                "OFFICIAL-SENSITIVE: holds no patient data")
    totals = doc["totals"]
    page.section("Summary", Page.cards([
        ("warehouse records destroyed", totals["records"]), ("files destroyed", totals["files"]),
        ("rows in destroyed staged files", totals["staged_rows"]),
        ("keys destroyed", len(doc["keys_destroyed"])), ("pseudonyms no longer present", totals["pseudonyms"]),
        ("record ids no longer present", totals["record_ids"]),
        ("verification", "passed" if verification["passed"] else "FAILED")]))
    page.section("What was destroyed, under which policy", Page.table(
        ["feed", "what", "rows", "files", "period", "policy", "approved by", "reference", "method"],
        [[d["feed"], d["what"], d["rows"], d["files"], f"{d['period_from'] or ''} to {d['period_to'] or ''}",
          d["policy"], d["approved_by"], d["approval_reference"], d["method"]] for d in doc["destroyed"]]))
    if doc.get("warehouse"):
        w = doc["warehouse"]
        page.section("Warehouse rebuild", Page.table(
            ["", "value"], [["old generation (file and key destroyed)", w["old_generation"]],
                            ["old file SHA-256", w["old_file_sha256"]], ["new generation", w["new_generation"]],
                            ["people on the spine before", w["people_before"]],
                            ["people on the spine after", w["people_after"]],
                            ["superseded mart files destroyed", w["mart_files_destroyed"]]]))
    page.section("Verification", Page.text(
        f"{verification['files_scanned']:,} files ({verification['bytes_scanned']:,} bytes) searched as plaintext; "
        f"{verification['encrypted_files_read']:,} encrypted files decrypted and read; "
        f"{verification['unreadable_key_destroyed']:,} files unreadable because their key was destroyed; "
        f"{verification['keys_checked']:,} destroyed keys confirmed gone. Matches: {len(verification['matches'])}.",
        "ok" if verification["passed"] else "bad"))
    if doc["reported"]:
        page.section("Not destroyed (reported)", Page.table(
            ["feed", "what", "status", "reason", "rows", "files"],
            [[r["feed"], r["what"], r["status"], r["reason"], r["rows"], r["files"]] for r in doc["reported"]]))
    page.section("Keys destroyed", Page.table(["key id"], [[k] for k in doc["keys_destroyed"]]))
    page.section("Signature", Page.text(f"Ed25519, public key fingerprint "
                                        f"{doc['signature']['public_key_fingerprint']}"))
    return page.render()
