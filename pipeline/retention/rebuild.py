"""Rebuild the warehouse without the rows past retention, into a new file under a new key.

DuckDB's ``DELETE`` leaves the deleted values in the file's free blocks (see
``docs/DEVELOPERS.md``, decision 67), so rows are never deleted in place. The rebuild attaches
the current generation read-only and a new generation under a fresh data-encryption key,
copies each staged table *without* its due rows, copies the bookkeeping tables, rebuilds the
linkage tables from what is left (the same functions ``link`` uses: spine, spells, rescue,
``record_linkage``) and keeps other per-person tables (risk features and scores) only for
people still on the spine. The new file is checkpointed, closed and fsynced; only then does
the caller switch the pointer to it.

The rebuild also returns the *destroyed values*: every pseudonym (``*_pid`` column) and source
record id (``*_id``, such as ``spell_id``) in a due row that appears nowhere in the new generation. They exist only to prove, after
destruction, that no readable file still holds them; the caller keeps them encrypted under a
key of their own and destroys that key when the certificate is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipeline.failpoints import crash_point
from pipeline.fsutil import fsync_path
from pipeline.linkage.quality import build_record_linkage
from pipeline.linkage.rescue import rescue_link
from pipeline.linkage.spine import build_spine
from pipeline.linkage.warehouse import BOOKKEEPING_DDL, Warehouse, connect
from pipeline.retention.policy import TableRule

__all__ = ["LINK_TABLES", "RebuildResult", "rebuild_warehouse"]

#: Tables ``link`` derives from the staged tables: rebuilt, never copied.
LINK_TABLES = frozenset({"person_events", "spine", "apc_spells", "rescue_candidates", "rescue_outcomes",
                         "rescued_links", "record_linkage"})
BOOKKEEPING = frozenset({"_loads", "_meta"})


@dataclass
class RebuildResult:
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    destroyed: pa.Table  # ``v``, ``kind``: pseudonyms and record ids that no longer appear anywhere
    people_before: int
    people_after: int

    @property
    def rows_destroyed(self) -> dict[str, int]:
        return {t: self.rows_before[t] - self.rows_after.get(t, 0) for t in self.rows_before
                if self.rows_before[t] != self.rows_after.get(t, 0)}


def _tables(con, catalog: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? ORDER BY 1", [catalog]).fetchall()]


def _pid_columns(con, catalog: str, table: str) -> list[str]:
    return [c for c, _ in _value_columns(con, catalog, table) if c.endswith("_pid")]


def _value_columns(con, catalog: str, table: str) -> list[tuple[str, str]]:
    """Text columns that single out a person or a record: pseudonyms (``*_pid``) and source
    record ids (``*_id``, e.g. ``spell_id``), with which of the two each is."""
    return [(r[0], "pseudonym" if r[0].endswith("_pid") else "record id") for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND table_name = ? "
        "AND data_type = 'VARCHAR' AND (suffix(column_name, '_pid') OR suffix(column_name, '_id')) "
        "ORDER BY ordinal_position", [catalog, table]).fetchall()]


def _count(con, catalog: str, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {catalog}.{table}").fetchone()[0]


def rebuild_warehouse(warehouse: Warehouse, old_generation: int, new_generation: int,
                      rules: list[TableRule], progress=lambda step: None) -> RebuildResult:
    """Write generation ``new_generation`` without the rows ``rules`` mark as due."""
    by_table = {r.warehouse_table: r for r in rules}
    old_path, new_path = warehouse.path_for(old_generation), warehouse.path_for(new_generation)
    for leftover in (new_path, new_path.with_name(new_path.name + ".wal")):
        leftover.unlink(missing_ok=True)  # a rebuild that crashed before the switch
    old_key = warehouse.keystore.data_key(warehouse._key_name(old_generation))
    new_key = warehouse.keystore.data_key(warehouse._key_name(new_generation), create=True)
    con = connect()
    try:
        con.execute(f"ATTACH '{old_path}' AS old (ENCRYPTION_KEY $key, READ_ONLY)", {"key": old_key.hex()})
        con.execute(f"ATTACH '{new_path}' AS w (ENCRYPTION_KEY $key)", {"key": new_key.hex()})
        con.execute("USE w")
        old_tables = _tables(con, "old")
        before = {t: _count(con, "old", t) for t in old_tables}
        people_before = before.get("spine", 0)
        con.execute("CREATE TEMP TABLE _candidates (v VARCHAR, kind VARCHAR)")
        for ddl in BOOKKEEPING_DDL:
            con.execute(ddl)
        for table in sorted(BOOKKEEPING):
            con.execute(f"INSERT INTO w.{table} SELECT * FROM old.{table}")
        per_person = []
        for table in old_tables:
            if table in LINK_TABLES or table in BOOKKEEPING:
                continue
            rule = by_table.get(table)
            if rule is None:
                con.execute(f"CREATE TABLE w.{table} AS SELECT * FROM old.{table}")
                if not table.startswith("stg_") and _pid_columns(con, "old", table):
                    per_person.append(table)
                continue
            due = rule.due_sql().format(table=f"old.{table}")
            con.execute(f"CREATE TABLE w.{table} AS SELECT * FROM old.{table} WHERE NOT coalesce({due}, false)")
            for column, kind in _value_columns(con, "old", table):
                con.execute(f"INSERT INTO _candidates SELECT DISTINCT {column}, '{kind}' FROM old.{table} "
                            f"WHERE {due} AND {column} IS NOT NULL")
            progress(f"copy {table}")
            crash_point("retention.table-copied")
        con.execute("DETACH old")
        build_spine(con)
        rescue_link(con)
        build_record_linkage(con)
        progress("rebuild linkage")
        for table in per_person:
            con.execute(f"DELETE FROM w.{table} WHERE person_pid NOT IN (SELECT person_pid FROM w.spine)")
        con.execute("CHECKPOINT w")
        missing = sorted(set(old_tables) - set(_tables(con, "w")))
        if missing:
            raise RuntimeError(f"the rebuilt warehouse lacks table(s) {missing}: no rebuild rule for them")
        after = {t: _count(con, "w", t) for t in _tables(con, "w")}
        present = " UNION ".join(f"SELECT {c} FROM w.{t}" for t in _tables(con, "w")
                                 for c, _ in _value_columns(con, "w", t)) or "SELECT NULL::VARCHAR"
        destroyed = con.execute(f"SELECT DISTINCT c.v, c.kind FROM _candidates c ANTI JOIN ({present}) p(x) "
                                "ON c.v = p.x ORDER BY 2, 1").arrow()
        if isinstance(destroyed, pa.RecordBatchReader):
            destroyed = destroyed.read_all()
        con.execute("USE memory")
        con.execute("DETACH w")
    finally:
        con.close()
    fsync_path(new_path)
    return RebuildResult(before, after, destroyed, people_before, after.get("spine", 0))
