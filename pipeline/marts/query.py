"""Analyst access: read-only SQL over the marts a role may read, audited.

``run_query(settings, keystore, role, sql)`` opens a fresh in-memory DuckDB, attaches the
current file of each mart the role may read (per the mart contracts) read-only, then switches
off external access (no files, no URLs, no new ATTACH) and locks the configuration. Only a
single read statement (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE) is accepted; anything
else (a write, ATTACH, COPY, SET, PRAGMA, INSTALL, a second statement) is refused before it
runs. Every query, refused or run, is in the audit log: who, the role, the SQL (with anything
identifier-shaped redacted, plus its SHA-256), the marts, and how many rows came back.
"""

from __future__ import annotations

import getpass
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.errors import QueryRefused, UserError
from pipeline.linkage.warehouse import connect
from pipeline.logs import redact
from pipeline.marts.build import current_mart
from pipeline.marts.contracts import load_mart_contracts, roles_of

__all__ = ["QueryResult", "attach_marts", "export_result", "open_marts", "run_query"]

_READS = {duckdb.StatementType.SELECT}


@dataclass
class QueryResult:
    table: pa.Table
    marts: tuple[str, ...]

    @property
    def rows(self) -> int:
        return self.table.num_rows


def _marts_for(settings, role: str) -> tuple[str, ...]:
    roles = roles_of(load_mart_contracts(settings.contracts_dir))
    if role not in roles:
        raise UserError(f"unknown role '{role}': the mart contracts name {', '.join(roles)}")
    return roles[role]


def _attach(con: duckdb.DuckDBPyConnection, settings, keystore, marts: tuple[str, ...]) -> tuple[str, ...]:
    """Attach the current file of each published mart in ``marts`` read-only, as a catalog named
    after it (the key a bound parameter, never SQL text); the names attached."""
    attached = []
    for name in marts:
        pointer = current_mart(settings.marts_dir, name)
        if pointer is None:
            continue
        con.execute(f"ATTACH '{settings.marts_dir / pointer['file']}' AS {name} (ENCRYPTION_KEY $key, READ_ONLY)",
                    {"key": keystore.data_key(pointer["key"]).hex()})
        attached.append(name)
    return tuple(attached)


def open_marts(settings, keystore, role: str) -> tuple[duckdb.DuckDBPyConnection, tuple[str, ...]]:
    """A locked-down connection with the role's marts attached read-only (as catalogs named
    after the marts; their tables are also on the search path)."""
    marts = _marts_for(settings, role)
    con = connect()
    try:
        attached = _attach(con, settings, keystore, marts)
        if not attached:
            raise UserError(f"no mart is published for role '{role}' yet: run 'safehaven link'")
        con.execute(f"SET search_path = '{','.join(f'{n}.main' for n in attached)}'")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con, attached


def attach_marts(con: duckdb.DuckDBPyConnection, role: str, settings=None, actor: str | None = None) -> tuple[str, ...]:
    """Attach, read-only, the current file of each mart ``role`` may read to a DuckDB connection
    of your own (catalogs named after the marts), unlocked with the role's own credential
    (``SAFEHAVEN_KEK_<ROLE>``) and nothing else; audited as ``marts.attached``. For notebooks and
    other tools: the connection is yours, so what you do with it is not audited query by query,
    and a file you write from it is yours to protect (``safehaven query --csv`` writes 0600 and
    audits the export). ``settings``: default from the environment (``SAFEHAVEN_DATA_ROOT``)."""
    from pipeline.keys import open_keystore
    from pipeline.linkage.warehouse import httpfs_extension
    from pipeline.settings import load_settings

    settings = settings or load_settings()
    marts = _marts_for(settings, role)
    keystore = open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers, roles=(role,))
    con.execute(f"LOAD '{httpfs_extension()}'")  # DuckDB's encryption needs OpenSSL from httpfs
    attached = _attach(con, settings, keystore, marts)
    settings.audit().append("marts.attached", {"role": role, "user": actor or getpass.getuser(),
                                               "marts": list(attached)})
    return attached


def _sql_record(sql: str) -> dict:
    return {"sql": redact(sql.strip())[:4000], "sql_sha256": hashlib.sha256(sql.encode()).hexdigest()}


def run_query(settings, keystore, role: str, sql: str, audit, actor: str | None = None) -> QueryResult:
    """Run one read-only statement for ``role``; audited whether it runs, fails or is refused."""
    actor = actor or getpass.getuser()
    marts = _marts_for(settings, role)
    base = {"role": role, "user": actor, **_sql_record(sql)}
    try:
        statements = duckdb.connect().extract_statements(sql)
    except duckdb.Error as exc:
        audit.append("query.failed", base | {"error": "syntax"})
        raise UserError(f"the query does not parse: {redact(str(exc))}") from None
    refused = None
    if len(statements) != 1:
        refused = f"one statement at a time ({len(statements)} given)"
    elif statements[0].type not in _READS:
        refused = f"{statements[0].type.name} is not allowed: the marts are read-only (SELECT only)"
    if refused:
        audit.append("query.refused", base | {"reason": refused, "marts": list(marts)})
        raise QueryRefused(f"query refused for role '{role}': {refused}")
    con, attached = open_marts(settings, keystore, role)
    try:
        table = con.execute(sql).fetch_arrow_table()
    except duckdb.Error as exc:
        message = redact(str(exc).splitlines()[0])
        if isinstance(exc, duckdb.PermissionException) or "read-only" in message:
            audit.append("query.refused", base | {"reason": message[:500], "marts": list(attached)})
            raise QueryRefused(f"query refused for role '{role}': {message}") from None
        audit.append("query.failed", base | {"error": message[:500], "marts": list(attached)})
        raise UserError(f"query failed: {message}") from None
    finally:
        con.close()
    audit.append("query.run", base | {"marts": list(attached), "rows": table.num_rows})
    return QueryResult(table, attached)


def export_result(result: QueryResult, path, audit, role: str, fmt: str = "csv", actor: str | None = None) -> Path:
    """Write a query's result to ``path`` (``fmt``: csv or parquet) readable by its owner
    only (0600, whatever the umask; an existing file is replaced, not rewritten in place), and
    audit where it went and how many rows: an export is person-level data leaving the marts."""
    import os
    import tempfile

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if fmt not in ("csv", "parquet"):
        raise UserError(f"export format {fmt!r}: csv or parquet")
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        os.close(fd)
        (pq.write_table if fmt == "parquet" else pacsv.write_csv)(result.table, scratch)
        os.chmod(scratch, 0o600)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    audit.append("query.exported", {"role": role, "user": actor or getpass.getuser(), "path": str(path.resolve()),
                                    "format": fmt, "rows": result.rows, "marts": list(result.marts)})
    return path
