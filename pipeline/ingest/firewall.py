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
from pipeline.pseudonymise import MESSAGE_PREFIX, hmac_expr, nhs_number_expr

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
        """(staged rows, old-to-new pseudonym bridge rows or None) for one batch."""
        self.stats.rows_in += frame.height
        frame = frame.with_columns(source_row=pl.int_range(row_offset, row_offset + frame.height, dtype=pl.Int64))
        out_cols: list[str] = ["source_row"]
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
                status, digits = nhs_number_expr(col.name, allow_test_range=self.allow_test_range)
                frame = frame.with_columns(status.alias("nhs_number_status"), digits.alias("__digits"))
                frame = self._pseudonymise(frame, self.keys.linkage, "person_pid")
                if self.keys.linkage_previous is not None:
                    frame = self._pseudonymise(frame, self.keys.linkage_previous, "__old_pid")
                    bridge = frame.select(old_pid="__old_pid", new_pid="person_pid").drop_nulls().unique()
                    frame = frame.drop("__old_pid")
                frame = frame.drop("__digits")
                out_cols += ["nhs_number_status", "person_pid"]
            elif action is FirewallAction.AGE_AT_ACTIVITY:
                dob = _parse_dates(c, col.formats)
                if activity is None:
                    raise ValueError(f"table {self.table.name} has a date of birth but no activity date")
                birthday_passed = (activity.dt.month() * 100 + activity.dt.day()) >= (dob.dt.month() * 100 + dob.dt.day())
                age = activity.dt.year() - dob.dt.year() - (~birthday_passed).cast(pl.Int32)
                frame = frame.with_columns(__age=age.cast(pl.Int32), __dob_ok=dob.is_not_null(), __raw=c.is_not_null(),
                                           __act_ok=activity.is_not_null())
                status = (pl.when(~pl.col("__raw")).then(pl.lit("missing"))
                          .when(~pl.col("__dob_ok")).then(pl.lit("invalid"))
                          .when(~pl.col("__act_ok")).then(pl.lit("no_activity_date"))
                          .when((pl.col("__age") < 0) | (pl.col("__age") > 120)).then(pl.lit("implausible"))
                          .otherwise(pl.lit("valid")))
                frame = frame.with_columns(age_status=status).with_columns(
                    age=pl.when(pl.col("age_status") == "valid").then(pl.col("__age"))
                ).drop("__age", "__dob_ok", "__raw", "__act_ok")
                out_cols += ["age", "age_status"]
            elif action is FirewallAction.POSTCODE_GEOGRAPHY:
                frame = self._postcode(frame, col.name)
                out_cols += ["postcode_sector", "lsoa21cd", "ward_code", "imd_decile", "postcode_hash", "postcode_status"]
            elif action is FirewallAction.GENDER_CODE:
                code = c.str.strip_chars().str.to_uppercase().replace_strict(GENDER_CODES, default="X")
                frame = frame.with_columns(code.alias("__gender"))
                out_cols.append("__gender")
            elif action is FirewallAction.PSEUDONYMISE_LOCAL_ID:
                name = f"{col.name}_pid"
                frame = frame.with_columns(hmac_expr(c.str.strip_chars(), self.keys.local_id.material,
                                                     f"local-id:v1:{self.feed}:").alias(name))
                out_cols.append(name)
            elif action is FirewallAction.KEEP:
                frame, name = self._keep(frame, col)
                out_cols.append(name)
            # DROP, and anything not transformed: never selected, never leaves.
        frame = self._apply_opt_outs(frame)
        for status_col, counter in (("nhs_number_status", self.stats.nhs_number_status),
                                    ("age_status", self.stats.age_status),
                                    ("postcode_status", self.stats.postcode_status)):
            if status_col in frame.columns:
                counter.update(dict(frame[status_col].value_counts().iter_rows()))
        staged = frame.select(out_cols).rename({"__gender": "gender"} if "__gender" in out_cols else {})
        self.stats.rows_out += staged.height
        return staged, bridge

    def _pseudonymise(self, frame: pl.DataFrame, key: DomainKey, out: str) -> pl.DataFrame:
        distinct = frame.select(pl.col("__digits").drop_nulls().unique())
        hashed = distinct.with_columns(hmac_expr(pl.col("__digits"), key.material, MESSAGE_PREFIX).alias(out))
        return frame.join(hashed, on="__digits", how="left", maintain_order="left")

    def _postcode(self, frame: pl.DataFrame, column: str) -> pl.DataFrame:
        well_formed, formatted = normalised_postcode(pl.col(column))
        frame = frame.with_columns(__pc_ok=well_formed, __pc=formatted, __pc_raw=pl.col(column).is_not_null())
        frame = frame.join(self.lookup.rename({"postcode": "__pc"}), on="__pc", how="left", maintain_order="left")
        status = (pl.when(~pl.col("__pc_raw")).then(pl.lit("missing"))
                  .when(~pl.col("__pc_ok")).then(pl.lit("malformed"))
                  .when(pl.col("lsoa21cd").is_null()).then(pl.lit("unmatched"))
                  .when(pl.col("terminated")).then(pl.lit("terminated"))
                  .otherwise(pl.lit("matched")))
        sector = pl.when(pl.col("__pc_ok")).then(pl.col("__pc").str.head(-2))
        keyed = hmac_expr(pl.col("__pc"), self.keys.postcode.material, POSTCODE_PREFIX)
        return frame.with_columns(postcode_status=status, postcode_sector=sector, postcode_hash=keyed).drop(
            "__pc_ok", "__pc", "__pc_raw", "terminated")

    def _keep(self, frame: pl.DataFrame, col) -> tuple[pl.DataFrame, str]:
        c = pl.col(col.name)
        if col.logical_type == "date":
            typed = _parse_dates(c, col.formats)
        elif col.logical_type == "integer":
            typed = c.str.strip_chars().cast(pl.Int64, strict=False)
        elif col.logical_type == "number":
            typed = c.str.strip_chars().cast(pl.Float64, strict=False)
        else:
            return frame, col.name
        bad = int(frame.select((c.is_not_null() & typed.is_null()).sum()).item())
        if bad:
            self.stats.unparseable[col.name] += bad
        return frame.with_columns(typed.alias(col.name)), col.name

    def _apply_opt_outs(self, frame: pl.DataFrame) -> pl.DataFrame:
        if "person_pid" not in frame.columns or not self.opt_outs:
            return frame
        keep = pl.lit(True)
        for name, pids in self.opt_outs.items():
            hit = pl.col("person_pid").is_in(pids)
            self.stats.opt_out_removed[name] += int(frame.select(hit.fill_null(False).sum()).item())
            keep = keep & ~hit.fill_null(False)
        return frame.filter(keep)
