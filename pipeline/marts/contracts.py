"""Mart contracts: ``contracts/marts/<mart>.odcs.yaml`` (ODCS v3.2.0).

Each declares the mart's tables and columns (the built mart must match them exactly) and, in
``roles``, who may read it (``access: read``) and who approves it (``access: approve``). The
query command grants a role exactly the marts whose contracts name it as a reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from pipeline.contracts.check import CONTRACT_SUFFIX, odcs_problems
from pipeline.errors import ContractError

__all__ = ["MartContract", "load_mart_contracts", "roles_of"]


@dataclass(frozen=True)
class MartContract:
    name: str
    path: Path
    tables: dict[str, tuple[tuple[str, str], ...]]  # table -> ((column, physical type), ...)
    readers: frozenset[str]
    approvers: frozenset[str]

    def columns(self, table: str) -> tuple[str, ...]:
        return tuple(c for c, _ in self.tables[table])


def _load(path: Path) -> MartContract:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    problems = odcs_problems(raw, path, "mart")
    roles = [r for r in raw.get("roles") or [] if isinstance(r, dict)]
    readers = frozenset(r["role"] for r in roles if r.get("access") == "read")
    approvers = frozenset(r["role"] for r in roles if r.get("access") == "approve")
    if not readers:
        problems.append("roles: name at least one role with access: read")
    if problems:
        raise ContractError(f"mart contract {path.name} is not valid:\n  " + "\n  ".join(problems))
    tables = {t["name"]: tuple((p["name"], p.get("physicalType", "")) for p in t.get("properties", []))
              for t in raw.get("schema", [])}
    return MartContract(raw["name"], path, tables, readers, approvers)


@cache
def _cached(folder: str, stamp: tuple) -> dict[str, MartContract]:
    return {c.name: c for c in (_load(Path(p)) for p, _ in stamp)}


def load_mart_contracts(contracts_dir: Path) -> dict[str, MartContract]:
    """Every mart contract under ``<contracts_dir>/marts``, checked."""
    folder = Path(contracts_dir) / "marts"
    paths = sorted(folder.glob(f"*{CONTRACT_SUFFIX}"))
    if not paths:
        raise ContractError(f"no mart contracts in {folder}")
    return _cached(str(folder), tuple((str(p), p.stat().st_mtime_ns) for p in paths))


def roles_of(contracts: dict[str, MartContract]) -> dict[str, tuple[str, ...]]:
    """role -> the marts it may read."""
    roles: dict[str, list[str]] = {}
    for contract in contracts.values():
        for role in contract.readers:
            roles.setdefault(role, []).append(contract.name)
    return {role: tuple(sorted(marts)) for role, marts in sorted(roles.items())}
