"""Publishing marts: read-only, encrypted DuckDB files per access tier, switched atomically.

Each publish writes ``marts/<mart>/<mart>-<stamp>.duckdb`` from the warehouse under a fresh
data-encryption key, checks its tables and columns against the mart contract, then replaces
``marts/<mart>.current.json`` (one ``os.replace``): a reader sees the old mart or the new one,
never half of one. The previous file is kept for readers that still have it open; older files
are deleted and their keys destroyed (crypto-shredding).

People appear under a *mart pseudonym*: HMAC of the warehouse pseudonym under the mart key
domain, so a mart cannot be joined to staging, the warehouse or a mart of another domain.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipeline.errors import ContractError
from pipeline.failpoints import crash_point
from pipeline.fsutil import fsync_path
from pipeline.ingest.staging import read_manifest, write_json_atomic
from pipeline.keys import KeyDomain
from pipeline.linkage.coverage import one_year_after, reference_date
from pipeline.linkage.linked import create_linked_views, warehouse_tables
from pipeline.linkage.quality import age_band_sql
from pipeline.linkage.spine import EMERGENCY_METHODS
from pipeline.marts.contracts import MartContract, load_mart_contracts
from pipeline.pseudonymise.pseudonyms import hmac_expr

__all__ = ["MART_PREFIX", "MartBuild", "current_mart", "mart_person_ids", "publish_marts", "shred_superseded"]

MART_PREFIX = "mart-person:v1:"
KEEP_FILES = 2  # the current file and the one before it


@dataclass
class MartBuild:
    name: str
    file: str
    tables: dict[str, int]


def current_mart(marts_dir: Path, name: str) -> dict | None:
    """The pointer of a published mart: file, key name, built time, table rows."""
    return read_manifest(Path(marts_dir) / f"{name}.current.json")


def mart_person_ids(con: duckdb.DuckDBPyConnection, keystore) -> pl.DataFrame:
    """(person_pid, person_id) for everyone on the spine: the mart pseudonym of each warehouse
    pseudonym. The key stays in this process's memory: it is in a polars expression, never in SQL."""
    pids = con.execute("SELECT DISTINCT person_pid FROM w.spine").pl()
    key = keystore.domain_key(KeyDomain.MART).material
    return pids.with_columns(hmac_expr(pl.col("person_pid"), key, MART_PREFIX).alias("person_id"))


def _person_map(con: duckdb.DuckDBPyConnection, keystore) -> None:
    """Register ``_mart_ids`` (person_pid -> person_id) in the connection."""
    con.register("_mart_ids", mart_person_ids(con, keystore).to_arrow())


def _window(reference: dt.date, date_col: str) -> str:
    """The year before the reference date, as the risk features count it: [R - 1 year, R)."""
    return f"{date_col} >= DATE '{one_year_after(reference, -1)}' AND {date_col} < DATE '{reference}'"


def _build_person(con, reference: dt.date, present: set[str]) -> None:
    """``m.people``: one row per person on the spine; the ``_12m`` columns count the year before
    the reference date (the scoring date), never the day the mart happens to be built."""
    create_linked_views(con, present)

    def count(table: str, date_col: str, extra: str = "") -> str:
        if f"stg_{table}" not in present:
            return "SELECT NULL::VARCHAR AS person_pid, 0::BIGINT AS n WHERE false"
        return (f"SELECT person_pid, count(*) AS n FROM linked_{table} "
                f"WHERE person_pid IS NOT NULL AND {_window(reference, date_col)} {extra} GROUP BY ALL")

    spells_window = _window(reference, "admission_date")
    methods = ", ".join(f"'{m}'" for m in EMERGENCY_METHODS)
    apc = ("SELECT person_pid, count(*) AS spells, count(*) FILTER (WHERE emergency) AS emergency, "
           "sum(greatest(date_diff('day', admission_date, coalesce(discharge_date, admission_date)), 0)) AS bed_days "
           "FROM (SELECT DISTINCT ON (spell_id) person_pid, admission_date, discharge_date, "
           f"admission_method IN ({methods}) AS emergency FROM linked_sus_apc_spells ORDER BY spell_id, _version DESC) "
           f"WHERE person_pid IS NOT NULL AND {spells_window} GROUP BY ALL") if "stg_sus_apc_spells" in present else (
           "SELECT NULL::VARCHAR AS person_pid, 0 AS spells, 0 AS emergency, 0 AS bed_days WHERE false")
    ltc = ("SELECT person_pid, count(DISTINCT condition) AS n FROM w.stg_gp_ltc_diagnoses GROUP BY ALL"
           if "stg_gp_ltc_diagnoses" in present else "SELECT NULL::VARCHAR AS person_pid, 0 AS n WHERE false")
    bnf = ("SELECT person_pid, count(DISTINCT bnf_chapter) AS n FROM w.stg_gp_prescribing "
           f"WHERE {_window(reference, 'last_issue_date')} GROUP BY ALL"
           if "stg_gp_prescribing" in present else "SELECT NULL::VARCHAR AS person_pid, 0 AS n WHERE false")
    asc = ("SELECT DISTINCT person_pid FROM linked_asc_clients WHERE person_pid IS NOT NULL"
           if "stg_asc_clients" in present else "SELECT NULL::VARCHAR AS person_pid WHERE false")
    wards = ("SELECT ward_code, min(ward_name) AS ward_name FROM w.stg_postcode_lookup WHERE ward_code IS NOT NULL "
             "GROUP BY ward_code" if "stg_postcode_lookup" in present
             else "SELECT NULL::VARCHAR AS ward_code, NULL::VARCHAR AS ward_name WHERE false")
    lo, hi = f"DATE '{one_year_after(reference, -1)}'", f"DATE '{reference}'"
    cost = (  # each service's weekly cost over the days it ran in the year before the reference date
        "SELECT c.person_pid, sum(s.weekly_cost * greatest(date_diff('day', greatest(s.start_date, "
        f"{lo}), least(coalesce(s.end_date, {hi}), {hi})), 0) / 7.0) AS cost "
        "FROM (SELECT DISTINCT person_pid, client_id_pid FROM linked_asc_clients WHERE person_pid IS NOT NULL) c "
        "JOIN (SELECT DISTINCT client_id_pid, service_id, start_date, end_date, weekly_cost FROM w.stg_asc_services) s "
        "USING (client_id_pid) GROUP BY ALL"
        if {"stg_asc_clients", "stg_asc_services"} <= present else "SELECT NULL::VARCHAR AS person_pid, 0 AS cost WHERE false")
    practices = ("SELECT practice_code, min(practice_name) AS practice_name FROM w.stg_ods_practices "
                 "WHERE practice_code IS NOT NULL GROUP BY practice_code" if "stg_ods_practices" in present
                 else "SELECT NULL::VARCHAR AS practice_code, NULL::VARCHAR AS practice_name WHERE false")
    con.execute(f"CREATE TABLE m.practices AS {practices}")
    con.execute(f"""
        CREATE TABLE m.people AS
        SELECT i.person_id, s.age::INTEGER AS age, {age_band_sql('s.age')} AS age_band, s.gender,
               s.postcode_sector, s.lsoa21cd, s.ward_code, wn.ward_name, s.imd_decile::INTEGER AS imd_decile,
               CAST(ceil(s.imd_decile / 2) AS INTEGER) AS imd_quintile, s.registered_practice,
               array_to_string(s.sources, ',') AS feeds, s.gender_conflict, s.age_conflict,
               coalesce(apc.spells, 0)::BIGINT AS apc_spells_12m,
               coalesce(apc.emergency, 0)::BIGINT AS emergency_spells_12m,
               coalesce(apc.bed_days, 0)::BIGINT AS bed_days_12m,
               coalesce(ae.n, 0)::BIGINT AS ae_attendances_12m,
               coalesce(op.n, 0)::BIGINT AS op_attendances_12m,
               coalesce(cs.n, 0)::BIGINT AS community_contacts_12m,
               coalesce(mh.n, 0)::BIGINT AS mh_contacts_12m,
               sc.person_pid IS NOT NULL AS social_care_client,
               round(coalesce(asc_cost.cost, 0), 2)::DOUBLE AS social_care_cost_12m,
               coalesce(ltc.n, 0)::BIGINT AS ltc_count,
               coalesce(bnf.n, 0)::BIGINT AS bnf_chapters
        FROM w.spine s JOIN _mart_ids i USING (person_pid)
        LEFT JOIN ({wards}) wn USING (ward_code)
        LEFT JOIN ({apc}) apc USING (person_pid)
        LEFT JOIN ({count('ecds_attendances', 'arrival_date')}) ae USING (person_pid)
        LEFT JOIN ({count('sus_op_attendances', 'appointment_date', "AND attendance_status IN ('5', '6')")}) op
               USING (person_pid)
        LEFT JOIN ({count('csds_contacts', 'contact_date')}) cs USING (person_pid)
        LEFT JOIN ({count('mhsds_contacts', 'contact_date')}) mh USING (person_pid)
        LEFT JOIN ({asc}) sc USING (person_pid)
        LEFT JOIN ({cost}) asc_cost USING (person_pid)
        LEFT JOIN ({ltc}) ltc USING (person_pid)
        LEFT JOIN ({bnf}) bnf USING (person_pid)
        ORDER BY i.person_id
    """)


def _build_risk(con, present: set[str]) -> None:
    """``m.risk_scores``: the latest scores and tiers (empty until ``stratify`` has run)."""
    source = ("SELECT * FROM w.risk_scores" if "risk_scores" in present else
              "SELECT NULL::VARCHAR AS person_pid, NULL::VARCHAR AS practice_code, NULL::DOUBLE AS score, "
              "NULL::VARCHAR AS tier, NULL::BIGINT AS tier_rank, NULL::VARCHAR[] AS drivers, "
              "NULL::DATE AS reference_date, NULL::VARCHAR AS model_version, NULL::VARCHAR AS score_source WHERE false")
    con.execute(f"""
        CREATE TABLE m.risk_scores AS
        SELECT i.person_id, r.practice_code AS registered_practice, r.reference_date, r.score, r.tier, r.tier_rank,
               array_to_string(r.drivers, '; ') AS drivers, r.model_version, r.score_source
        FROM ({source}) r JOIN _mart_ids i USING (person_pid)
        ORDER BY r.tier_rank NULLS LAST, i.person_id
    """)


def _build_linkage(con) -> None:
    con.execute("""
        CREATE TABLE m.record_linkage AS
        SELECT r.source, r._period AS period, r.source_row, r.nhs_number_status, i.person_id, r.link_status,
               r.match_rule, r.confidence, r.unlinked_reason, r.age_band, r.gender, r.imd_quintile
        FROM w.record_linkage r LEFT JOIN _mart_ids i USING (person_pid)
        ORDER BY r.source, r._period, r.source_row
    """)
    con.execute("CREATE TABLE m.deliveries AS SELECT delivery, feed, tbl, period, version, rows, loaded_at, "
                "superseded_by FROM w._loads ORDER BY delivery")


def _build_governance(con, audit_log: Path) -> None:
    if audit_log.exists() and audit_log.stat().st_size:
        source = (f"read_json('{audit_log}', format = 'newline_delimited', "
                  "columns = {seq: 'BIGINT', ts: 'TIMESTAMPTZ', event: 'VARCHAR', actor: 'VARCHAR', "
                  "details: 'JSON', hash: 'VARCHAR'})")
    else:
        source = ("(SELECT NULL::BIGINT AS seq, NULL::TIMESTAMPTZ AS ts, NULL::VARCHAR AS event, "
                  "NULL::VARCHAR AS actor, NULL::JSON AS details, NULL::VARCHAR AS hash WHERE false)")
    con.execute(f"CREATE TABLE m.audit_events AS SELECT seq, ts, event, actor, details, hash FROM {source} ORDER BY seq")


def _check_against_contract(con, contract: MartContract) -> dict[str, int]:
    built = {}
    for table in contract.tables:
        columns = tuple(r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'm' AND table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall())
        if columns != contract.columns(table):
            raise ContractError(f"mart {contract.name}.{table} does not match its contract ({contract.path.name}): "
                               f"built {columns}, declared {contract.columns(table)}")
        built[table] = con.execute(f"SELECT count(*) FROM m.{table}").fetchone()[0]
    extra = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_catalog = 'm'").fetchall()} - set(contract.tables)
    if extra:
        raise ContractError(f"mart {contract.name} has tables its contract does not declare: {sorted(extra)}")
    return built


def publish_marts(settings, keystore, warehouse, audit) -> list[MartBuild]:
    """Build every mart from the current warehouse and switch each one in atomically."""
    contracts = load_mart_contracts(settings.contracts_dir)
    builders = {"person": lambda con, present, ref: (_build_person(con, ref, present), _build_risk(con, present)),
                "linkage": lambda con, present, ref: _build_linkage(con),
                "governance": lambda con, present, ref: _build_governance(con, settings.audit_log)}
    unknown = set(contracts) - set(builders)
    if unknown:
        raise ContractError(f"no builder for mart contract(s) {sorted(unknown)}: a mart needs code as well as a contract")
    con = warehouse.open(create=False)
    published = []
    try:
        con.execute("USE memory")
        present = warehouse_tables(con)
        try:
            reference = reference_date(con)
        except (ValueError, duckdb.Error):  # no activity loaded yet (say, registrations only): nothing to count back from
            reference = settings.today()
        _person_map(con, keystore)
        for name, contract in sorted(contracts.items()):
            published.append(_publish_one(settings, keystore, con, name, contract, builders[name], present,
                                          reference))
    finally:
        con.close()
    for build in published:
        audit.append("mart.published", {"mart": build.name, "file": build.file, "tables": build.tables,
                                        "readers": sorted(contracts[build.name].readers),
                                        "reference_date": reference.isoformat()})
    return published


def _publish_one(settings, keystore, con, name: str, contract: MartContract, build, present,
                 reference: dt.date) -> MartBuild:
    folder = settings.marts_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    _remove_orphans(settings.marts_dir, folder, name, keystore)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{name}-{stamp}.duckdb"
    key_name = f"mart-{name}-{stamp}"
    key = keystore.data_key(key_name, create=True)
    con.execute(f"ATTACH '{path}' AS m (ENCRYPTION_KEY $key)", {"key": key.hex()})
    try:
        build(con, present, reference)
        tables = _check_against_contract(con, contract)
        con.execute("CHECKPOINT m")
    finally:
        con.execute("DETACH m")
    fsync_path(path)
    path.chmod(0o440)
    crash_point("mart.written")
    write_json_atomic(settings.marts_dir / f"{name}.current.json", {
        "mart": name, "file": f"{name}/{path.name}", "key": key_name, "tables": tables,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "contract": contract.path.name,
        "reference_date": reference.isoformat(),
        **({"as_of": settings.as_of.isoformat()} if settings.as_of else {})})
    _prune(folder, name, keystore)
    return MartBuild(name, f"{name}/{path.name}", tables)


def _remove_file(path: Path, name: str, keystore) -> None:
    path.chmod(0o640)
    path.unlink()
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    keystore.destroy_data_key(f"mart-{name}-{path.stem.removeprefix(f'{name}-')}", missing_ok=True)


def _remove_orphans(marts_dir: Path, folder: Path, name: str, keystore) -> None:
    """Files (and keys) of a publish that crashed before its switch: newer than the current one."""
    pointer = current_mart(marts_dir, name)
    current = Path(pointer["file"]).name if pointer else ""
    for path in folder.glob(f"{name}-*.duckdb"):
        if path.name > current:
            _remove_file(path, name, keystore)
    live = {f"mart-{name}-{p.stem.removeprefix(f'{name}-')}" for p in folder.glob(f"{name}-*.duckdb")}
    for key_name in keystore.data_key_names(prefix=f"mart-{name}-"):
        if key_name not in live:
            keystore.destroy_data_key(key_name)


def _prune(folder: Path, name: str, keystore) -> None:
    """Keep the newest ``KEEP_FILES`` files; delete older ones and destroy their keys."""
    files = sorted(folder.glob(f"{name}-*.duckdb"))
    for old in files[:-KEEP_FILES]:
        _remove_file(old, name, keystore)


def shred_superseded(settings, keystore) -> list[tuple[str, str]]:
    """Delete every mart file but the current one of each mart, and destroy their keys.

    Retention calls this after rebuilding the marts from a warehouse that lost rows: a
    superseded mart may still hold them. Returns (file under the data root, key name) pairs."""
    removed = []
    for pointer_file in sorted(settings.marts_dir.glob("*.current.json")):
        name = pointer_file.name.removesuffix(".current.json")
        current = Path(read_manifest(pointer_file)["file"]).name
        for path in sorted((settings.marts_dir / name).glob(f"{name}-*.duckdb")):
            if path.name != current:
                removed.append((str(path.relative_to(settings.data_root)),
                                f"mart-{name}-{path.stem.removeprefix(f'{name}-')}"))
                _remove_file(path, name, keystore)
    return removed
