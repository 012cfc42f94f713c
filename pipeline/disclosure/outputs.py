"""Output contracts: ``contracts/outputs/<package>.odcs.yaml`` (ODCS v3.2.0), one per output package.

Each schema table is one published table. Its properties are, in order, the dimension columns
(names from ``DIMENSIONS``: what the person mart can be cut by), then the measure column, then
any derived columns (``percent_of_<dimension>``, e.g. ``percent_of_ward``: the measure as a
percentage of the row with the same value of that dimension and every other dimension at
``Total``, i.e. of the ward's own total; computed from published numbers only, blank when either
is hidden). The table's ``measure`` custom property says what is counted: ``people`` (distinct
people: a count table) or a numeric column of the person mart from ``MEASURES`` (its total: a
magnitude table, under the dominance and p% rules).

The package's ``disclosureProfile`` custom property names a rule profile; parameters next to it
(``threshold``, ``protectionWidth``, ``protectZeros``, ``dominanceK``, ``pPercent``) override the
named profile's, making a custom profile that carries the contract's name and version. A
contract must be active and name the role that approves it, as mart contracts must.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.contracts.check import CONTRACT_SUFFIX, odcs_problems
from pipeline.disclosure.profiles import PROFILES, Profile
from pipeline.disclosure.record import RECORD_LEVEL_NAMES
from pipeline.errors import ContractError

__all__ = ["AGE_BANDS", "DIMENSIONS", "LABELS", "MEASURES", "NAMES", "OutputContract", "OutputTable", "derived_dimension",
           "load_output_contract", "output_contract_names"]

AGE_BANDS = ("0-17", "18-39", "40-64", "65-74", "75-84", "85+", "unknown")

#: Dimensions a published table may have: column name -> SQL over the person mart's ``people p``
#: joined to ``risk_scores r`` (never a pseudonym, never a finer geography than the ward).
DIMENSIONS: dict[str, str] = {
    "ward_code": "coalesce(p.ward_code, 'unknown')",
    "age_band": "coalesce(p.age_band, 'unknown')",
    "gender": "coalesce(p.gender, 'unknown')",
    "risk_tier": "r.tier",
    "practice": "coalesce(r.registered_practice, 'unknown')",
    "imd_quintile": "coalesce(p.imd_quintile::VARCHAR, 'unknown')",
    "long_term_conditions": "CASE WHEN p.ltc_count >= 4 THEN '4+' ELSE p.ltc_count::VARCHAR END",
    "social_care_client": "CASE WHEN p.social_care_client THEN 'yes' ELSE 'no' END",
}
#: Fixed orders for dimensions whose values are not best sorted as text.
ORDERS: dict[str, tuple[str, ...]] = {
    "age_band": AGE_BANDS,
    "long_term_conditions": ("0", "1", "2", "3", "4+"),
}
#: Readable labels for coded dimension values, used where a table is published (the release and
#: the ledger keep the codes). Gender: the NHS Data Dictionary's person stated gender codes.
LABELS: dict[str, dict[str, str]] = {
    "gender": {"1": "Male", "2": "Female", "9": "Indeterminate", "X": "Not known", "unknown": "Not known"},
}
#: A name column published beside a code dimension: code column -> (name column, SQL over ``p``).
NAMES: dict[str, tuple[str, str]] = {
    "ward_code": ("ward_name", "coalesce(p.ward_name, p.ward_code, 'unknown')"),
    "practice": ("practice_name", ("coalesce((SELECT min(x.practice_name) FROM practices x WHERE x.practice_code = "
                                   "r.registered_practice), r.registered_practice, 'unknown')")),
}
#: Numeric person-mart columns a magnitude table may total.
MEASURES = ("emergency_spells_12m", "apc_spells_12m", "bed_days_12m", "ae_attendances_12m", "op_attendances_12m",
            "community_contacts_12m", "mh_contacts_12m", "social_care_cost_12m")

_OVERRIDES = {"threshold": ("threshold", int), "protectionWidth": ("protection_width", int),
              "protectZeros": ("protect_zeros", bool), "pPercent": ("p_percent", float),
              "slidingProtection": ("sliding", bool)}


@dataclass(frozen=True)
class OutputTable:
    name: str
    description: str
    dims: tuple[str, ...]
    measure: str  # "people" or a column of MEASURES
    column: str  # the published measure column
    derived: tuple[str, ...] = ()

    @property
    def magnitude(self) -> bool:
        return self.measure != "people"

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.dims, self.column, *self.derived)

    @property
    def published_columns(self) -> tuple[str, ...]:
        """The columns as published: a name column (``NAMES``) right after its code."""
        named = [c for d in self.dims for c in (d, *([NAMES[d][0]] if d in NAMES else []))]
        return (*named, self.column, *self.derived)


@dataclass(frozen=True)
class OutputContract:
    name: str
    version: str
    path: Path
    profile: Profile
    source_mart: str
    tables: tuple[OutputTable, ...]
    approvers: frozenset[str]


def _custom(items) -> dict:
    return {c["property"]: c.get("value") for c in items or [] if isinstance(c, dict) and "property" in c}


def _profile(name: str, version: str, custom: dict, problems: list[str]) -> Profile:
    base = PROFILES.get(str(custom.get("disclosureProfile", "safehaven")))
    if base is None:
        problems.append(f"customProperties.disclosureProfile: unknown profile {custom.get('disclosureProfile')!r} "
                        f"(choose one of {', '.join(PROFILES)})")
        return PROFILES["safehaven"]
    changes = {}
    for key, (field, kind) in _OVERRIDES.items():
        if key in custom:
            try:
                changes[field] = kind(custom[key])
            except (TypeError, ValueError):
                problems.append(f"customProperties.{key}: not a {kind.__name__}")
    if "dominanceK" in custom:
        changes["dominance"] = (2, float(custom["dominanceK"]))
    if not changes:
        return base
    return dataclasses.replace(base, name=f"{name}-custom", version=f"{base.name}@{base.version}+{name}@{version}",
                               description=f"{base.description}; changed by output contract {name} {version}: "
                                           + ", ".join(f"{k}={v}" for k, v in changes.items()), **changes)


def _table(raw: dict, where: str, problems: list[str]) -> OutputTable | None:
    columns = [p.get("name") for p in raw.get("properties") or []]
    personal = [c for c in columns if RECORD_LEVEL_NAMES.search(str(c))]
    if personal:
        problems.append(f"{where}.properties: '{personal[0]}' is record-level (a pseudonym or identifier); an "
                        "aggregate output may not carry one")
        return None
    measure = str(_custom(raw.get("customProperties")).get("measure", ""))
    if measure != "people" and measure not in MEASURES:
        problems.append(f"{where}.customProperties.measure: {measure or '(missing)'!r} is neither 'people' nor one "
                        f"of {', '.join(MEASURES)}")
        return None
    dims = []
    for column in columns:
        if column not in DIMENSIONS:
            break
        dims.append(column)
    rest = columns[len(dims):]
    if not dims or not rest:
        problems.append(f"{where}.properties: dimension columns (from {', '.join(DIMENSIONS)}) then the measure "
                        f"column; found {columns}")
        return None
    derived = tuple(rest[1:])
    for column in derived:
        if derived_dimension(column, dims) is None:
            problems.append(f"{where}.properties: '{column}' is not a dimension, the measure, or a derived "
                            "percent_of_<dimension> column")
    if len(set(dims)) != len(dims):
        problems.append(f"{where}.properties: a dimension appears twice")
    return OutputTable(raw.get("name", ""), raw.get("description", ""), tuple(dims), measure, rest[0], derived)


def derived_dimension(column: str, dims) -> str | None:
    """The dimension a ``percent_of_<dimension>`` column divides by (``ward`` names ``ward_code``)."""
    target = column.removeprefix("percent_of_")
    if column == target:
        return None
    return next((d for d in dims if target in {d, d.removesuffix("_code")}), None)


def load_output_contract(contracts_dir: Path, name: str) -> OutputContract:
    path = Path(contracts_dir) / "outputs" / f"{name}{CONTRACT_SUFFIX}"
    if not path.exists():
        known = output_contract_names(contracts_dir)
        raise ContractError(f"no output contract {path} (there are: {', '.join(known) or 'none'})")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    problems = odcs_problems(raw, path, "output")
    custom = _custom(raw.get("customProperties"))
    profile = _profile(raw.get("name", name), str(raw.get("version", "")), custom, problems)
    source = str(custom.get("sourceMart", "person"))
    if source != "person":
        problems.append(f"customProperties.sourceMart: {source!r}: outputs are built from the person mart")
    tables = []
    for i, table in enumerate(raw.get("schema") or []):
        built = _table(table, f"schema[{i}] ({table.get('name')})", problems)
        if built:
            tables.append(built)
            if built.magnitude and (profile.round_base or not profile.secondary):
                problems.append(f"schema[{i}]: magnitude table under profile {profile.name!r}, which rounds or has "
                                "no secondary suppression; use safehaven or acro")
    if not tables and not problems:
        problems.append("schema: no tables")
    if problems:
        raise ContractError(f"output contract {path.name} is not valid:\n  " + "\n  ".join(problems))
    approvers = frozenset(r["role"] for r in raw.get("roles") or [] if r.get("access") == "approve")
    return OutputContract(raw["name"], str(raw["version"]), path, profile, source, tuple(tables), approvers)


def output_contract_names(contracts_dir: Path) -> list[str]:
    return sorted(p.name.removesuffix(CONTRACT_SUFFIX) for p in (Path(contracts_dir) / "outputs").glob(
        f"*{CONTRACT_SUFFIX}"))
