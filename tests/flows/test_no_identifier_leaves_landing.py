"""Security property 1 after a whole demo run: no NHS number, name, date of birth or full
postcode from landing/ appears anywhere else under the data root (staging, manifests, audit
log, Data Docs, validation results, Prefect's database: parameters, state messages, logs,
artifacts), the warehouse and the marts (decrypted and read table by table), the linkage
report, the model card, the saved models, the case-finding packs, the published package (CSV,
workbook contents, page, records) and the release ledger), except the keystore, which holds only keys."""

import shutil
import sqlite3

import polars as pl

from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.linkage.warehouse import connect
from pipeline.settings import Settings
from tests.cli import prefect_db
from tests.conftest import CONTRACTS
from tests.leakscan import collect, scan, scan_file
from tests.staged import staged_frame, write_staged


def _keystore(root):
    return open_keystore(Settings(data_root=root, contracts_dir=CONTRACTS), create_demo=True, roles=ALL_ROLES)


def test_nothing_identifying_outside_landing(demo_root):
    ids = collect(demo_root / "landing")
    assert len(ids.nhs) > 1000 and len(ids.names) > 500 and len(ids.postcodes) > 500 and len(ids.dobs) > 500
    zones = {p.name for p in demo_root.iterdir()}
    assert {"staging", "validation", "audit", "prefect", "synthetic-truth", "warehouse", "marts", "reports",
            "outputs", "logs"} <= zones
    assert list((demo_root / "logs").glob("*-demo.log"))  # the run log, Prefect's logs and tracebacks included
    assert list((demo_root / "outputs" / "case-finding").rglob("*.pack.json"))
    assert list((demo_root / "outputs" / "published").rglob("*.xlsx"))  # the published package, workbook included
    assert list((demo_root / "audit" / "disclosure" / "releases").glob("*.parquet"))  # the release ledger
    assert list((demo_root / "reports" / "models").glob("*.html")) and list((demo_root / "warehouse" / "models")
                                                                            .rglob("model.pkl"))
    assert any((demo_root / "prefect").glob("*.db"))
    assert len(list((demo_root / "staging").rglob("*.parquet"))) > 200
    assert len(list((demo_root / "marts").rglob("*.duckdb"))) >= 3
    assert scan(demo_root, ids, keystore=_keystore(demo_root)) == []
    # Commands run on copies of the demo's root used the session's shared Prefect server.
    assert scan_file(prefect_db(), ids) == []


def test_the_scan_finds_an_identifier_written_through_on_purpose(demo_root, tmp_path):
    ids = collect(demo_root / "landing")
    root = tmp_path / "copy"
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns("landing"))
    shutil.copytree(demo_root / "landing", root / "landing")
    number = min(ids.nhs)
    # 1. an NHS number written into a (encrypted) staged Parquet file, under its own key
    keystore = _keystore(root)
    staged = min((root / "staging" / "sus_op").rglob("*.parquet"))
    settings = Settings(data_root=root, contracts_dir=CONTRACTS)
    frame = staged_frame(settings, staged, keystore)
    write_staged(settings, staged, frame.with_columns(pl.lit(f"{number[:3]} {number[3:6]} {number[6:]}")
                                                      .alias("spell_note")), keystore)
    # 2. a name written into Prefect's log table
    name = min(ids.names)
    con = sqlite3.connect(next((root / "prefect").glob("*.db")))
    con.execute("update log set message = ? where rowid = (select min(rowid) from log)", (f"hello {name}",))
    con.commit()
    con.close()
    # 3. a full postcode written into the (encrypted) person mart
    mart = min((root / "marts" / "person").glob("*.duckdb"))
    mart.chmod(0o640)
    postcode = max(ids.postcodes)
    db = connect()
    db.execute(f"ATTACH '{mart}' AS m (ENCRYPTION_KEY $k)", {"k": keystore.data_key(f"mart-{mart.stem}").hex()})
    db.execute("UPDATE m.people SET postcode_sector = ? WHERE rowid = 0", [postcode])
    db.close()
    found = scan(root, ids, keystore=keystore)
    kinds = {(path.split("/")[0], what.split(" ")[0]) for path, what in found}
    assert ("staging", "nhs_number") in kinds and ("prefect", "name") in kinds and ("marts", "postcode") in kinds
