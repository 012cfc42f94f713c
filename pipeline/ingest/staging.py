"""Staging: one pseudonymised Parquet file per delivery plus its manifest.

    staging/<feed>/<table>/<period>__v<version>.parquet
    staging/<feed>/<table>/<period>__v<version>.manifest.json   (written last: its presence = done)
    staging/_keys.json                                           (the linkage key staging is pinned to)
    staging/_bridges/<old key>__to__<new key>/...parquet         (old-to-new pseudonyms, rotation)

Every staged Parquet file is encrypted (Parquet modular encryption, AES-GCM, footer and every
column) under its own random data-encryption key, held wrapped in the keystore as
``staged:<path under staging without .parquet>``. One key per file is one key per dataset
generation: retention destroys a staged delivery by deleting the file and destroying its key,
which also makes any copy of the file unreadable. ``read_staged`` and ``staged_reader`` decrypt.

Writes are atomic: a temporary file in the same folder, fsynced, then renamed. A crash leaves
at most a temporary file (removed on the next run) or a Parquet file with no manifest (redone):
never a half-written file under its final name. Re-ingesting a delivery whose manifest names
the same input hash and key is a no-op.
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pqe

from pipeline.errors import KeyMismatch
from pipeline.ingest.deliveries import Delivery
from pipeline.keys import DomainKey

__all__ = ["ParquetOut", "StagedPaths", "pin_linkage_key", "read_manifest", "read_staged", "staged_key_name",
           "staged_paths", "staged_reader", "write_json_atomic", "write_text_atomic"]

STAGED_KEY_PREFIX = "staged:"


def staged_key_name(staging: Path, parquet: Path) -> str:
    """The keystore name of a staged file's data-encryption key (a path, never data)."""
    return STAGED_KEY_PREFIX + Path(parquet).relative_to(staging).with_suffix("").as_posix()


def _decryption(staging: Path, parquet: Path, keystore) -> pq.FileDecryptionProperties:
    return pqe.create_decryption_properties(keystore.data_key(staged_key_name(staging, parquet)))


def read_staged(staging: Path, parquet: Path, keystore, columns: list[str] | None = None) -> pa.Table:
    """A staged file, decrypted (raises ``KeystoreError`` once its key is destroyed)."""
    return pq.read_table(parquet, columns=columns, decryption_properties=_decryption(staging, parquet, keystore))


def staged_reader(staging: Path, parquet: Path, keystore, extra: dict | None = None,
                  batch_rows: int = 256_000) -> pa.RecordBatchReader:
    """A streaming reader over a staged file, decrypted, with constant ``extra`` columns added
    (DuckDB reads it without the key ever reaching SQL text)."""
    source = pq.ParquetFile(parquet, decryption_properties=_decryption(staging, parquet, keystore))
    extra = extra or {}
    schema = source.schema_arrow
    for name, value in extra.items():
        schema = schema.append(pa.field(name, pa.scalar(value).type))

    def batches():
        for batch in source.iter_batches(batch_size=batch_rows):
            arrays = batch.columns + [pa.array([value] * batch.num_rows, type=schema.field(name).type)
                                      for name, value in extra.items()]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


class StagedPaths:
    def __init__(self, staging: Path, delivery: Delivery):
        folder = Path(staging) / delivery.feed / delivery.table
        stem = f"{delivery.period}__v{delivery.version}"
        self.folder = folder
        self.parquet = folder / f"{stem}.parquet"
        self.manifest = folder / f"{stem}.manifest.json"


def staged_paths(staging: Path, delivery: Delivery) -> StagedPaths:
    return StagedPaths(staging, delivery)


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def write_json_atomic(path: Path, doc: dict) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, fsynced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".tmp-{path.name}-*"):
        stale.unlink(missing_ok=True)  # left by a writer of this same file that was killed
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ParquetOut:
    """Write batches to a temporary Parquet file on a background thread; ``commit`` waits for
    the writer, fsyncs and renames the file into place.

    Encoding a batch overlaps transforming the next one (pyarrow releases the GIL). At most two
    batches wait in the queue, so memory stays bounded. A writer error is raised on the next
    ``write`` or on ``commit``; ``abort`` stops the writer and removes the temporary file.
    """

    _STOP = object()

    def __init__(self, final: Path, key: bytes):
        self.final = Path(final)
        self._encryption = pqe.create_encryption_properties(key)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # Leftovers of a crashed run of this same delivery (other deliveries of the table may be
        # being written next to it right now, so only this file's own temporaries go).
        for stale in self.final.parent.glob(f".tmp-{self.final.stem}-*"):
            stale.unlink(missing_ok=True)
        self.tmp = self.final.parent / f".tmp-{self.final.stem}-{uuid.uuid4().hex}.parquet"
        self.rows = 0
        self._schema: pa.Schema | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        writer = None
        try:
            while (table := self._queue.get()) is not self._STOP:
                if writer is None:
                    writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd",
                                              encryption_properties=self._encryption)
                writer.write_table(table)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller on write or commit
            self._error = exc
            while self._queue.get() is not self._STOP:  # drain so the producer never blocks
                pass
        finally:
            if writer is not None:
                writer.close()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, table: pa.Table) -> None:
        self._raise()
        if self._schema is None:
            self._schema = table.schema
        elif table.schema != self._schema:
            table = table.cast(self._schema)
        self._queue.put(table)
        self.rows += table.num_rows

    def commit(self, empty_schema: pa.Schema | None = None) -> None:
        self._queue.put(self._STOP)
        self._thread.join()
        self._raise()
        if self._schema is None:
            pq.write_table(pa.Table.from_pylist([], schema=empty_schema or pa.schema([])), self.tmp,
                           encryption_properties=self._encryption)
        with open(self.tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()
        self.tmp.unlink(missing_ok=True)


def pin_linkage_key(staging: Path, key: DomainKey, accept_previous: DomainKey | None = None) -> None:
    """Refuse to stage under a linkage key other than the one staging already holds.

    The first ingest pins the key (id and fingerprint, never the key). During a rotation
    overlap the previous key's pin is accepted and moved to the new key: the bridge written
    during the overlap links the two.
    """
    pin_file = Path(staging) / "_keys.json"
    pinned = read_manifest(pin_file)
    record = {"linkage": {"key_id": key.key_id, "fingerprint": key.fingerprint}}
    if pinned is None:
        write_json_atomic(pin_file, record)
        return
    held = pinned["linkage"]
    if held["fingerprint"] == key.fingerprint:
        return
    if accept_previous is not None and held["fingerprint"] == accept_previous.fingerprint:
        write_json_atomic(pin_file, record | {"previous": held})
        return
    raise KeyMismatch(
        f"staging holds data pseudonymised under {held['key_id']} (fingerprint {held['fingerprint']}); "
        f"this run's key is {key.key_id} (fingerprint {key.fingerprint}). Refusing to mix pseudonym "
        "spaces: use the keystore staging was built with, or re-ingest everything under the new key"
    )
