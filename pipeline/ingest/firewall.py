"""The identifier firewall: what leaves the ingest step, column by column, from the contract.

Only four identifiers pass, transformed (``../DESIGN.md`` "Identifier firewall"):

* NHS number -> ``nhs_number_status`` and, for valid numbers only, ``person_pid`` (HMAC under
  the linkage domain key, 128 bits); the number is dropped;
* date of birth -> ``age`` in whole years at the table's activity date, with ``age_status``;
* postcode -> ``postcode_sector`` ("SS1 2"), ``lsoa21cd``, ``ward_code``, ``imd_decile`` from
  the reference lookup, ``postcode_hash`` (keyed, for rescue linkage) and ``postcode_status``
  (matched, terminated, unmatched, malformed, missing: never a silent null);
* gender -> NHS Data Dictionary code (1, 2, 9, X).

Council client ids become ``<column>_pid`` under the local-id domain key. Every other column
marked ``direct-identifier`` is dropped; ``attribute`` columns are kept, typed. Rows of people
with an applicable opt-out are removed here, before anything is staged, and only counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from pipeline.contracts import FirewallAction, TableSpec
from pipeline.keys import DomainKey
from pipeline.pseudonymise import hmac_expr, pseudonymise_column, with_nhs_number_status

__all__ = ["GENDER_CODES", "Firewall", "FirewallKeys", "FirewallStats", "normalised_postcode"]

GENDER_CODES = {
    "1": "1", "M": "1", "MALE": "1",
    "2": "2", "F": "2", "FEMALE": "2",
    "9": "9", "I": "9", "INDETERMINATE": "9",
    "X": "X", "0": "X", "U": "X", "UNKNOWN": "X", "NOT KNOWN": "X", "NOT SPECIFIED": "X",
}
POSTCODE_PREFIX = "postcode:v1:"
_POSTCODE_SHAPE = r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$"


@dataclass(frozen=True)
class FirewallKeys:
    linkage: DomainKey
    postcode: DomainKey
    local_id: DomainKey
    #: The previous (retiring) linkage key during a rotation overlap: an old-to-new bridge is made.
    linkage_previous: DomainKey | None = None


@dataclass
class FirewallStats:
    rows_in: int = 0
    rows_out: int = 0
    nhs_number_status: Counter = field(default_factory=Counter)
    age_status: Counter = field(default_factory=Counter)
    postcode_status: Counter = field(default_factory=Counter)
    opt_out_removed: Counter = field(default_factory=Counter)
    unparseable: Counter = field(default_factory=Counter)  # kept date/number columns, per column

    def as_dict(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "nhs_number_status": dict(sorted(self.nhs_number_status.items())),
            "age_status": dict(sorted(self.age_status.items())),
            "postcode_status": dict(sorted(self.postcode_status.items())),
            "opt_out_removed": dict(sorted(self.opt_out_removed.items())),
        }


def normalised_postcode(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(well-formed?, "SS1 2AB") from any casing and spacing."""
    squashed = expr.str.to_uppercase().str.replace_all(r"\s", "")
    well_formed = squashed.str.contains(_POSTCODE_SHAPE)
    formatted = pl.concat_str([squashed.str.head(-3), pl.lit(" "), squashed.str.tail(3)])
    return well_formed.fill_null(False), pl.when(well_formed).then(formatted)


def _parse_dates(expr: pl.Expr, formats) -> pl.Expr:
    text = expr.str.strip_chars()
    return pl.coalesce([text.str.strptime(pl.Date, f, strict=False) for f in formats])


class Firewall:
    """Transforms one table's batches; collects counts, never values."""

    def __init__(
        self,
        table: TableSpec,
        feed: str,
        keys: FirewallKeys,
        *,
        lookup: pl.DataFrame | None = None,
        opt_outs: dict[str, pl.Series] | None = None,
        allow_test_range: bool = False,
    ):
        self.table, self.feed, self.keys = table, feed, keys
        self.lookup = lookup
        self.opt_outs = opt_outs or {}
        self.allow_test_range = allow_test_range
        self.stats = FirewallStats()
        actions = {c.action for c in table.columns}
        if FirewallAction.POSTCODE_GEOGRAPHY in actions and lookup is None:
            raise ValueError("a postcode column needs the postcode reference lookup")

    def transform(self, frame: pl.DataFrame, row_offset: int) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """(staged rows, old-to-new pseudonym bridge rows or None) for one batch.

        The batch goes through one lazy plan and one collect; counts are taken afterwards.
        """
        self.stats.rows_in += frame.height
        lf = frame.lazy().with_columns(
            source_row=pl.int_range(row_offset, row_offset + frame.height, dtype=pl.Int64))
        out_cols: list[str] = ["source_row"]
        flags: list[str] = []  # boolean helper columns counted after the collect
        bridge = None
        activity = None
        if self.table.activity_date and self.table.activity_date in frame.columns:
            spec = self.table.column(self.table.activity_date)
            activity = _parse_dates(pl.col(spec.name), spec.formats)
        for col in self.table.columns:
            if col.name not in frame.columns:
                continue
            c = pl.col(col.name)
            action = col.action
            if action is FirewallAction.PSEUDONYMISE_NHS_NUMBER:
                lf = with_nhs_number_status(lf, col.name, allow_test_range=self.allow_test_range,
                                            status="nhs_number_status", digits="__digits")
                lf = pseudonymise_column(lf, "__digits", self.keys.linkage.material, "person_pid")
                if self.keys.linkage_previous is not None:
                    lf = pseudonymise_column(lf, "__digits", self.keys.linkage_previous.material, "__old_pid")
                    out_cols.append("__old_pid")
                out_cols += ["nhs_number_status", "person_pid"]
            elif action is FirewallAction.AGE_AT_ACTIVITY:
                if activity is None:
                    raise ValueError(f"table {self.table.name} has a date of birth but no activity date")
                dob = _parse_dates(c, col.formats)
                # month() and day() are Int8: widen before arithmetic (May * 100 overflows Int8).
                def month_day(d: pl.Expr) -> pl.Expr:
                    return d.dt.month().cast(pl.Int32) * 100 + d.dt.day().cast(pl.Int32)

                birthday_passed = month_day(activity) >= month_day(dob)
                age = (activity.dt.year() - dob.dt.year() - (~birthday_passed).cast(pl.Int32)).cast(pl.Int32)
                lf = lf.with_columns(__age=age, __dob_ok=dob.is_not_null(), __raw=c.is_not_null(),
                                     __act_ok=activity.is_not_null())
                status = (pl.when(~pl.col("__raw")).then(pl.lit("missing"))
                          .when(~pl.col("__dob_ok")).then(pl.lit("invalid"))
                          .when(~pl.col("__act_ok")).then(pl.lit("no_activity_date"))
                          .when((pl.col("__age") < 0) | (pl.col("__age") > 120)).then(pl.lit("implausible"))
                          .otherwise(pl.lit("valid")))
                lf = lf.with_columns(age_status=status).with_columns(
                    age=pl.when(pl.col("age_status") == "valid").then(pl.col("__age")))
                out_cols += ["age", "age_status"]
            elif action is FirewallAction.POSTCODE_GEOGRAPHY:
                lf = self._postcode(lf, col.name)
                out_cols += ["postcode_sector", "lsoa21cd", "ward_code", "imd_decile", "postcode_hash", "postcode_status"]
            elif action is FirewallAction.GENDER_CODE:
                code = c.str.strip_chars().str.to_uppercase().replace_strict(GENDER_CODES, default="X")
                lf = lf.with_columns(code.alias("__gender"))
                out_cols.append("__gender")
            elif action is FirewallAction.PSEUDONYMISE_LOCAL_ID:
                name = f"{col.name}_pid"
                lf = lf.with_columns(hmac_expr(c.str.strip_chars(), self.keys.local_id.material,
                                               f"local-id:v1:{self.feed}:").alias(name))
                out_cols.append(name)
            elif action is FirewallAction.KEEP:
                typed = self._typed(col)
                if typed is not None:
                    flag = f"__bad__{col.name}"
                    lf = lf.with_columns((c.is_not_null() & typed.is_null()).alias(flag), typed.alias(col.name))
                    flags.append(flag)
                out_cols.append(col.name)
            # DROP, and anything not transformed: never selected, never leaves.
        if "person_pid" in out_cols:
            for name, pids in self.opt_outs.items():
                flag = f"__optout__{name}"
                lf = lf.with_columns(pl.col("person_pid").is_in(pids).fill_null(False).alias(flag))
                flags.append(flag)
        collected = lf.select(out_cols + flags).collect()
        for flag in flags:
            hits = int(collected[flag].sum())
            if flag.startswith("__bad__") and hits:
                self.stats.unparseable[flag.removeprefix("__bad__")] += hits
            elif flag.startswith("__optout__"):
                self.stats.opt_out_removed[flag.removeprefix("__optout__")] += hits
        opted_out = [f for f in flags if f.startswith("__optout__")]
        if opted_out:
            collected = collected.filter(~pl.any_horizontal(opted_out))
        for status_col, counter in (("nhs_number_status", self.stats.nhs_number_status),
                                    ("age_status", self.stats.age_status),
                                    ("postcode_status", self.stats.postcode_status)):
            if status_col in collected.columns:
                counter.update(dict(collected[status_col].value_counts().iter_rows()))
        if "__old_pid" in collected.columns:
            bridge = collected.select(old_pid="__old_pid", new_pid="person_pid").drop_nulls().unique()
        staged = collected.drop(flags + (["__old_pid"] if "__old_pid" in collected.columns else []))
        if "__gender" in staged.columns:
            staged = staged.rename({"__gender": "gender"})
        self.stats.rows_out += staged.height
        return staged, bridge

    def _postcode(self, lf: pl.LazyFrame, column: str) -> pl.LazyFrame:
        """Geography, keyed hash and status, worked out once per distinct delivered value and
        joined back (a batch holds thousands of rows per postcode unit)."""
        distinct = lf.select(pl.col(column).alias("__pc_value")).drop_nulls().unique()
        well_formed, formatted = normalised_postcode(pl.col("__pc_value"))
        distinct = distinct.with_columns(__pc_ok=well_formed, __pc=formatted).join(
            self.lookup.lazy().rename({"postcode": "__pc"}), on="__pc", how="left")
        status = (pl.when(~pl.col("__pc_ok")).then(pl.lit("malformed"))
                  .when(pl.col("lsoa21cd").is_null()).then(pl.lit("unmatched"))
                  .when(pl.col("terminated")).then(pl.lit("terminated"))
                  .otherwise(pl.lit("matched")))
        distinct = distinct.select(
            "__pc_value", "lsoa21cd", "ward_code", "imd_decile",
            postcode_status=status,
            postcode_sector=pl.when(pl.col("__pc_ok")).then(pl.col("__pc").str.head(-2)),
            postcode_hash=hmac_expr(pl.col("__pc"), self.keys.postcode.material, POSTCODE_PREFIX),
        )
        lf = lf.join(distinct, left_on=column, right_on="__pc_value", how="left", maintain_order="left")
        return lf.with_columns(
            postcode_status=pl.when(pl.col(column).is_null()).then(pl.lit("missing")).otherwise(pl.col("postcode_status")))

    @staticmethod
    def _typed(col) -> pl.Expr | None:
        c = pl.col(col.name)
        if col.logical_type == "date":
            return _parse_dates(c, col.formats)
        if col.logical_type == "integer":
            return c.str.strip_chars().cast(pl.Int64, strict=False)
        if col.logical_type == "number":
            return c.str.strip_chars().cast(pl.Float64, strict=False)
        return None
