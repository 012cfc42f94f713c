"""`safehaven demo` end to end, as `make demo` runs it, on a small population."""

import json
import shutil

from tests.cli import run_cli


def test_demo_generates_validates_and_leaves_an_intact_audit_log(demo_run, tmp_path):
    first_root, stdout = demo_run
    root = tmp_path / "data"
    shutil.copytree(first_root, root)  # the shared run stays as it was for the other tests
    deliveries = list((root / "landing").rglob("*.csv"))
    assert len(deliveries) > 200
    assert "0 quarantined" in stdout and "audit log intact" in stdout
    assert (root / "validation" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    receipts = list((root / "validation" / "receipts").rglob("*.json"))
    assert len(receipts) == len(deliveries)
    assert "people on the spine" in stdout and list((root / "warehouse").glob("*.duckdb"))
    manifest = json.loads((root / "synthetic-truth" / "manifest.json").read_text())
    assert manifest["population"] == 1500
    # Where everything is: the outputs, the evidence pack, the notice and the retention plan.
    for where in ("outputs/published/", "reports/evidence/", "reports/notice/", "retention plan for"):
        assert where in stdout
    assert (root / "reports" / "evidence" / "index.html").exists() and (root / "reports" / "notice" / "index.html").exists()
    assert not list((root / "retention").glob("certificates/*.json"))  # the demo plans, never destroys
    # A second run over the same root is clean too (deterministic files, appended audit log).
    again = run_cli("demo", "--population", "1500", root=root)
    assert again.returncode == 0, again.stderr[-2000:]
    verify = run_cli("audit", "verify", root=root, timeout=120)
    assert verify.returncode == 0 and "intact" in verify.stdout


def test_synth_is_deterministic_for_a_seed(tmp_path):
    import hashlib

    from pipeline.settings import Settings
    from pipeline.synth import EXTRACT_DATE, generate
    from tests.conftest import CONTRACTS

    def digest(root):
        h = hashlib.sha256()
        for p in sorted((root / "landing").rglob("*.csv")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
        return h.hexdigest()

    roots = []
    for name in ("a", "b"):
        root = tmp_path / name
        generate(Settings(data_root=root, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE), population=800, seed=3)
        roots.append(root)
    assert digest(roots[0]) == digest(roots[1])
    other = tmp_path / "c"
    generate(Settings(data_root=other, contracts_dir=CONTRACTS, as_of=EXTRACT_DATE), population=800, seed=4)
    assert digest(other) != digest(roots[0])
