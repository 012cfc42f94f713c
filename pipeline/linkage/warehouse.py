"""The warehouse: staged deliveries loaded into an encrypted DuckDB file.

``warehouse/<name>-g<generation>.duckdb`` is encrypted with AES-GCM under a random
data-encryption key for that generation, held wrapped in the keystore (so destroying the key
destroys every copy of the generation). The key is passed to DuckDB as a bound parameter, never
in SQL text. Encrypted writes need DuckDB's OpenSSL provider: the httpfs extension from the
``duckdb-extension-httpfs`` wheel is loaded from disk, never downloaded.

Staged files are encrypted per file; loading decrypts them in this process (``staged_reader``).

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
import pyarrow as pa

from pipeline.errors import KeyMismatch, TransientError
from pipeline.failpoints import crash_point
from pipeline.ingest.staging import read_manifest, staged_reader, write_json_atomic

__all__ = ["BOOKKEEPING_DDL", "LoadResult", "Warehouse", "connect", "httpfs_extension"]


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


#: The warehouse's own bookkeeping: deliveries loaded, and the linkage key it holds.
BOOKKEEPING_DDL = (
    """CREATE TABLE IF NOT EXISTS _loads (
        delivery VARCHAR PRIMARY KEY, feed VARCHAR, tbl VARCHAR, period VARCHAR, version INTEGER,
        manifest_sha256 VARCHAR, rows BIGINT, loaded_at TIMESTAMP, superseded_by VARCHAR)""",
    "CREATE TABLE IF NOT EXISTS _meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
)

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
            # A new warehouse takes a generation number no key was ever issued for (a
            # destroyed generation's key name is never reused).
            used = [int(n.rsplit("-g", 1)[1]) for n in self.keystore.data_key_names(f"{self.name}-g", include_destroyed=True)
                    if n.rsplit("-g", 1)[1].isdigit()]
            generation = max(used, default=0) + 1
            pointer = {"generation": generation, "file": self.path_for(generation).name,
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
        for ddl in BOOKKEEPING_DDL:
            con.execute(ddl)
        return con

    # Loading ------------------------------------------------------------------------------
    def load_staging(self, staging: Path) -> LoadResult:
        """Load every staged delivery not yet loaded; newer versions supersede older ones.

        New deliveries of one table load in one statement and one transaction (rows and
        ``_loads`` together), so a crash leaves each table as it was before or after."""
        manifests = sorted(Path(staging).rglob("*.manifest.json"))
        docs = [(path, doc) for path in manifests if (doc := read_manifest(path))]
        result = LoadResult([], [], [])
        con = self.open()
        try:
            loaded = {r[0]: (r[1], r[2], r[3], r[4]) for r in con.execute(
                "SELECT delivery, feed, tbl, period, version FROM _loads").fetchall()}
            latest: dict[tuple, int] = {}
            for feed, tbl, period, version in loaded.values():
                latest[(feed, tbl, period)] = max(version, latest.get((feed, tbl, period), 0))
            for _, doc in docs:
                key = (doc["feed"], doc["table"], doc["period"])
                latest[key] = max(doc["version"], latest.get(key, 0))
            batches: dict[str, list[tuple[Path, dict]]] = {}
            for path, doc in docs:
                key = (doc["feed"], doc["table"], doc["period"])
                if doc["delivery"] in loaded or doc["version"] < latest[key]:
                    result.skipped.append(doc["delivery"])  # loaded already, or a newer version exists
                    continue
                self._check_key(con, doc)
                batches.setdefault(doc["table"], []).append((path, doc))
            for table, batch in sorted(batches.items()):
                self._load_table(con, Path(staging), table, batch, result)
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

    def _load_table(self, con, staging: Path, tbl: str, batch: list[tuple[Path, dict]], result: LoadResult) -> None:
        """Load new deliveries of one table (at most one per period) in one transaction.

        Staged files are encrypted: each is decrypted in this process and streamed to DuckDB as
        Arrow batches, so no key reaches SQL text."""
        table = f"stg_{tbl}"
        files = [(m.with_name(m.name.replace(".manifest.json", ".parquet")), m, d) for m, d in batch]
        con.execute("BEGIN TRANSACTION")
        try:
            first = staged_reader(staging, files[0][0], self.keystore, {"_period": "", "_version": 0})
            shape = pa.Table.from_batches([], schema=first.schema)  # noqa: F841 - read by DuckDB by name
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM shape")
            con.execute("CREATE OR REPLACE TEMP TABLE _batch (delivery VARCHAR, feed VARCHAR, "
                        "period VARCHAR, version INTEGER, manifest_sha256 VARCHAR)")
            con.executemany("INSERT INTO _batch VALUES (?, ?, ?, ?, ?)", [
                [d["delivery"], d["feed"], d["period"], d["version"], hashlib.sha256(m.read_bytes()).hexdigest()]
                for _, m, d in files])
            superseded = con.execute(
                "SELECT l.delivery, b.delivery FROM _loads l JOIN _batch b ON l.feed = b.feed AND l.period = b.period "
                "WHERE l.tbl = ? AND l.superseded_by IS NULL", [tbl]).fetchall()
            if superseded:
                con.execute(f"DELETE FROM {table} WHERE _period IN (SELECT period FROM _batch)")
                con.execute("UPDATE _loads SET superseded_by = b.delivery FROM _batch b WHERE _loads.feed = b.feed "
                            "AND _loads.tbl = ? AND _loads.period = b.period AND _loads.superseded_by IS NULL", [tbl])
                result.superseded += [old for old, _ in superseded]
            for parquet, _, doc in files:
                staged = staged_reader(staging, parquet, self.keystore,  # noqa: F841 - read by DuckDB by name
                                       {"_period": doc["period"], "_version": doc["version"]})
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM staged")
                crash_point("warehouse.delivery-inserted")
            con.execute(f"""
                INSERT INTO _loads
                SELECT b.delivery, b.feed, ?, b.period, b.version, b.manifest_sha256, coalesce(c.n, 0), now(), NULL
                FROM _batch b LEFT JOIN (SELECT _period, count(*) AS n FROM {table}
                                         WHERE _period IN (SELECT period FROM _batch) GROUP BY ALL) c
                  ON c._period = b.period
            """, [tbl])
            con.execute("DROP TABLE _batch")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        result.loaded += [d["delivery"] for _, _, d in files]

    def describe(self) -> dict:
        con = self.open(create=False)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'w' ORDER BY 1").fetchall()]
            return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables} | {
                "_meta": dict(con.execute("SELECT key, value FROM _meta").fetchall())}
        finally:
            con.close()

