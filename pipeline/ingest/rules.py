"""The fast engine for contract rules: one streaming polars aggregate over the delivery.

Every rule becomes a pair of aggregate expressions (values considered, values failing) with
the same meaning the Great Expectations engine gives it (``pipeline.contracts.suites``):

* ``nullValues``: considered = rows, failing = nulls;
* ``invalidValues``: considered = non-null values; failing = those not in ``validValues``,
  not matching ``pattern``/``formats``, or (as numbers) outside ``minimum``/``maximum``;
  a value that is not a number is not counted by a range rule (the type rule catches it).

``tests/spec/test_rule_engines.py`` holds the two engines to the same counts on generated
deliveries. Nothing here keeps a value: only counts leave.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.contracts.model import QualityRule, TableSpec
from pipeline.ingest._gx import ExpectationCount

__all__ = ["NULL_VALUES", "KeyCounter", "RuleCounter", "read_batches"]

#: Text that means "no value" in a delivery.
NULL_VALUES = ["", "NULL", "null"]


def read_batches(path: Path, columns: list[str], batch_bytes: int) -> Iterator[pa.RecordBatch]:
    """Stream a delivery as Arrow batches of bounded size, every column as text.

    pyarrow's reader is strict: a row with too many or too few fields raises ``ArrowInvalid``
    (whose message quotes the row, so callers must never pass it on). Blanks and NULL are null.
    """
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=batch_bytes),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in columns},
            include_columns=columns,
            strings_can_be_null=True,
            null_values=NULL_VALUES,
            quoted_strings_can_be_null=True,
        ),
    )
    yield from reader


def _rule_exprs(rule: QualityRule, i: int) -> list[pl.Expr]:
    col = pl.col(rule.column)
    present = col.is_not_null()
    if rule.metric == "nullValues":
        considered, failing = pl.len(), col.is_null().sum()
    elif rule.valid_values is not None:
        considered, failing = present.sum(), (present & ~col.is_in(list(rule.valid_values))).sum()
    elif rule.pattern is not None:
        considered, failing = present.sum(), (present & ~col.str.contains(rule.pattern)).sum()
    else:
        number = col.str.strip_chars().cast(pl.Float64, strict=False)
        outside = pl.lit(False)
        if rule.minimum is not None:
            outside = outside | (number < rule.minimum)
        if rule.maximum is not None:
            outside = outside | (number > rule.maximum)
        considered, failing = number.is_not_null().sum(), (number.is_not_null() & outside).sum()
    return [considered.cast(pl.Int64).alias(f"c{i}"), failing.cast(pl.Int64).alias(f"f{i}")]


class KeyCounter:
    """Rows whose primary key (the contract's ``primaryKey: true`` columns) repeats an earlier
    row's, over every batch of a delivery. Keeps one 64-bit hash per row, never a value: 8 bytes
    a row (64 MB for 8 million rows); two different keys share a hash with odds of about 1 in
    500,000 at that size, which could only ever count a row as repeated that is not."""

    def __init__(self, table: TableSpec, columns: list[str]):
        self.key = tuple(c for c in table.primary_key if c in columns)
        self._hashes: list[pl.Series] = []

    def add(self, frame: pl.DataFrame) -> None:
        if not self.key:
            return
        keyed = frame.select(self.key).drop_nulls()  # a missing key is the null rule's business
        if keyed.height:
            self._hashes.append(keyed.select(pl.struct(self.key).hash(seed=0))[:, 0])

    def repeated(self) -> int:
        """Rows whose key an earlier row already had."""
        if not self._hashes:
            return 0
        hashes = pl.concat(self._hashes)
        return hashes.len() - hashes.n_unique()

    def reason(self) -> str | None:
        """The gate's message if the key repeats: the column(s) and the count, never a value."""
        repeated = self.repeated()
        if not repeated:
            return None
        columns = ", ".join(f"'{c}'" for c in self.key)
        return (f"column {columns}, rule 'primary_key_unique': {repeated:,} row(s) repeat the primary key of an "
                f"earlier row; the contract declares {columns} the primary key (primaryKey: true), so each value "
                "must appear once per delivery. Ask the supplier for a corrected extract without repeated records")


class RuleCounter:
    """Counts for every rule, summed over the batches it is shown (one pass, any batch size),
    and the rows that repeat the primary key."""

    def __init__(self, table: TableSpec, columns: list[str]):
        self.rules = [r for r in table.rules if r.column in columns]
        self.exprs = [pl.len().cast(pl.Int64).alias("rows")]
        for i, rule in enumerate(self.rules):
            self.exprs += _rule_exprs(rule, i)
        self.totals: dict[str, int] = {}
        self.batches = 0
        self.keys = KeyCounter(table, columns)

    def add(self, frame: pl.DataFrame) -> None:
        for k, v in frame.select(self.exprs).row(0, named=True).items():
            self.totals[k] = self.totals.get(k, 0) + int(v)
        self.keys.add(frame)
        self.batches += 1

    @property
    def rows(self) -> int:
        return self.totals.get("rows", 0)

    def counts(self) -> list[ExpectationCount]:
        out = []
        for i, rule in enumerate(self.rules):
            considered, failing = self.totals.get(f"c{i}", 0), self.totals.get(f"f{i}", 0)
            missing = 0 if rule.metric == "nullValues" else self.rows - considered
            out.append(ExpectationCount(rule.name, self.rows, missing, failing))
        return out
