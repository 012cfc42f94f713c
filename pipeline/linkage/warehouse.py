"""The warehouse: staged deliveries loaded into an encrypted DuckDB file.

``warehouse/<name>-g<generation>.duckdb`` is encrypted with AES-GCM under a random
data-encryption key for that generation, held wrapped in the keystore (so destroying the key
destroys every copy of the generation). The key is passed to DuckDB as a bound parameter, never
in SQL text. Encrypted writes need DuckDB's OpenSSL provider: the httpfs extension from the
``duckdb-extension-httpfs`` wheel is loaded from disk, never downloaded.

Loading is incremental and idempotent. ``_loads`` records every delivery loaded (feed, table,
period, version, manifest hash); loading it again is a no-op; a new version of the same feed,
table and period replaces the old one's rows in one transaction. The warehouse records the
linkage key's id and fingerprint on first load and refuses deliveries made under another key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.errors import KeyMismatch, TransientError
from pipeline.ingest.staging import read_manifest, write_json_atomic

__all__ = ["LoadResult", "Warehouse", "connect", "httpfs_extension"]


def httpfs_extension() -> Path:
    import duckdb_extension_httpfs

    version = duckdb.__version__
    path = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{version}" / "httpfs.duckdb_extension"
    if not path.exists():
        raise RuntimeError(f"the httpfs extension for DuckDB {version} is not installed (duckdb-extension-httpfs)")
    return path


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can write encrypted files and fetches nothing."""
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{httpfs_extension()}'")
    return con


#: Writer locks this process holds: path -> [open file, depth].
_HELD: dict[str, list] = {}
_HELD_GUARD = threading.Lock()


@dataclass
class LoadResult:
    loaded: list[str]
    skipped: list[str]
    superseded: list[str]


class Warehouse:
    """One encrypted DuckDB warehouse under ``<data root>/warehouse``."""

    def __init__(self, root: Path, keystore, name: str = "warehouse"):
        self.root = Path(root)
        self.name = name
        self.keystore = keystore
        self.pointer = self.root / f"{name}.current.json"

    # One writer at a time -----------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self):
        """Hold the warehouse's writer lock: an flock, so the OS releases it if the process
        dies. Re-entrant within a process (a flow holds it while its tasks take it again);
        another process gets ``TransientError`` at once."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = str((self.root / f".{self.name}.writer.lock").resolve())
        with _HELD_GUARD:
            held = _HELD.get(path)
            if held is None:
                handle = open(path, "a")  # noqa: SIM115 - kept open while the lock is held
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    raise TransientError("another link run is writing the warehouse (one writer at a time)") from None
                held = _HELD[path] = [handle, 0]
            held[1] += 1
        try:
            yield self
        finally:
            with _HELD_GUARD:
                held[1] -= 1
                if held[1] == 0:
                    fcntl.flock(held[0], fcntl.LOCK_UN)
                    held[0].close()
                    del _HELD[path]

    # Generations --------------------------------------------------------------------------
    def current(self) -> dict | None:
        return read_manifest(self.pointer)

    def _key_name(self, generation: int) -> str:
        return f"{self.name}-g{generation}"

    def path_for(self, generation: int) -> Path:
        return self.root / f"{self.name}-g{generation}.duckdb"

    def open(self, create: bool = True) -> duckdb.DuckDBPyConnection:
        """A connection with the current generation attached as ``w`` (created if missing)."""
        pointer = self.current()
        if pointer is None:
            if not create:
                raise FileNotFoundError("no warehouse yet: run 'safehaven link'")
            pointer = {"generation": 1, "file": self.path_for(1).name,
                       "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
            self.root.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.pointer, pointer)
        key = self.keystore.data_key(self._key_name(pointer["generation"]), create=create)
        con = connect()
        try:
            con.execute(f"ATTACH '{self.root / pointer['file']}' AS w (ENCRYPTION_KEY $key)", {"key": key.hex()})
        except duckdb.IOException as exc:
            con.close()
            if "lock" in str(exc).lower():
                raise TransientError("the warehouse is open in another process (one writer at a time)") from None
            raise
        con.execute("USE w")
        con.execute("""CREATE TABLE IF NOT EXISTS _loads (
            delivery VARCHAR PRIMARY KEY, feed VARCHAR, tbl VARCHAR, period VARCHAR, version INTEGER,
            manifest_sha256 VARCHAR, rows BIGINT, loaded_at TIMESTAMP, superseded_by VARCHAR)""")
        con.execute("CREATE TABLE IF NOT EXISTS _meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        return con

    # Loading ------------------------------------------------------------------------------
    def load_staging(self, staging: Path) -> LoadResult:
        """Load every staged delivery not yet loaded; newer versions supersede older ones."""
        manifests = sorted(Path(staging).rglob("*.manifest.json"))
        docs = [(path, doc) for path in manifests if (doc := read_manifest(path))]
        result = LoadResult([], [], [])
        con = self.open()
        try:
            for path, doc in sorted(docs, key=lambda item: (item[1]["feed"], item[1]["table"],
                                                            item[1]["period"], item[1]["version"])):
                self._load_one(con, path, doc, result)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        return result

    def _check_key(self, con, doc: dict) -> None:
        fingerprint = doc["keys"]["linkage"]["fingerprint"]
        row = con.execute("SELECT value FROM _meta WHERE key = 'linkage_fingerprint'").fetchone()
        if row is None:
            con.execute("INSERT INTO _meta VALUES ('linkage_fingerprint', ?), ('linkage_key_id', ?)",
                        [fingerprint, doc["keys"]["linkage"]["key_id"]])
        elif row[0] != fingerprint:
            held = con.execute("SELECT value FROM _meta WHERE key = 'linkage_key_id'").fetchone()[0]
            raise KeyMismatch(
                f"delivery {doc['delivery']} was pseudonymised under {doc['keys']['linkage']['key_id']} "
                f"(fingerprint {fingerprint}); the warehouse holds {held} (fingerprint {row[0]}). Refusing to "
                "load: pseudonyms under different keys cannot be linked")

    def _load_one(self, con, manifest: Path, doc: dict, result: LoadResult) -> None:
        delivery = doc["delivery"]
        digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
        if con.execute("SELECT 1 FROM _loads WHERE delivery = ?", [delivery]).fetchone():
            result.skipped.append(delivery)
            return
        newer = con.execute(
            "SELECT delivery FROM _loads WHERE feed = ? AND tbl = ? AND period = ? AND version > ?",
            [doc["feed"], doc["table"], doc["period"], doc["version"]]).fetchone()
        if newer:
            result.skipped.append(delivery)
            return
        self._check_key(con, doc)
        parquet = manifest.with_name(manifest.name.replace(".manifest.json", ".parquet"))
        table = f"stg_{doc['table']}"
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT *, ''::VARCHAR AS _period, 0 AS _version "
                        "FROM read_parquet(?) LIMIT 0", [str(parquet)])
            older = con.execute(
                "SELECT delivery FROM _loads WHERE feed = ? AND tbl = ? AND period = ? AND superseded_by IS NULL",
                [doc["feed"], doc["table"], doc["period"]]).fetchall()
            if older:
                con.execute(f"DELETE FROM {table} WHERE _period = ?", [doc["period"]])
                con.execute("UPDATE _loads SET superseded_by = ? WHERE feed = ? AND tbl = ? AND period = ? "
                            "AND superseded_by IS NULL", [delivery, doc["feed"], doc["table"], doc["period"]])
                result.superseded += [o[0] for o in older]
            con.execute(f"INSERT INTO {table} BY NAME SELECT *, ? AS _period, ? AS _version FROM read_parquet(?)",
                        [doc["period"], doc["version"], str(parquet)])
            rows = con.execute(f"SELECT count(*) FROM {table} WHERE _period = ?", [doc["period"]]).fetchone()[0]
            con.execute("INSERT INTO _loads VALUES (?, ?, ?, ?, ?, ?, ?, now(), NULL)",
                        [delivery, doc["feed"], doc["table"], doc["period"], doc["version"], digest, rows])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        result.loaded.append(delivery)

    def describe(self) -> dict:
        con = self.open(create=False)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'w' ORDER BY 1").fetchall()]
            return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables} | {
                "_meta": dict(con.execute("SELECT key, value FROM _meta").fetchall())}
        finally:
            con.close()

