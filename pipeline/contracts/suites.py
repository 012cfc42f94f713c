"""Compile a contract table into a Great Expectations suite.

Each quality rule becomes one expectation whose ``meta`` names the rule, so results map back
to rules by name. Numeric range rules run on a shadow column ``<column>__as_number`` that
the gate adds to each batch (the delivery column itself stays text, so its format rule can
see values that do not parse).

Great Expectations is imported lazily: loading a contract does not pay for it.
"""

from __future__ import annotations

from pipeline.contracts.model import QualityRule, TableSpec

__all__ = ["SHADOW_SUFFIX", "compile_suite", "numeric_shadow", "suite_name"]

SHADOW_SUFFIX = "__as_number"


def numeric_shadow(column: str) -> str:
    return f"{column}{SHADOW_SUFFIX}"


def suite_name(table: TableSpec) -> str:
    return f"contract-{table.name}"


def _mostly(rule: QualityRule) -> float:
    if rule.unit == "percent":
        return max(0.0, min(1.0, 1.0 - rule.threshold / 100.0))
    return 1.0


def _expectation(rule: QualityRule):
    import great_expectations.expectations as gxe

    meta = {"rule": rule.name, "blocking": rule.blocking, "description": rule.description,
            "threshold": rule.threshold, "unit": rule.unit}
    mostly = _mostly(rule)
    if rule.metric == "nullValues":
        return gxe.ExpectColumnValuesToNotBeNull(column=rule.column, mostly=mostly, meta=meta)
    if rule.valid_values is not None:
        return gxe.ExpectColumnValuesToBeInSet(
            column=rule.column, value_set=list(rule.valid_values), mostly=mostly, meta=meta
        )
    if rule.pattern is not None:
        return gxe.ExpectColumnValuesToMatchRegex(
            column=rule.column, regex=rule.pattern, mostly=mostly, meta=meta
        )
    return gxe.ExpectColumnValuesToBeBetween(
        column=numeric_shadow(rule.column),
        min_value=rule.minimum,
        max_value=rule.maximum,
        mostly=mostly,
        meta=meta,
    )


def compile_suite(table: TableSpec, present_columns: list[str] | None = None):
    """A ``gx.ExpectationSuite`` for one contract table.

    ``present_columns`` restricts the suite to the columns a delivery actually has (an
    optional column may be absent); the table-structure expectation uses the same list.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    columns = list(present_columns) if present_columns is not None else list(table.column_names)
    suite = gx.ExpectationSuite(name=suite_name(table))
    structure_meta = {"rule": "__columns__", "blocking": True,
                      "description": "Columns are exactly those the contract declares."}
    shadowed = [numeric_shadow(r.column) for r in table.rules if r.minimum is not None or r.maximum is not None]
    suite.add_expectation(
        gxe.ExpectTableColumnsToMatchSet(
            column_set=sorted(set(columns) | set(shadowed)), exact_match=True, meta=structure_meta
        )
    )
    for rule in table.rules:
        if rule.column in columns:
            suite.add_expectation(_expectation(rule))
    return suite
