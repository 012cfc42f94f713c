"""A file-backed Great Expectations project under the data root, used by the validation gate.

Result format is ``BASIC`` with ``partial_unexpected_count: 0``: counts and percentages are
kept, failing values are not, so neither stored validation results nor Data Docs ever hold a
value from a delivery (security property 1; pinned by tests/integration/test_gate_leaks.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.contracts.model import TableSpec
from pipeline.contracts.suites import compile_suite, suite_name
from pipeline.fsutil import SharedLock

#: Keeps failing values out of results and Data Docs; do not widen it.
RESULT_FORMAT = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}


@dataclass(frozen=True)
class ExpectationCount:
    rule: str
    elements: int
    missing: int
    unexpected: int


class GxProject:
    """One GX file context; suites, validation definitions and checkpoints per contract table."""

    def __init__(self, project_dir: Path):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        logging.getLogger("great_expectations").setLevel(logging.WARNING)  # before import: it logs then
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.project_dir = Path(project_dir)
        self.project_dir.mkdir(parents=True, exist_ok=True)
        #: GX's context and file stores are safe neither across threads nor across processes
        #: (Dask workers share the project): one caller at a time, everywhere.
        self.lock = SharedLock(self.project_dir / ".project.lock")
        with self.lock:
            drop_half_written(self.project_dir)
            restore_config(self.project_dir)
            try:
                self.context = gx.get_context(mode="file", project_root_dir=str(self.project_dir))
            except Exception:  # GX's errors for a damaged config are many and unrelated
                config = self.project_dir / "gx" / CONFIG
                if not config.exists():
                    raise
                # No good copy (killed while first writing it): set it aside; GX makes a new one.
                os.replace(config, config.with_name(CONFIG + ".damaged"))
                self.context = gx.get_context(mode="file", project_root_dir=str(self.project_dir))
            variables = self.context.variables
            bars = variables.progress_bars
            # GX rewrites great_expectations.yml in place (not atomically): a process killed during
            # the write leaves a file no later run can load. Write it only when it must change.
            globally = bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", None)
            if variables.analytics_enabled is not False or globally is not False:
                variables.progress_bars = ProgressBarsConfig(globally=False)
                variables.analytics_enabled = False
                variables.save()
            try:  # an existing datasource is read, not written again (see above)
                self._datasource = self.context.data_sources.get("deliveries")
            except (KeyError, LookupError, ValueError):
                self._datasource = self.context.data_sources.add_or_update_pandas("deliveries")
            keep_config(self.project_dir)
        self._checkpoints: dict[tuple[str, tuple[str, ...]], object] = {}

    def _checkpoint(self, table: TableSpec, columns: list[str]):
        key = (table.name, tuple(columns))
        if key in self._checkpoints:
            return self._checkpoints[key]
        gx = self._gx
        try:
            asset = self._datasource.get_asset(table.name)
        except LookupError:
            asset = self._datasource.add_dataframe_asset(table.name)
        try:
            batch_def = asset.get_batch_definition("whole-batch")
        except (KeyError, LookupError):
            batch_def = asset.add_batch_definition_whole_dataframe("whole-batch")
            keep_config(self.project_dir)  # the new asset and batch definition are in the config now
        suite = self.context.suites.add_or_update(compile_suite(table, columns))
        vd = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=f"validate-{table.name}", data=batch_def, suite=suite)
        )
        cp = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"gate-{table.name}",
                validation_definitions=[vd],
                actions=[],
                result_format=RESULT_FORMAT,
            )
        )
        self._checkpoints[key] = cp
        return cp

    def validate_batch(self, table: TableSpec, columns: list[str], frame, run_name: str):
        """Validate one batch (a pandas frame); return counts per rule and structure success."""
        with self.lock:
            return self._validate_batch(table, columns, frame, run_name)

    def _validate_batch(self, table: TableSpec, columns: list[str], frame, run_name: str):
        cp = self._checkpoint(table, columns)
        result = cp.run(
            batch_parameters={"dataframe": frame},
            run_id=self._gx.RunIdentifier(run_name=run_name),
        )
        counts: list[ExpectationCount] = []
        structure_ok = True
        for vres in result.run_results.values():
            for er in vres.results:
                rule = (er.expectation_config.meta or {}).get("rule")
                if rule == "__columns__":
                    structure_ok = structure_ok and bool(er.success)
                    continue
                res = er.result or {}
                if er.exception_info and er.exception_info.get("raised_exception"):
                    # A failed metric computation: count every row as failing, never as passing.
                    counts.append(ExpectationCount(rule, len(frame), 0, len(frame)))
                    continue
                counts.append(
                    ExpectationCount(
                        rule=rule,
                        elements=int(res.get("element_count", len(frame))),
                        missing=int(res.get("missing_count", 0) or 0),
                        unexpected=int(res.get("unexpected_count", 0) or 0),
                    )
                )
        return counts, structure_ok

    def record_counts(self, table: TableSpec, columns: list[str], counts: list[ExpectationCount],
                      passed: dict[str, bool], run_name: str) -> None:
        """Store counts computed by the fast engine as a GX validation result, so Data Docs
        cover every delivery whichever engine judged it. Counts only, never values."""
        with self.lock:
            self._record_counts(table, columns, counts, passed, run_name)

    def _record_counts(self, table, columns, counts, passed, run_name) -> None:
        from great_expectations.core import (
            ExpectationSuiteValidationResult,
            ExpectationValidationResult,
        )
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        self._checkpoint(table, columns)  # makes sure the suite exists and is current
        suite = self.context.suites.get(suite_name(table))
        by_rule = {c.rule: c for c in counts}
        results = []
        for expectation in suite.expectations:
            rule = (expectation.meta or {}).get("rule")
            if rule == "__columns__":
                results.append(ExpectationValidationResult(
                    success=True, expectation_config=expectation.configuration,
                    result={"observed_value": sorted(expectation.configuration.kwargs.get("column_set", []))}))
                continue
            c = by_rule.get(rule)
            if c is None:
                continue
            considered = c.elements - c.missing
            results.append(ExpectationValidationResult(
                success=passed.get(rule, False), expectation_config=expectation.configuration,
                result={"element_count": c.elements, "missing_count": c.missing,
                        "missing_percent": 100.0 * c.missing / c.elements if c.elements else 0.0,
                        "unexpected_count": c.unexpected,
                        "unexpected_percent": 100.0 * c.unexpected / considered if considered else 0.0,
                        "partial_unexpected_list": []}))
        good = sum(r.success for r in results)
        run_id = RunIdentifier(run_name=run_name)
        outcome = ExpectationSuiteValidationResult(
            success=good == len(results), results=results, suite_name=suite.name,
            statistics={"evaluated_expectations": len(results), "successful_expectations": good,
                        "unsuccessful_expectations": len(results) - good,
                        "success_percent": 100.0 * good / len(results) if results else 100.0},
            meta={"run_id": run_id, "engine": "safehaven-polars",
                  "active_batch_definition": {"datasource_name": "deliveries", "data_asset_name": table.name,
                                              "batch_definition_name": "whole-delivery-polars-engine"},
                  "batch_markers": {}, "batch_spec": {}},
        )
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
            run_id=run_id, batch_identifier=run_name)
        self.context.validation_results_store.set(key, outcome)

    def build_data_docs(self) -> Path:
        """Render the Data Docs site: everything the first time, later only the pages of new
        validation results and changed suites, and the index (a daily run costs its own
        deliveries, not the whole history). Nothing new: nothing is rendered."""
        with self.lock:
            if not data_docs_index(self.project_dir).exists():
                self.context.build_data_docs()
                return data_docs_index(self.project_dir)
            results, suites = unrendered(self.project_dir)
            if results or suites:
                wanted = {tuple(r.parts) for r in results}
                keys = [k for k in self.context.validation_results_store.list_keys()
                        if (*k.to_tuple()[:-1], k.to_tuple()[-1] + ".json") in wanted]
                keys += [k for k in self.context.expectations_store.list_keys() if k.to_tuple()[0] in suites]
                self.context.build_data_docs(resource_identifiers=keys)
        return data_docs_index(self.project_dir)

    @property
    def data_docs_index(self) -> Path:
        return data_docs_index(self.project_dir)

    @property
    def results_dir(self) -> Path:
        return self.project_dir / "gx" / "uncommitted" / "validations"


#: GX stores rebuilt from the contracts on every run (``_checkpoint``): safe to drop when damaged.
DERIVED_STORES = ("expectations", "validation_definitions", "checkpoints")


def drop_half_written(project_dir: Path) -> list[Path]:
    """Remove suite, validation-definition and checkpoint files that are not valid JSON: GX
    writes them in place, so a run killed during a write leaves one that every later run fails
    to load ("ExpectationSuite() argument after ** must be a mapping"). They are compiled from
    the contracts again when next needed. Validation results are evidence and are left alone."""
    import json

    dropped = []
    for store in DERIVED_STORES:
        for path in sorted((Path(project_dir) / "gx" / store).glob("*.json")):
            try:
                ok = isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
            except (OSError, ValueError):
                ok = False
            if not ok:
                path.unlink(missing_ok=True)
                dropped.append(path)
    return dropped


CONFIG = "great_expectations.yml"
KEPT_CONFIG = "great_expectations.yml.last-good"


def _config_ok(path: Path) -> bool:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and "config_version" in doc


def keep_config(project_dir: Path) -> None:
    """Copy great_expectations.yml aside (written whole, then renamed) after every write this
    project makes to it: GX rewrites the file in place, truncating it first."""
    gx_dir = Path(project_dir) / "gx"
    if _config_ok(gx_dir / CONFIG):
        tmp = gx_dir / (KEPT_CONFIG + ".tmp")
        tmp.write_bytes((gx_dir / CONFIG).read_bytes())
        os.replace(tmp, gx_dir / KEPT_CONFIG)


def restore_config(project_dir: Path) -> bool:
    """Put back the copy ``keep_config`` made when great_expectations.yml differs from it: every
    write this project makes to the config is followed by a copy, so a difference means a write
    that did not finish (GX truncates the file first: an empty one fails with only "Error while
    processing DataContextConfig: _schema"; one cut short may load and fail later, when Data Docs
    are built). Everything in the config (the datasource, its assets and batch definitions,
    progress bars off) is derived: what the killed run added is added again when next needed.
    True if the copy was put back."""
    gx_dir = Path(project_dir) / "gx"
    config, kept = gx_dir / CONFIG, gx_dir / KEPT_CONFIG
    if not _config_ok(kept) or (config.exists() and config.read_bytes() == kept.read_bytes()):
        return False
    tmp = gx_dir / (CONFIG + ".restoring")
    tmp.write_bytes(kept.read_bytes())
    os.replace(tmp, config)
    return True


def data_docs_index(project_dir: Path) -> Path:
    return Path(project_dir) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def unrendered(project_dir: Path) -> tuple[list[Path], set[str]]:
    """Validation results (paths under the results store) without a Data Docs page, and suites
    whose page is missing or older than the suite: read from the file system alone, so a
    process that validated nothing itself (a Dask flow's parent) sees its workers' results
    without importing GX."""
    gx_dir = Path(project_dir) / "gx"
    site = data_docs_index(project_dir).parent
    store = gx_dir / "uncommitted" / "validations"
    results = [p.relative_to(store) for p in sorted(store.rglob("*.json"))
               if not (site / "validations" / p.relative_to(store)).with_suffix(".html").exists()]
    suites = set()
    for suite in sorted((gx_dir / "expectations").glob("*.json")):
        page = site / "expectations" / f"{suite.stem}.html"
        if not page.exists() or page.stat().st_mtime_ns < suite.stat().st_mtime_ns:
            suites.add(suite.stem)
    return results, suites
