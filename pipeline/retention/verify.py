"""Proof that destruction worked: nothing destroyed is readable anywhere under the data root.

``scan`` looks for the destroyed pseudonyms in three forms (the warehouse's, the marts' and the
case-finding packs' display form) two ways:

* **plaintext**: the bytes of every file under the data root not written under a key (and of
  any that should be encrypted but turns out not to be), searched for any of the forms;
* **decrypted**: every encrypted file whose key is still in the keystore (warehouse and mart
  DuckDB files, staged Parquet) is opened and every text column compared with the forms. A file
  whose key has been destroyed cannot be opened by anyone: it counts as unreadable, which is
  what crypto-shredding means.

It also checks that no row past retention remains in the warehouse under an approved policy
and that every destroyed key is gone from the keystore. ``verify_certificates`` re-checks the
certificates later (signatures, the audit log, keys and files), without the pseudonyms, which
are destroyed with the run.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import KeystoreError
from pipeline.ingest.staging import staged_key_name
from pipeline.keys import KeyDomain
from pipeline.linkage.warehouse import connect
from pipeline.marts.build import MART_PREFIX
from pipeline.pseudonymise.pseudonyms import hmac_expr

__all__ = ["destroyed_forms", "file_key_name", "rows_past_retention", "scan", "verify_certificates"]

_HEX = re.compile(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_DISPLAY = re.compile(rb"P[0-9]+-(?:[0-9A-Z]{4}-){4}[^\s,\"]")
_CHUNK = 16 * 2**20


def destroyed_forms(values: dict[str, list[str]], keystore) -> set[str]:
    """Each destroyed pseudonym as the warehouse, the marts and the packs write it, and each
    destroyed record id as it is."""
    from pipeline.risk.packs import pack_pseudonyms

    pids = values.get("pseudonym", [])
    forms = set(pids) | set(values.get("record id", []))
    if pids:
        frame = pl.DataFrame({"p": pids})
        key = keystore.domain_key(KeyDomain.MART).material
        forms |= set(frame.select(hmac_expr(pl.col("p"), key, MART_PREFIX).alias("p"))["p"].to_list())
        forms |= set(pack_pseudonyms(frame["p"], keystore).to_list())
    return forms


def _shapes(forms: set[str]) -> list[re.Pattern]:
    """Byte patterns that find every form in a file: 32-hex pseudonyms, display forms, and the
    shapes of record ids (``APC000000267`` -> ``APC[0-9]{9}``)."""
    patterns = [_HEX, _DISPLAY]
    shapes = set()
    for form in forms:
        if _HEX.fullmatch(form.encode()) or _DISPLAY.fullmatch(form.encode()):
            continue
        shapes.add(re.sub(r"(\\d)+", lambda m: f"[0-9]{{{len(m.group()) // 2}}}",
                          "".join("\\d" if ch.isdigit() else re.escape(ch) for ch in form)))
    if len(shapes) > 64:  # too many shapes to list: any run of letters and digits
        shapes = {r"[A-Za-z0-9]{4,}"}
    if shapes:
        patterns.append(re.compile(("(?<![A-Za-z0-9])(?:" + "|".join(sorted(shapes)) + ")(?![A-Za-z0-9])").encode()))
    return patterns


def file_key_name(settings, path: Path) -> str | None:
    """The data-encryption key a file under the data root is encrypted with, if any."""
    if path.suffix == ".duckdb":
        if path.parent == settings.warehouse_dir:
            return path.stem  # warehouse-g<N>
        if path.parent.parent == settings.marts_dir:
            return f"mart-{path.parent.name}-{path.stem.removeprefix(path.parent.name + '-')}"
    if path.suffix == ".parquet" and settings.staging in path.parents:
        return staged_key_name(settings.staging, path)
    return None


def _usable(keystore, name: str) -> bytes | None:
    try:
        return keystore.data_key(name)
    except KeystoreError:
        return None


def _plaintext_hits(path: Path, forms: set[str], patterns: list[re.Pattern]) -> int:
    hits, tail = 0, b""
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            data = tail + chunk
            for pattern in patterns:
                hits += sum(1 for m in pattern.finditer(data) if m.group().decode("ascii", "replace") in forms)
            tail = data[-40:]
    return hits


def _duckdb_hits(path: Path, key: bytes, forms: pa.Table) -> tuple[int, int, bool]:
    """Destroyed forms in any text column of any table: one scan per table (every text column
    unnested and joined to the forms). Also whether the file really is encrypted."""
    con = connect()
    try:
        con.execute(f"ATTACH '{path}' AS f (ENCRYPTION_KEY $key, READ_ONLY)", {"key": key.hex()})
        encrypted = bool(con.execute("SELECT encrypted FROM duckdb_databases() WHERE database_name = 'f'").fetchone()[0])
        con.register("_forms_arrow", forms)
        con.execute("CREATE TEMP TABLE _forms AS SELECT DISTINCT v FROM _forms_arrow")
        by_table: dict[str, list[str]] = {}
        for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                         "WHERE table_catalog = 'f' AND data_type = 'VARCHAR'").fetchall():
            by_table.setdefault(table, []).append(column)
        hits = 0
        for table, columns in by_table.items():
            values = ", ".join(f'"{c}"' for c in columns)
            hits += con.execute(f'SELECT count(*) FROM (SELECT unnest([{values}]) AS v FROM f."{table}") x '
                                "SEMI JOIN _forms USING (v)").fetchone()[0]
        return hits, len(by_table), encrypted
    finally:
        con.close()


def _parquet_encrypted(path: Path) -> bool:
    """Parquet with an encrypted footer ends in ``PARE`` instead of ``PAR1``."""
    with open(path, "rb") as fh:
        fh.seek(-4, 2)
        return fh.read(4) == b"PARE"


def _parquet_hits(path: Path, key: bytes | None, forms: set[str]) -> int:
    from pyarrow.parquet import encryption as pqe

    table = pq.read_table(path, decryption_properties=pqe.create_decryption_properties(key) if key else None)
    wanted = pl.Series(sorted(forms), dtype=pl.String)
    hits = 0
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            hits += pl.from_arrow(column).cast(pl.String).is_in(wanted).sum()
    return int(hits)


def rows_past_retention(con, rules) -> dict[str, int]:
    """Rows still due under ``rules`` in an open warehouse (``w``): must all be 0 after a run."""
    present = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'w'").fetchall()}
    out = {}
    for rule in rules:
        table = rule.warehouse_table
        if table in present:
            out[table] = con.execute(f"SELECT count(*) FROM w.{table} WHERE "
                                     f"{rule.due_sql().format(table='w.' + table)}").fetchone()[0]
    return out


def scan(settings, keystore, values: dict[str, list[str]], rules, destroyed_keys: list[str], removed: list[str],
         own: Path | None = None, progress=lambda step: None) -> dict:
    """Search the whole data root for the destroyed pseudonyms; see the module docstring."""
    from pipeline.linkage.warehouse import Warehouse

    forms = destroyed_forms(values, keystore)
    patterns = _shapes(forms)
    form_table = pa.table({"v": pa.array(sorted(forms), pa.string())})
    result = {"pseudonyms_sought": len(values.get("pseudonym", [])), "record_ids_sought": len(values.get("record id", [])), "forms_sought": len(forms), "files_scanned": 0, "bytes_scanned": 0,
              "encrypted_files_read": 0, "tables_read": 0, "unreadable_key_destroyed": 0, "matches": []}
    keystore_dir = settings.keystore_path.parent
    for path in sorted(p for p in settings.data_root.rglob("*") if p.is_file()):
        if keystore_dir in path.parents or path == own:
            continue  # wrapped keys only (checked below); the run's own list (its key is destroyed next)
        where = str(path.relative_to(settings.data_root))
        result["files_scanned"] += 1
        result["bytes_scanned"] += path.stat().st_size
        key_name = file_key_name(settings, path)
        # Files written under a key are ciphertext but for DuckDB's header or Parquet's magic:
        # searching their bytes finds nothing, so they are read decrypted instead (and searched
        # as bytes too if they turn out not to be encrypted).
        plain = key_name is None or (path.suffix == ".parquet" and not _parquet_encrypted(path))
        if forms and plain and (hits := _plaintext_hits(path, forms, patterns)):
            result["matches"].append({"file": where, "how": "plaintext", "count": hits})
        if key_name is None and path.suffix != ".parquet":
            continue
        key = _usable(keystore, key_name) if key_name else None
        if key_name and key is None:
            result["unreadable_key_destroyed"] += 1
            continue
        if not forms:
            continue
        try:
            if path.suffix == ".duckdb":
                hits, tables, encrypted = _duckdb_hits(path, key, form_table)
                result["tables_read"] += tables
                if not encrypted:
                    result["matches"].append({"file": where, "how": "not encrypted", "count": 0})
                    hits += _plaintext_hits(path, forms, patterns)
            else:
                hits = _parquet_hits(path, key, forms)
        except Exception as exc:  # noqa: BLE001 - a file we cannot read is reported, not skipped silently
            result["matches"].append({"file": where, "how": f"unreadable: {type(exc).__name__}", "count": 0})
            continue
        result["encrypted_files_read"] += key is not None
        if hits:
            result["matches"].append({"file": where, "how": "decrypted", "count": hits})
    progress("scan files")
    warehouse = Warehouse(settings.warehouse_dir, keystore)
    if warehouse.current() is not None:
        con = warehouse.open(create=False)
        try:
            result["rows_past_retention"] = rows_past_retention(con, rules)
        finally:
            con.close()
    else:
        result["rows_past_retention"] = {}
    still = [name for name in destroyed_keys if _usable(keystore, name) is not None]
    listed = set(keystore.data_key_names(include_destroyed=True))
    result["keys_checked"] = len(destroyed_keys)
    result["keys_still_usable"] = still
    result["keys_unknown"] = [n for n in destroyed_keys if n not in listed]
    result["files_still_present"] = [f for f in removed if (settings.data_root / f).exists()]
    result["passed"] = not (result["matches"] or still or result["files_still_present"]
                            or any(result["rows_past_retention"].values()))
    progress("check keys")
    return result



def verify_certificates(settings, keystore, audit) -> list[dict]:
    """Re-check every certificate: its signature, its entry in the audit log (same SHA-256),
    its destroyed keys still gone and its removed files still absent. One row per certificate,
    with ``problems`` (empty when it checks out)."""
    import hashlib
    import json

    from pipeline.retention.certificate import certificates_dir, public_key, signature_valid

    recorded = {e.details.get("certificate"): e.details.get("sha256") for e in audit.entries()
                if e.event == "retention.destroyed"}
    public = public_key(keystore)
    rows = []
    for path in sorted(certificates_dir(settings).glob("*.json")):
        raw = path.read_bytes()
        problems = []
        try:
            doc = json.loads(raw)
        except ValueError:
            rows.append({"certificate": path.stem, "problems": ["not valid JSON"]})
            continue
        if not signature_valid(doc, public):
            problems.append("the signature does not match the certificate (edited, or signed by another key)")
        digest = hashlib.sha256(raw).hexdigest()
        if doc.get("certificate") not in recorded:
            problems.append("no retention.destroyed entry in the audit log")
        elif recorded[doc["certificate"]] != digest:
            problems.append("the file's SHA-256 differs from the one in the audit log")
        still = [k for k in doc.get("keys_destroyed", []) if _usable(keystore, k) is not None]
        if still:
            problems.append(f"{len(still)} destroyed key(s) are usable again")
        back = [f for f in doc.get("files_removed", []) if (settings.data_root / f).exists()]
        if back:
            problems.append(f"{len(back)} removed file(s) exist again, e.g. {back[0]}")
        if not doc.get("verification", {}).get("passed"):
            problems.append("its own verification scan failed")
        rows.append({"certificate": doc.get("certificate", path.stem), "as_of": doc.get("as_of"),
                     "rows": doc.get("totals", {}).get("records"), "files": doc.get("totals", {}).get("files"),
                     "keys": len(doc.get("keys_destroyed", [])), "problems": problems})
    return rows
