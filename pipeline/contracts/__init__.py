"""Feed contracts: ODCS v3.2.0 YAML in ``contracts/`` plus the ``nhs-ig`` extension.

* ``check_contracts(dir)`` checks every contract and reports every problem (file + field).
* ``require_contract(dir, feed)`` is the gate every flow passes before reading a delivery:
  a missing, expired or inconsistent contract raises ``ContractError`` and nothing runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.audit import AuditLog
from pipeline.contracts._ig import FeedIG, FeedKind, FirewallAction, Purpose, Role
from pipeline.contracts.check import (
    CONTRACT_SUFFIX,
    CheckResult,
    Problem,
    check_contract,
    contract_path,
)
from pipeline.contracts.model import ColumnSpec, FeedContract, QualityRule, TableSpec
from pipeline.errors import ContractError, ContractExpired

__all__ = [
    "CheckResult",
    "ColumnSpec",
    "FeedContract",
    "FeedIG",
    "FeedKind",
    "FirewallAction",
    "Problem",
    "Purpose",
    "QualityRule",
    "Role",
    "TableSpec",
    "check_contract",
    "check_contracts",
    "feed_names",
    "require_contract",
]


def feed_names(contracts_dir: Path) -> list[str]:
    """The feeds that have a contract file, sorted."""
    return sorted(p.name.removesuffix(CONTRACT_SUFFIX) for p in Path(contracts_dir).glob(f"*{CONTRACT_SUFFIX}"))


def check_contracts(contracts_dir: Path, as_of: dt.date | None = None) -> list[CheckResult]:
    """Check every contract in ``contracts_dir``; an empty folder is itself a problem."""
    paths = sorted(Path(contracts_dir).glob(f"*{CONTRACT_SUFFIX}"))
    if not paths:
        missing = Problem(str(contracts_dir), "(folder)", f"no *{CONTRACT_SUFFIX} contracts found")
        return [CheckResult(Path(contracts_dir), None, (missing,))]
    return [check_contract(p, as_of) for p in paths]


def require_contract(
    contracts_dir: Path,
    feed: str,
    as_of: dt.date | None = None,
    audit: AuditLog | None = None,
) -> FeedContract:
    """The checked contract for ``feed``, or ``ContractError`` / ``ContractExpired``.

    Called before any delivery of the feed is read. The check is written to the audit log.
    """
    path = contract_path(contracts_dir, feed)
    if not path.exists():
        if audit:
            audit.append("contract.missing", {"feed": feed, "expected": path.name})
        raise ContractError(
            f"no contract for feed '{feed}': expected {path}. Every feed needs an approved "
            "contract before any of its deliveries is read; nothing was read."
        )
    result = check_contract(path, as_of)
    if audit:
        audit.append(
            "contract.checked",
            {
                "feed": feed,
                "file": path.name,
                "version": result.contract.version if result.contract else None,
                "ok": result.ok,
                "expired": result.expired,
                "problems": [f"{p.field}: {p.message}" for p in result.problems][:50],
            },
        )
    if result.expired:
        expired = [p for p in result.problems if p.expired]
        raise ContractExpired(
            f"contract for feed '{feed}' cannot be used: {expired[0]}. Nothing was read.",
            list(result.problems),
        )
    if not result.ok or result.contract is None:
        listing = "\n  ".join(str(p) for p in result.problems)
        raise ContractError(
            f"contract for feed '{feed}' has {len(result.problems)} problem(s); nothing was read:\n  {listing}",
            list(result.problems),
        )
    return result.contract
