import itertools
import json
import threading

import pytest

from pipeline.audit import GENESIS, AuditLog
from pipeline.errors import AuditError, AuditTampered


def _log(tmp_path, n=5):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(n):
        log.append("test.event", {"i": i, "feed": "sus_apc"}, actor="tester")
    return log


def test_chain_links_each_entry_to_the_previous(tmp_path):
    log = _log(tmp_path)
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev == GENESIS
    assert all(b.prev == a.hash for a, b in itertools.pairwise(entries))
    report = log.verify()
    assert report.ok and report.entries == 5 and report.head == entries[-1].hash


def test_edited_line_is_found(tmp_path):
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["details"]["i"] = 99  # someone rewrites history
    lines[2] = json.dumps(entry, sort_keys=True)
    log.path.write_text("\n".join(lines) + "\n")
    report = log.verify()
    assert not report.ok
    assert report.first_bad_line == 3
    assert "edited" in report.problem
    with pytest.raises(AuditTampered) as exc:
        log.verify_or_raise()
    assert exc.value.line == 3


def test_edit_that_recomputes_its_own_hash_still_breaks_the_next_line(tmp_path):
    import hashlib

    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["event"] = "nothing.happened"
    body = {k: v for k, v in entry.items() if k != "hash"}
    entry["hash"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    lines[1] = json.dumps(entry, sort_keys=True)
    log.path.write_text("\n".join(lines) + "\n")
    report = log.verify()
    assert not report.ok and report.first_bad_line == 3


def test_removed_line_is_found(tmp_path):
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    del lines[1]
    log.path.write_text("\n".join(lines) + "\n")
    report = log.verify()
    assert not report.ok and report.first_bad_line == 2
    assert "removed" in report.problem


def test_reordered_lines_are_found(tmp_path):
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    log.path.write_text("\n".join(lines) + "\n")
    report = log.verify()
    assert not report.ok and report.first_bad_line == 2


def test_truncated_tail_refuses_to_append(tmp_path):
    log = _log(tmp_path, 2)
    with open(log.path, "a") as fh:
        fh.write('{"seq": 3, "broken"\n')
    with pytest.raises(AuditError):
        log.append("x", {})


@pytest.mark.parametrize("value", ["9434765919", "943 476 5919", "SS1 2AB", "ss12ab"])
def test_refuses_patient_data(tmp_path, value):
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(AuditError) as exc:
        log.append("bad", {"nested": [{"x": value}]})
    assert value not in str(exc.value)
    assert not log.path.exists() or log.path.read_text() == ""


def test_concurrent_appends_keep_one_chain(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")

    def work(k):
        for i in range(25):
            AuditLog(log.path).append("concurrent", {"worker": k, "i": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = log.verify()
    assert report.ok and report.entries == 100
