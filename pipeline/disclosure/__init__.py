"""Disclosure control for aggregate outputs: count tables, primary rules and profiles,
secondary suppression (hypercube moves, with an LP engine behind them), and the audit that
proves no hidden cell can be narrowed below its protection interval.

The release ledger audits a new release together with everything already published about the
same people. The disclosure record and the publish flow build on these (issue 6 continues).
"""

from pipeline.disclosure.audit import (
    AuditResult,
    CellCertificate,
    audit_release,
    recoverable_by_subtraction,
)
from pipeline.disclosure.ledger import LedgerEntry, ReleaseLedger, apply_joint
from pipeline.disclosure.profiles import PROFILES, Profile, get_profile
from pipeline.disclosure.release import PRIMARY, SAFE, SECONDARY, Release, apply_primary
from pipeline.disclosure.secondary import METHODS, protect
from pipeline.disclosure.table import TOTAL, CountTable, Dimension, build_table, count_people

__all__ = [
    "METHODS",
    "PRIMARY",
    "PROFILES",
    "SAFE",
    "SECONDARY",
    "TOTAL",
    "AuditResult",
    "CellCertificate",
    "CountTable",
    "Dimension",
    "LedgerEntry",
    "Profile",
    "Release",
    "ReleaseLedger",
    "apply_joint",
    "apply_primary",
    "audit_release",
    "build_table",
    "count_people",
    "get_profile",
    "protect",
    "recoverable_by_subtraction",
]
