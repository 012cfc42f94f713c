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

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.contracts.model import QualityRule, TableSpec
from pipeline.ingest._gx import ExpectationCount

__all__ = ["NULL_VALUES", "KeyCounter", "RuleCounter", "canonical_header", "normalised", "read_batches", "read_header", "undecodable"]

#: Text that means "no value" in a delivery.
NULL_VALUES = ["", "NULL", "null"]


IGNORED = "\x00ignored"  # prefix of a file column the contract says to ignore


def normalised(name: str) -> str:
    """A header name for matching: case, surrounding space and runs of spaces/underscores ignored."""
    return re.sub(r"[\s_]+", "_", name.strip().lower())


def canonical_header(header: list[str], table: TableSpec | None) -> list[str]:
    """Each file column's contract name: the same name ignoring case and spaces, or an alias the
    table's delivery layout declares; ``IGNORED<i>`` for a column it says to ignore; otherwise
    the file's own name (which the gate then reports as undeclared)."""
    if table is None:
        return list(header)
    names = {normalised(c): c for c in table.column_names}
    delivery = table.delivery
    if delivery is not None:
        for column, aliases in delivery.headerAliases.items():
            names.update({normalised(a): column for a in aliases})
    ignored = {normalised(c) for c in delivery.ignoreColumns} if delivery is not None else set()
    out = []
    for i, raw in enumerate(header):
        key = normalised(raw)
        out.append(names.get(key) or (f"{IGNORED}{i}" if key in ignored else raw))
    return out


def undecodable(path: Path) -> str | None:
    """The gate's message if ``path`` is not UTF-8: the row (1 = the first row after the header),
    the byte's position in it and the encoding the file looks like; None if it decodes."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(4 * 1024 * 1024), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                data, at = exc.object, exc.start  # what was decoded (any carried-over bytes + chunk)
                before = data[:at]
                row = newlines + before.count(b"\n")
                column = at - (before.rfind(b"\n") + 1) + 1
                guess, name = _guess_encoding(path)
                where = "the header" if row == 0 else f"row {row:,}"
                declare = (f", or, if the supplier always sends {name}, declare it in the contract: the table's "
                           f"delivery property with encoding: {name} and a filenames pattern for the supplier's "
                           "names (a new contract version)") if name else ""
                return (f"encoding: {where} is not valid UTF-8 (byte 0x{data[at]:02X} at byte {column:,} of "
                        f"the line); the file looks like {guess}. Fix: ask the supplier for a UTF-8 extract, or "
                        f"re-save it as UTF-8 and deliver it as a new version{declare}")
            newlines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return ("encoding: the file ends inside a multi-byte character (not valid UTF-8); ask the supplier "
                    "for a complete UTF-8 extract")
    return None


def _guess_encoding(path: Path) -> tuple[str, str | None]:
    """The encoding a non-UTF-8 text file most likely is (by what decodes and what it holds), in
    words and as the name a delivery layout declares (None: not one the gate reads)."""
    data = path.read_bytes()[:16 * 1024 * 1024]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 (it starts with a UTF-16 byte-order mark)", None
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1 (ISO-8859-1) or another single-byte encoding", "latin-1"
    if any(ch in text for ch in "\u20ac\u2018\u2019\u201c\u201d\u2013\u2014"):
        return "Windows-1252 (latin-1 with curly quotes and dashes)", "cp1252"
    return "latin-1 (ISO-8859-1 / Windows-1252)", "cp1252"


def read_header(path: Path, table: TableSpec | None = None, layout: bool = False) -> list[str]:
    """The first line's cells: comma-separated UTF-8, or (``layout``: a file named by one of the
    table's supplier patterns) in its delivery layout's encoding and delimiter. Only that line is
    decoded: a bad byte further down is the row reader's to find (and name by row)."""
    from pipeline.errors import DeliveryError

    delivery = table.delivery if table is not None and layout else None
    encoding = delivery.encoding if delivery is not None else "utf-8"
    delimiter = delivery.delimiter if delivery is not None else ","
    with open(path, "rb") as fh:
        first = fh.readline()
    if not first.strip():
        return []
    try:
        text = first.decode("utf-8-sig" if encoding in {"utf-8", "utf-8-sig"} else encoding)
        return next(csv.reader([text.rstrip("\r\n")], delimiter=delimiter))
    except UnicodeDecodeError:
        raise DeliveryError(f"{path.name}: {undecodable(path) or 'the header is not valid UTF-8'}") from None
    except (StopIteration, csv.Error):
        raise DeliveryError(f"{path.name}: the first line is not a CSV header") from None


def read_batches(path: Path, columns: list[str], batch_bytes: int,
                 table: TableSpec | None = None, layout: bool = False) -> Iterator[pa.RecordBatch]:
    """Stream a delivery as Arrow batches of bounded size, every column as text, under the
    contract's column names (``table`` maps a supplier's header, delimiter and encoding).

    pyarrow's reader is strict: a row with too many or too few fields raises ``ArrowInvalid``
    (whose message quotes the row, so callers must never pass it on). Blanks and NULL are null.
    """
    read = pacsv.ReadOptions(block_size=batch_bytes)
    parse = pacsv.ParseOptions()
    if table is not None:
        header = read_header(path, table, layout)
        names = canonical_header(header, table)
        delivery = table.delivery if layout else None
        if names != header or delivery is not None:
            encoding = delivery.encoding if delivery is not None else "utf8"
            read = pacsv.ReadOptions(block_size=batch_bytes, column_names=names, skip_rows=1,
                                     encoding="utf8" if encoding in {"utf-8", "utf-8-sig"} else encoding)
            parse = pacsv.ParseOptions(delimiter=delivery.delimiter if delivery is not None else ",")
    reader = pacsv.open_csv(
        path,
        read_options=read,
        parse_options=parse,
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
