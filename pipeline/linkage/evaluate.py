"""Linkage against the synthetic ground truth: precision and recall.

Only for synthetic data, in tests and benchmarks (and the demo, which is synthetic by
definition): the link flow never reads ``synthetic-truth/``. The truth maps each delivered row
(file, row) to the real person. Definitions, per record:

- deterministic precision: of records linked on the pseudonym, the share whose pseudonym's
  people are exactly one (no pseudonym covers two people); plus ``split_people``, people
  spread over more than one pseudonym;
- deterministic recall: records linked on the pseudonym over all records; it should equal the
  share of records whose NHS number was delivered valid;
- rescue precision: of rescued records, the share linked to the pseudonym of their real person
  (the pseudonym that person's deterministic records carry);
- overall recall: records linked by either route over all records.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

__all__ = ["evaluate_linkage", "truth_person_ids"]


def _judge(con: duckdb.DuckDBPyConnection, truth_dir: Path) -> None:
    """TEMP ``_judged``: each linked record's status and pseudonym beside its true person."""
    records = Path(truth_dir) / "records"
    if not any(records.glob("*.parquet")):
        raise FileNotFoundError(f"no ground truth under {records}")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _truth AS
        SELECT parse_filename(file, true) AS stem, row AS source_row, person_id, intended_nhs_status
        FROM read_parquet(?)""", [str(records / "*.parquet")])
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _judged AS
        SELECT r.link_status, r.person_pid, t.person_id, t.intended_nhs_status
        FROM record_linkage r LEFT JOIN _truth t
          ON t.stem = r.source || '_' || r._period || '_v' || r._version AND t.source_row = r.source_row""")
    con.execute("DROP TABLE _truth")


def truth_person_ids(con: duckdb.DuckDBPyConnection, truth_dir: Path):
    """(person_pid, person_id) for each pseudonym, from its deterministic records: the true
    person behind each pseudonym, for comparing a model with the planted one. Synthetic only."""
    _judge(con, truth_dir)
    try:
        return con.execute("""SELECT person_pid, mode(person_id) AS person_id FROM _judged
                              WHERE link_status = 'deterministic' GROUP BY person_pid""").pl()
    finally:
        con.execute("DROP TABLE _judged")


def evaluate_linkage(con: duckdb.DuckDBPyConnection, truth_dir: Path) -> dict:
    """Compare ``record_linkage`` with ``<truth_dir>/records/*.parquet``."""
    _judge(con, truth_dir)
    missing = con.execute("SELECT count(*) FROM _judged WHERE person_id IS NULL").fetchone()[0]
    if missing:
        raise ValueError(f"{missing} linked records have no ground truth: is this the right truth folder?")
    row = con.execute("""
        WITH det AS (SELECT * FROM _judged WHERE link_status = 'deterministic'),
        pid_people AS (SELECT person_pid, count(DISTINCT person_id) AS people, any_value(person_id) AS person_id
                       FROM det GROUP BY person_pid),
        person_pids AS (SELECT person_id, count(DISTINCT person_pid) AS pids FROM det GROUP BY person_id),
        rescued AS (SELECT j.person_id AS true_person, p.person_id AS linked_person, p.people
                    FROM _judged j LEFT JOIN pid_people p USING (person_pid) WHERE j.link_status = 'rescued')
        SELECT (SELECT count(*) FROM _judged),
               (SELECT count(*) FROM det),
               (SELECT count(*) FROM det JOIN pid_people USING (person_pid) WHERE people = 1),
               (SELECT count(*) FROM person_pids WHERE pids > 1),
               (SELECT count(*) FROM _judged WHERE intended_nhs_status = 'valid'),
               (SELECT count(*) FROM det WHERE intended_nhs_status <> 'valid'),
               (SELECT count(*) FROM rescued),
               (SELECT count(*) FROM rescued WHERE people = 1 AND linked_person = true_person),
               (SELECT count(*) FROM _judged WHERE link_status = 'unlinked'
                   AND person_id IN (SELECT person_id FROM det))
    """).fetchone()
    total, det, det_right, split, valid, det_not_valid, rescued, rescued_right, missed = row
    con.execute("DROP TABLE _judged")
    return {
        "records": total,
        "deterministic": {
            "linked": det, "precision": round(det_right / det, 6) if det else None,
            "recall": round(det / total, 6) if total else None,
            "valid_nhs_number_share": round(valid / total, 6) if total else None,
            "linked_without_valid_number": det_not_valid, "split_people": split,
        },
        "rescue": {
            "linked": rescued, "correct": rescued_right,
            "precision": round(rescued_right / rescued, 6) if rescued else None,
            "unlinked_but_findable": missed,
        },
        "overall_recall": round((det + rescued) / total, 6) if total else None,
    }
