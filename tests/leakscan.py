"""A scanner for identifiers from landing/ anywhere else under a data root.

It collects every NHS number (as digits), name, date of birth and full postcode in the
landing CSVs, then reads every other file the way a person with access would: Parquet files
decoded value by value, SQLite databases (Prefect's) table by table, encrypted DuckDB files
(the warehouse and the marts) decrypted with their keys from the keystore and read table by
table, everything else as text. An encrypted file it cannot open fails the scan.
"""

from __future__ import annotations

import csv
import re
import sqlite3
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline.ingest.staging import read_staged

# Whole tokens only: a run of digits inside a hex hash is not an NHS number or a date.
NHS_LIKE = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")
DATE_LIKE = re.compile(r"(?<![0-9A-Za-z])(?:\d{8}|\d{2}/\d{2}/\d{4}|\d{4}-\d{2}-\d{2})(?![0-9A-Za-z])")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
BINARY_SUFFIXES = {".otf", ".png", ".gif", ".ico", ".ttf", ".woff", ".woff2", ".lock"}
NAME_COLUMNS = ("patient_name", "client_name")


@dataclass
class Identifiers:
    nhs: set[str] = field(default_factory=set)
    postcodes: set[str] = field(default_factory=set)  # squashed upper case
    dobs: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


def collect(landing: Path) -> Identifiers:
    ids = Identifiers()
    periods, activity_dates = set(), set()
    for path in landing.rglob("*.csv"):
        periods.add(path.stem.split("_")[-2] if "_v" in path.stem else "")
        if "postcode_lookup" in path.parts:
            continue  # reference data: postcodes there belong to nobody
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("nhs_number"):
                    digits = re.sub(r"\D", "", row["nhs_number"])
                    if len(digits) == 10 and len(set(digits)) > 1:  # placeholders are not identifiers
                        ids.nhs.add(digits)
                if row.get("postcode"):
                    ids.postcodes.add(row["postcode"].upper().replace(" ", ""))
                if row.get("date_of_birth"):
                    ids.dobs.add(row["date_of_birth"])
                for col in NAME_COLUMNS:
                    if row.get(col):
                        ids.names.add(row[col])
                activity_dates.update(v for k, v in row.items() if v and k != "date_of_birth" and ISO_DATE.match(v))
    # A baby's date of birth written as an ISO date is the same string as an activity date or a
    # delivery period (which are kept, and are not identifiers): those strings cannot be told apart.
    ids.dobs -= periods | activity_dates
    return ids


class Needles:
    """Exact substring search for many needles at once: candidate positions come from one
    regex over the needles' prefixes, then each needle length is looked up in a set (far
    faster than one ``in`` per needle, with the same answers)."""

    def __init__(self, needles: set[str]):
        self.by_length: dict[int, set[str]] = {}
        for n in needles:
            self.by_length.setdefault(len(n), set()).add(n)
        k = min(self.by_length, default=0)
        k = min(k, 3)
        prefixes = sorted({n[:k] for n in needles}) if k else []
        self.starts = re.compile("(?=(?:" + "|".join(map(re.escape, prefixes)) + "))") if prefixes else None

    def found_in(self, text: str) -> set[str]:
        found: set[str] = set()
        if self.starts is None:
            return found
        for m in self.starts.finditer(text):
            i = m.start()
            for length, group in self.by_length.items():
                if text[i:i + length] in group:
                    found.add(text[i:i + length])
        return found


def _needles(ids: Identifiers) -> tuple[Needles, Needles]:
    """The postcode and name searchers of ``ids``, built once (again if the sets changed)."""
    sizes = (len(ids.postcodes), len(ids.names))
    cached = getattr(ids, "_needles", None)
    if cached is None or cached[0] != sizes:
        cached = (sizes, Needles({p for p in ids.postcodes if len(p) >= 5}), Needles(ids.names))
        ids._needles = cached
    return cached[1], cached[2]


def hits_in_text(text: str, ids: Identifiers) -> list[str]:
    postcodes, names = _needles(ids)
    hits = [f"nhs_number ...{m.group()[-4:]}" for m in NHS_LIKE.finditer(text) if re.sub(r"\D", "", m.group()) in ids.nhs]
    hits += ["postcode"] * len(postcodes.found_in(text.upper().replace(" ", "")))
    hits += ["date_of_birth" for d in DATE_LIKE.findall(text) if d in ids.dobs]
    hits += ["name"] * len(names.found_in(text))
    return hits


def _duckdb_key_name(path: Path) -> str:
    """warehouse/warehouse-g1.duckdb -> warehouse-g1; marts/person/person-<stamp>.duckdb -> mart-person-<stamp>."""
    if "marts" in path.parts:
        return f"mart-{path.stem}"
    return path.stem


def _duckdb_texts(path: Path, keystore):
    from pipeline.linkage.warehouse import connect

    if keystore is None:
        raise AssertionError(f"{path}: an encrypted DuckDB file needs the keystore to be scanned")
    con = connect()
    try:
        key = keystore.data_key(_duckdb_key_name(path))
        con.execute(f"ATTACH '{path}' AS s (ENCRYPTION_KEY $k, READ_ONLY)", {"k": key.hex()})
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 's'").fetchall()]
        for table in tables:
            frame = con.execute(f'SELECT COLUMNS(*)::VARCHAR FROM s."{table}"').pl()
            for col in frame.columns:
                yield frame[col].drop_nulls().str.join("\n").item() if frame.height else ""
    finally:
        con.close()


def _texts_of(path: Path, keystore=None, root: Path | None = None):
    if path.suffix == ".duckdb":
        yield from _duckdb_texts(path, keystore)
        return
    if path.suffix == ".parquet":
        staging = root / "staging" if root is not None else None
        if staging is not None and staging in path.parents:  # staged files are encrypted, one key each
            if keystore is None:
                raise ValueError(f"{path} is an encrypted staged file: pass the keystore to read it")
            frame = pl.from_arrow(read_staged(staging, path, keystore))
        else:
            frame = pl.read_parquet(path)
        for col in frame.columns:
            yield frame[col].cast(pl.String).drop_nulls().str.join("\n").item() if frame.height else ""
        yield "\n".join(frame.columns)
        return
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04"):  # XLSX and other zip packages: every member, inflated
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                yield archive.read(member).decode("utf-8", errors="ignore")
        return
    if head.startswith(b"SQLite format 3"):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
            for table in tables:
                for row in con.execute(f'select * from "{table}"'):
                    yield "\n".join(str(v) for v in row if isinstance(v, str | bytes | int))
        finally:
            con.close()
        return
    yield path.read_bytes().decode("utf-8", errors="ignore")


def scan_file(path: Path, ids: Identifiers, keystore=None) -> list[str]:
    """What ``scan`` finds in one file outside a data root (a shared Prefect server's database)."""
    return [hit for text in _texts_of(Path(path), keystore) for hit in hits_in_text(text, ids)]


def scan(root: Path, ids: Identifiers, skip: tuple[str, ...] = ("landing", "keys"), keystore=None,
         ) -> list[tuple[str, str]]:
    """(file, what) for every identifier from landing found under ``root`` outside ``skip``
    (DuckDB files and staged Parquet decrypted with ``keystore``)."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in skip or path.suffix in BINARY_SUFFIXES:
            continue
        if path.name.endswith(("-wal", "-shm", ".duckdb.wal")):
            continue  # journals: the database itself is read through its engine
        for text in _texts_of(path, keystore, root):
            found += [(str(rel), hit) for hit in hits_in_text(text, ids)]
    return found
