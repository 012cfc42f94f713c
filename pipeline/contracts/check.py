"""Load feed contracts and check them: ODCS v3.2.0 validity, the IG extension, consistency.

Every problem is reported with the file and the field, so ``safehaven contracts check`` can
list them all at once. A contract with any problem stops everything that would use it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft201909Validator
from open_data_contract_standard.model import OpenDataContractStandard
from pydantic import ValidationError

from pipeline.contracts._ig import (
    ACTIONS_FOR_ROLE,
    IDENTIFIER_KIND,
    REQUIRED_FEED_PROPERTIES,
    VENDOR,
    CommonLawBasis,
    DeliveryFormat,
    FeedIG,
    FeedKind,
    FirewallAction,
    Role,
)
from pipeline.contracts.model import ColumnSpec, FeedContract, QualityRule, TableSpec, date_regex

__all__ = ["CONTRACT_SUFFIX", "CheckResult", "Problem", "check_contract", "contract_path", "odcs_problems",
           "odcs_validator"]

CONTRACT_SUFFIX = ".odcs.yaml"
API_VERSION = "v3.2.0"
LOGICAL_TYPES = {"string", "date", "integer", "number"}
SUPPORTED_METRICS = {"nullValues", "invalidValues"}
UNITS = {"rows", "percent"}
SEVERITIES = {"error": True, "warning": False}
RETENTION_UNITS = {"d", "day", "days", "m", "month", "months", "y", "yr", "year", "years"}
TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_DATE_FORMATS = ("%Y-%m-%d",)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a contract: which file, which field, what and how to fix it."""

    file: str
    field: str
    message: str
    expired: bool = False

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


@dataclass(frozen=True)
class CheckResult:
    path: Path
    contract: FeedContract | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def expired(self) -> bool:
        return any(p.expired for p in self.problems)


def contract_path(contracts_dir: Path, feed: str) -> Path:
    return Path(contracts_dir) / f"{feed}{CONTRACT_SUFFIX}"


@cache
def odcs_validator() -> Draft201909Validator:
    schema_text = resources.files("open_data_contract_standard").joinpath("schema.json").read_text()
    return Draft201909Validator(json.loads(schema_text))


def odcs_problems(raw: dict, path: Path, what: str) -> list[str]:
    """Problems every mart or output contract is checked for: ODCS v3.2.0 validity (schema and
    model), a name matching the file, an active status, and roles naming who approves it."""
    problems = [f"{'.'.join(map(str, e.absolute_path)) or '(contract)'}: {e.message}"
                for e in odcs_validator().iter_errors(raw)]
    try:
        OpenDataContractStandard.model_validate(raw)
    except ValidationError as exc:
        problems += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    if raw.get("name") != path.name.removesuffix(CONTRACT_SUFFIX):
        problems.append("name: must match the file name")
    if raw.get("status") != "active":
        problems.append(f"status: only an 'active' {what} contract may be published")
    if not any(isinstance(r, dict) and r.get("access") == "approve" for r in raw.get("roles") or []):
        problems.append(f"roles: name the role that approves this {what} (access: approve)")
    return problems


def _json_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(contract)"


def _ig_properties(items: list[dict] | None, where: str, report) -> dict[str, Any]:
    """The ``vendor: nhs-ig`` custom properties of a block, by property name."""
    found: dict[str, Any] = {}
    for i, item in enumerate(items or []):
        if not isinstance(item, dict) or item.get("vendor") != VENDOR:
            continue
        name = item.get("property")
        if name in found:
            report(f"{where}.customProperties[{i}]", f"'{name}' is declared twice")
        found[name] = item.get("value")
    return found


def _with_date_formats(columns: list[ColumnSpec], rules: list[QualityRule],
                       extra: dict[str, list[str]]) -> tuple[list[ColumnSpec], list[QualityRule]]:
    """A supplier's date formats, added to the columns the firewall parses and to their format rules."""
    import dataclasses

    def more(formats: tuple[str, ...], name: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*formats, *extra.get(name, [])]))

    columns = [dataclasses.replace(c, formats=more(c.formats, c.name)) if c.name in extra else c for c in columns]
    rules = [dataclasses.replace(r, formats=more(r.formats, r.column), pattern=date_regex(more(r.formats, r.column)))
             if r.column in extra and r.formats is not None else r for r in rules]
    return columns, rules


class _Checker:
    def __init__(self, path: Path, as_of: dt.date):
        self.path = Path(path)
        self.as_of = as_of
        self.problems: list[Problem] = []
        self.file = self.path.name

    def report(self, field: str, message: str, expired: bool = False) -> None:
        self.problems.append(Problem(self.file, field, message, expired))

    # ------------------------------------------------------------------------------------
    def run(self) -> CheckResult:
        try:
            raw = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.report("(file)", "contract file not found")
            return self._result(None)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else "(file)"
            self.report(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")
            return self._result(None)
        if not isinstance(raw, dict):
            self.report("(file)", "a contract must be a YAML mapping")
            return self._result(None)

        for err in sorted(odcs_validator().iter_errors(raw), key=lambda e: list(e.absolute_path)):
            self.report(_json_path(err.absolute_path), f"not valid ODCS {API_VERSION}: {err.message}")
        try:
            OpenDataContractStandard.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                self.report(_json_path(err["loc"]), f"ODCS model: {err['msg']}")

        self._fundamentals(raw)
        ig = self._feed_ig(raw)
        tables = self._tables(raw, ig)
        retention = self._retention(raw, ig, tables)
        self._roles(raw)
        contract = None
        if not [p for p in self.problems if not p.expired] and ig is not None:
            contract = FeedContract(
                name=raw["name"],
                version=str(raw["version"]),
                path=self.path,
                ig=ig,
                tables=tables,
                retention=retention,
            )
        return self._result(contract)

    def _result(self, contract):
        return CheckResult(self.path, contract, tuple(self.problems))

    # ------------------------------------------------------------------------------------
    def _fundamentals(self, raw: dict) -> None:
        if raw.get("apiVersion") != API_VERSION:
            self.report("apiVersion", f"must be {API_VERSION}, found {raw.get('apiVersion')!r}")
        if raw.get("kind") != "DataContract":
            self.report("kind", "must be DataContract")
        if raw.get("status") == "draft":
            self.report("status", "is 'draft' (written by `safehaven contracts draft`): an IG lead reviews every "
                                  "column's role and firewall action, fills the approval and sets status: active; "
                                  "until then nothing may use this contract")
        elif raw.get("status") != "active":
            self.report("status", f"is {raw.get('status')!r}; only an 'active' contract may be used")
        expected = self.path.name.removesuffix(CONTRACT_SUFFIX)
        if raw.get("name") != expected:
            self.report("name", f"must match the file name: expected {expected!r}, found {raw.get('name')!r}")
        if not re.fullmatch(r"\d+\.\d+\.\d+", str(raw.get("version", ""))):
            self.report("version", "must be a semantic version such as 1.0.0")

    def _feed_ig(self, raw: dict) -> FeedIG | None:
        found = _ig_properties(raw.get("customProperties"), "", self.report)
        for name in REQUIRED_FEED_PROPERTIES:
            if name not in found:
                self.report(
                    f"customProperties[property={name}]",
                    f"missing; every feed contract declares it with vendor: {VENDOR}",
                )
        for name in sorted(set(found) - set(REQUIRED_FEED_PROPERTIES)):
            self.report(f"customProperties[property={name}]", "unknown nhs-ig property")
        if any(name not in found for name in REQUIRED_FEED_PROPERTIES):
            return None
        approval = found.get("approval") if isinstance(found.get("approval"), dict) else {}
        unapproved = not str(approval.get("approvedBy") or "").strip()
        if unapproved:
            self.report("customProperties[property=approval].value.approvedBy",
                        "not filled: the contract has not been approved. The IG lead who approves it fills "
                        "approvedBy, role, date and reference (the approval's own record), then sets status: active")
        try:
            ig = FeedIG.model_validate({k: found[k] for k in REQUIRED_FEED_PROPERTIES})
        except ValidationError as exc:
            for err in exc.errors():
                if unapproved and err["loc"][0] == "approval":
                    continue
                loc = list(err["loc"])
                field = f"customProperties[property={loc[0]}].value" + "".join(
                    f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:]
                )
                self.report(field, err["msg"])
            return None

        law = ig.legalBasis.commonLaw
        base = "customProperties[property=legalBasis].value.commonLaw"
        if law.basis is CommonLawBasis.SECTION_251:
            if not law.reference:
                self.report(f"{base}.reference", "a section 251 basis needs its CAG reference")
            if not law.expires:
                self.report(f"{base}.expires", "a section 251 basis needs the approval's end date")
        if law.expires and law.expires < self.as_of:
            self.report(
                f"{base}.expires",
                f"the legal basis ({law.basis}, {law.reference}) expired on {law.expires.isoformat()}; "
                "nothing may use this feed until the approval is renewed and the contract updated",
                expired=True,
            )
        ndoo = "customProperties[property=nationalDataOptOut].value.applies"
        if ig.feedKind is FeedKind.ACTIVITY:
            if law.basis is CommonLawBasis.SECTION_251 and not ig.nationalDataOptOut.applies:
                self.report(ndoo, "must be true: national data opt-outs apply where section 251 is relied on")
            if law.basis is CommonLawBasis.CONSENT and ig.nationalDataOptOut.applies:
                self.report(ndoo, "must be false: national data opt-outs do not apply to consented data")
        for rule, name in ((ig.nationalDataOptOut, "nationalDataOptOut"), (ig.type1OptOut, "type1OptOut")):
            if rule.applies != (rule.appliedAt == "ingest"):
                self.report(
                    f"customProperties[property={name}].value.appliedAt",
                    "must be 'ingest' when the opt-out applies and 'not-applied' when it does not",
                )
        kept = ig.retentionPolicy
        if kept.staging.before(self.as_of) > kept.landing.before(self.as_of):
            self.report("customProperties[property=retentionPolicy].value.staging",
                        "staged files must be kept at least as long as raw deliveries, or a re-ingest "
                        "could stage again what retention destroyed")
        if ig.approval.date > self.as_of:
            self.report("customProperties[property=approval].value.date", "approval is dated in the future")
        if law.basis is CommonLawBasis.NOT_APPLICABLE and ig.feedKind is not FeedKind.REFERENCE:
            self.report(f"{base}.basis", "only reference data (no personal data) may have no common-law basis")
        return ig

    def _tables(self, raw: dict, ig: FeedIG | None) -> dict[str, TableSpec]:
        tables: dict[str, TableSpec] = {}
        schema = raw.get("schema") or []
        if not schema:
            self.report("schema", "declares no tables")
        permitted = set(ig.identifierPolicy.permitted) if ig else set()
        for ti, obj in enumerate(schema):
            where = f"schema[{ti}]"
            if not isinstance(obj, dict):
                continue
            tname = obj.get("name", "")
            if not TABLE_NAME.fullmatch(str(tname)):
                self.report(f"{where}.name", "table names are lower-case letters, digits and underscores")
            if tname in tables:
                self.report(f"{where}.name", f"table '{tname}' is declared twice")
            tprops = _ig_properties(obj.get("customProperties"), where, self.report)
            columns, rules, seen = [], [], set()
            for pi, prop in enumerate(obj.get("properties") or []):
                col = self._column(f"{where}.properties[{pi}]", prop, permitted, ig)
                if col is None:
                    continue
                if col.name in seen:
                    self.report(f"{where}.properties[{pi}].name", f"column '{col.name}' is declared twice")
                seen.add(col.name)
                columns.append(col)
                rules.extend(self._rules(f"{where}.properties[{pi}]", prop, col))
                rules.extend(_implicit_rules(col, rules))
            if not columns:
                self.report(f"{where}.properties", "declares no columns")
            activity = tprops.get("activityDate")
            needs_activity = any(c.action is FirewallAction.AGE_AT_ACTIVITY for c in columns)
            if activity is not None:
                match = [c for c in columns if c.name == activity]
                if not match or match[0].logical_type != "date":
                    self.report(
                        f"{where}.customProperties[property=activityDate]",
                        f"'{activity}' must name a date column of this table",
                    )
            elif needs_activity:
                self.report(
                    f"{where}.customProperties[property=activityDate]",
                    "missing: a table with a date of birth must name the activity date age is computed at",
                )
            if ig and ig.feedKind is FeedKind.REFERENCE and any(
                c.role is Role.DIRECT_IDENTIFIER for c in columns
            ):
                self.report(f"{where}.properties", "reference data may not carry direct identifiers")
            delivery = self._delivery(where, tprops.get("delivery"), columns)
            if delivery is not None and delivery.dateFormats:
                columns, rules = _with_date_formats(columns, rules, delivery.dateFormats)
            tables[tname] = TableSpec(tname, tuple(columns), tuple(rules), activity, delivery)
        return tables

    def _delivery(self, where: str, value, columns: list[ColumnSpec]) -> DeliveryFormat | None:
        """The table's ``delivery`` layout, checked: patterns compile and name a period, aliases
        and date formats name declared columns (date columns for formats)."""
        if value is None:
            return None
        field = f"{where}.customProperties[property=delivery].value"
        try:
            delivery = DeliveryFormat.model_validate(value)
        except ValidationError as exc:
            for err in exc.errors():
                self.report(field + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]),
                            err["msg"])
            return None
        by_name = {c.name: c for c in columns}
        for i, pattern in enumerate(delivery.filenames):
            try:
                compiled = re.compile(pattern.regex)
            except re.error as exc:
                self.report(f"{field}.filenames[{i}].regex", f"not a regular expression ({exc})")
                continue
            if "period" not in compiled.groupindex:
                self.report(f"{field}.filenames[{i}].regex", "needs a named group 'period', e.g. (?P<period>\\d{6})")
        for name in [*delivery.headerAliases, *delivery.dateFormats]:
            if name not in by_name:
                self.report(f"{field}", f"'{name}' is not a column of this table")
        for name, formats in delivery.dateFormats.items():
            if name in by_name and by_name[name].logical_type != "date":
                self.report(f"{field}.dateFormats.{name}", f"'{name}' is not a date column")
            for fmt in formats:
                if not fmt or "%" not in fmt:
                    self.report(f"{field}.dateFormats.{name}", f"'{fmt}' is not a strptime format such as %d/%m/%Y")
        return delivery

    def _column(self, where: str, prop: dict, permitted: set[str], ig) -> ColumnSpec | None:
        if not isinstance(prop, dict) or not prop.get("name"):
            self.report(f"{where}.name", "every column needs a name")
            return None
        name = prop["name"]
        ltype = prop.get("logicalType")
        if ltype not in LOGICAL_TYPES:
            self.report(f"{where}.logicalType", f"column '{name}': must be one of {sorted(LOGICAL_TYPES)}")
            return None
        try:
            role = Role(prop.get("classification"))
        except ValueError:
            self.report(
                f"{where}.classification",
                f"column '{name}': the role must be one of {[r.value for r in Role]}",
            )
            return None
        props = _ig_properties(prop.get("customProperties"), where, self.report)
        try:
            action = FirewallAction(props.get("firewall"))
        except ValueError:
            self.report(
                f"{where}.customProperties[property=firewall]",
                f"column '{name}': must say what the firewall does, one of {[a.value for a in FirewallAction]}",
            )
            return None
        if action not in ACTIONS_FOR_ROLE[role]:
            self.report(
                f"{where}.customProperties[property=firewall]",
                f"column '{name}': a {role.value} cannot be '{action.value}'; "
                f"allowed: {sorted(a.value for a in ACTIONS_FOR_ROLE[role])}",
            )
        kind = IDENTIFIER_KIND.get(action)
        if kind and role is Role.DIRECT_IDENTIFIER and ig and kind not in permitted:
            self.report(
                f"{where}.customProperties[property=firewall]",
                f"column '{name}': identifier kind '{kind}' is not in identifierPolicy.permitted",
            )
        formats = tuple(props.get("acceptedFormats") or ())
        if ltype == "date" and not formats:
            formats = DEFAULT_DATE_FORMATS
        opts = prop.get("logicalTypeOptions") or {}
        pattern = opts.get("pattern")
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                self.report(f"{where}.logicalTypeOptions.pattern", f"column '{name}': bad pattern ({exc})")
                pattern = None
        enum = tuple(str(e.get("value")) for e in prop.get("enum") or [] if isinstance(e, dict))
        return ColumnSpec(
            name=name,
            logical_type=ltype,
            required=bool(prop.get("required", False)),
            role=role,
            action=action,
            description=str(prop.get("description", "")),
            formats=formats,
            pattern=pattern if ltype == "string" else None,
            minimum=opts.get("minimum") if ltype in {"integer", "number"} else None,
            maximum=opts.get("maximum") if ltype in {"integer", "number"} else None,
            enum=enum,
            primary_key=prop.get("primaryKey") is True,
        )

    def _rules(self, where: str, prop: dict, col: ColumnSpec) -> list[QualityRule]:
        rules = []
        for qi, rule in enumerate(prop.get("quality") or []):
            qw = f"{where}.quality[{qi}]"
            if rule.get("type", "library") != "library" or rule.get("metric") not in SUPPORTED_METRICS:
                self.report(
                    qw, f"only library rules with metric {sorted(SUPPORTED_METRICS)} can be enforced at the gate"
                )
                continue
            ops = {k: rule[k] for k in ("mustBe", "mustBeLessOrEqualTo", "mustBeLessThan", "mustBeBetween")
                   if k in rule}
            others = [k for k in rule if k.startswith("must") and k not in ops]
            if len(ops) != 1 or others:
                self.report(qw, "needs exactly one of mustBe: 0, mustBeLessOrEqualTo, mustBeLessThan or "
                                "mustBeBetween: [0, N]")
                continue
            (op, value), = ops.items()
            if op == "mustBeBetween":  # a failing count or share between 0 and N is "at most N"
                if not (isinstance(value, list) and len(value) == 2 and value[0] == 0):
                    self.report(f"{qw}.mustBeBetween", "a failing count or share is bounded as [0, N]")
                    continue
                op, value = "mustBeLessOrEqualTo", value[1]
            if not isinstance(value, int | float) or value < 0 or (op == "mustBe" and value != 0):
                self.report(f"{qw}.{op}", "must be a non-negative number (mustBe only 0)")
                continue
            threshold = float(value) - (1 if op == "mustBeLessThan" and rule.get("unit") != "percent" else 0)
            if op == "mustBeLessThan" and rule.get("unit") == "percent":
                threshold = float(value) - 1e-6
            unit = rule.get("unit", "rows")
            if unit not in UNITS:
                self.report(f"{qw}.unit", f"must be one of {sorted(UNITS)}")
                continue
            if unit == "percent" and threshold > 100:
                self.report(f"{qw}.{op}", "a percentage cannot exceed 100")
            severity = rule.get("severity", "error")
            if severity not in SEVERITIES:
                self.report(f"{qw}.severity", "must be 'error' (blocking) or 'warning' (recorded only)")
                continue
            args = rule.get("arguments") or {}
            spec = {
                "name": rule.get("name") or f"{col.name}_{rule['metric']}_{qi}",
                "column": col.name,
                "metric": rule["metric"],
                "threshold": threshold,
                "unit": unit,
                "blocking": SEVERITIES[severity],
                "description": str(rule.get("description", "")),
            }
            if rule["metric"] == "invalidValues":
                if "validValues" in args:
                    values = tuple(str(v) for v in args["validValues"])
                    if col.enum and set(values) != set(col.enum):
                        self.report(f"{qw}.arguments.validValues", f"column '{col.name}': must match the column's enum")
                    spec["valid_values"] = values
                elif "pattern" in args:
                    try:
                        re.compile(args["pattern"])
                    except re.error as exc:
                        self.report(f"{qw}.arguments.pattern", f"bad pattern ({exc})")
                        continue
                    spec["pattern"] = args["pattern"]
                    if col.logical_type == "date":  # the shape other tools run; the gate names the formats
                        spec["formats"] = col.formats
                        if args["pattern"] != date_regex(col.formats):
                            self.report(f"{qw}.arguments.pattern",
                                        f"column '{col.name}': a date rule's pattern must be the shape of the "
                                        f"column's acceptedFormats {list(col.formats)}: '{date_regex(col.formats)}'")
                elif "formats" in args:
                    self.report(f"{qw}.arguments.formats",
                                f"column '{col.name}': 'formats' is not an ODCS library argument, so no other tool "
                                "can run the rule; list the formats in the column's acceptedFormats property and "
                                f"write arguments.pattern: '{date_regex(tuple(args['formats']))}'")
                    continue
                elif "minimum" in args or "maximum" in args:
                    self.report(f"{qw}.arguments",
                                f"column '{col.name}': a range is the column's logicalTypeOptions minimum/maximum "
                                "(ODCS), which the gate enforces with no rows outside; remove this rule")
                    continue
                else:
                    self.report(f"{qw}.arguments", "invalidValues needs validValues or pattern")
                    continue
            rules.append(QualityRule(**spec))
        return rules

    def _retention(self, raw: dict, ig: FeedIG | None, tables: dict[str, TableSpec]) -> dict:
        found = [
            (i, s) for i, s in enumerate(raw.get("slaProperties") or []) if s.get("property") == "retention"
        ]
        if len(found) != 1:
            self.report("slaProperties", "declare exactly one retention property")
            return {}
        i, sla = found[0]
        where = f"slaProperties[{i}]"
        value, unit, element = sla.get("value"), str(sla.get("unit", "")), str(sla.get("element", ""))
        if not isinstance(value, int | float) or value <= 0:
            self.report(f"{where}.value", "retention must be a positive number")
        if unit not in RETENTION_UNITS:
            self.report(f"{where}.unit", "retention unit must be days, months or years (d, m, y)")
        table, _, column = element.partition(".")
        if table not in tables:
            self.report(f"{where}.element", f"'{element}' does not name a table of this contract")
        elif column:
            spec = tables[table]
            if column not in spec.column_names or spec.column(column).logical_type != "date":
                self.report(f"{where}.element", f"'{element}' must name a date column")
        elif ig and ig.feedKind is FeedKind.ACTIVITY:
            self.report(f"{where}.element", "activity feeds measure retention from a date column: table.column")
        return {"value": value, "unit": unit, "element": element}

    def _roles(self, raw: dict) -> None:
        roles = raw.get("roles") or []
        if not any(r.get("access") == "approve" for r in roles if isinstance(r, dict)):
            self.report("roles", "name the role that approves this contract (access: approve)")


_NUMBER_SHAPES = {
    "integer": r"^\s*[+-]?[0-9]+\s*$",
    "number": r"^\s*[+-]?[0-9]+(?:\.[0-9]+)?\s*$",
}


def _implicit_rules(col: ColumnSpec, explicit: list[QualityRule]) -> list[QualityRule]:
    """Rules the contract implies without stating: ``required`` means no nulls; a numeric type
    means every value parses as that type. Both block."""
    out = []
    has_null_rule = any(r.column == col.name and r.metric == "nullValues" for r in explicit)
    if col.required and not has_null_rule:
        out.append(
            QualityRule(
                name=f"{col.name}_required", column=col.name, metric="nullValues", threshold=0,
                unit="rows", blocking=True, description=f"{col.name} is required (no blanks).",
            )
        )
    if col.logical_type in _NUMBER_SHAPES:
        out.append(
            QualityRule(
                name=f"{col.name}_is_{col.logical_type}", column=col.name, metric="invalidValues",
                threshold=0, unit="rows", blocking=True, pattern=_NUMBER_SHAPES[col.logical_type],
                description=f"{col.name} must be a valid {col.logical_type}.",
            )
        )
        if col.minimum is not None or col.maximum is not None:
            low = "" if col.minimum is None else f"from {col.minimum:g} "
            high = "" if col.maximum is None else f"to {col.maximum:g}"
            out.append(
                QualityRule(
                    name=f"{col.name}_range", column=col.name, metric="invalidValues", threshold=0, unit="rows",
                    blocking=True, minimum=col.minimum, maximum=col.maximum,
                    description=f"{col.name} must lie {low}{high} (logicalTypeOptions).".replace("  ", " "),
                )
            )
    return out


def check_contract(path: Path | str, as_of: dt.date | None = None) -> CheckResult:
    """Check one contract file; never raises for a bad contract, reports problems instead."""
    return _Checker(Path(path), as_of or dt.date.today()).run()
