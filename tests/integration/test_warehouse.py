"""The warehouse: encrypted at rest, incremental, idempotent, versions supersede, one key."""

import json
import shutil

import duckdb
import pytest

from pipeline.errors import KeyMismatch
from pipeline.ingest.ingest import Ingestor
from pipeline.keys import ALL_ROLES, open_keystore
from pipeline.linkage import Warehouse
from pipeline.linkage.warehouse import connect
from tests.staged import staged_frame, staged_frames, write_staged

FEEDS = ["postcode_lookup", "ndoo", "type1_optout", "sus_apc"]


@pytest.fixture
def staged(population_copy):
    store = open_keystore(population_copy, create_demo=True, roles=ALL_ROLES)
    Ingestor(population_copy, store).ingest_all(FEEDS)
    return population_copy, store


def test_warehouse_file_holds_no_plaintext_and_needs_its_key(staged):
    settings, store = staged
    warehouse = Warehouse(settings.data_root / "warehouse", store)
    result = warehouse.load_staging(settings.staging)
    assert len(result.loaded) > 30 and not result.skipped
    spells = staged_frames(settings, settings.staging / "sus_apc")
    pids = spells["person_pid"].drop_nulls().unique().head(50).to_list()
    path = warehouse.path_for(1)
    raw = path.read_bytes()
    for needle in pids + ["S90001", "sus_apc_spells", "riskstrat/linkage"]:
        assert needle.encode() not in raw
    con = duckdb.connect()
    with pytest.raises(duckdb.Error):
        con.execute(f"ATTACH '{path}' AS w")  # no key
    with pytest.raises(duckdb.Error):
        connect().execute(f"ATTACH '{path}' AS w (ENCRYPTION_KEY $k)", {"k": "00" * 32})  # wrong key
    assert warehouse.describe()["stg_sus_apc_spells"] == spells.height


def test_loading_is_incremental_and_idempotent(staged):
    settings, store = staged
    hidden = settings.data_root / "later"
    later = sorted((settings.staging / "sus_apc" / "sus_apc_spells").glob("2025-*.manifest.json"))
    hidden.mkdir()
    for manifest in later:
        shutil.move(manifest, hidden / manifest.name)
    warehouse = Warehouse(settings.data_root / "warehouse", store)
    first = warehouse.load_staging(settings.staging)
    for manifest in hidden.iterdir():  # the next months arrive
        shutil.move(manifest, settings.staging / "sus_apc" / "sus_apc_spells" / manifest.name)
    second = warehouse.load_staging(settings.staging)
    assert len(second.loaded) == len(later) and set(second.skipped) == set(first.loaded)
    third = warehouse.load_staging(settings.staging)
    assert not third.loaded
    spells = staged_frames(settings, settings.staging / "sus_apc")
    assert warehouse.describe()["stg_sus_apc_spells"] == spells.height


def test_a_new_version_supersedes_the_old_one(staged):
    settings, store = staged
    warehouse = Warehouse(settings.data_root / "warehouse", store)
    warehouse.load_staging(settings.staging)
    folder = settings.staging / "sus_apc" / "sus_apc_spells"
    manifest = min(folder.glob("*.manifest.json"))
    doc = json.loads(manifest.read_text())
    frame = staged_frame(settings, folder / doc["output"]["file"]).head(3)
    v2 = doc["output"]["file"].replace("__v1", "__v2")
    write_staged(settings, folder / v2, frame, store)
    doc |= {"version": 2, "delivery": doc["delivery"].replace("/v1", "/v2"), "rows_out": 3}
    doc["output"]["file"] = v2
    (folder / manifest.name.replace("__v1", "__v2")).write_text(json.dumps(doc))
    result = warehouse.load_staging(settings.staging)
    assert result.loaded == [doc["delivery"]] and len(result.superseded) == 1
    con = warehouse.open(create=False)
    try:
        rows = con.execute("SELECT count(*), max(_version) FROM stg_sus_apc_spells WHERE _period = ?",
                           [doc["period"]]).fetchone()
    finally:
        con.close()
    assert rows == (3, 2)


def test_deliveries_under_another_key_are_refused(staged):
    settings, store = staged
    warehouse = Warehouse(settings.data_root / "warehouse", store)
    warehouse.load_staging(settings.staging)
    folder = settings.staging / "sus_apc" / "sus_apc_spells"
    manifest = sorted(folder.glob("*.manifest.json"))[1]
    doc = json.loads(manifest.read_text())
    doc |= {"version": 3, "delivery": doc["delivery"].replace("/v1", "/v3")}
    doc["keys"]["linkage"] = {"key_id": "riskstrat/linkage@v9", "fingerprint": "0123456789abcdef"}
    shutil.copy(folder / doc["output"]["file"], folder / doc["output"]["file"].replace("__v1", "__v3"))
    doc["output"]["file"] = doc["output"]["file"].replace("__v1", "__v3")
    (folder / manifest.name.replace("__v1", "__v3")).write_text(json.dumps(doc))
    with pytest.raises(KeyMismatch) as exc:
        warehouse.load_staging(settings.staging)
    assert "0123456789abcdef" in str(exc.value)
