"""Error types for safehaven.

Two families, as the CLI and the flows treat them differently:

* ``UserError`` and its children: something a person must fix (a contract, a delivery, a
  setting). They carry a clear message naming the file, the column and the rule, and the fix.
  The CLI prints the message without a traceback and exits with ``exit_code``.
* ``TransientError``: something that may work if tried again (a locked file, a busy server).
  Flows retry these.

No message may ever contain a patient value (an NHS number, a postcode, a date of birth, a
name): messages name columns, rules and counts only. ``tests/unit/test_errors.py`` checks
the messages the library builds, and ``pipeline.logs`` redacts anything that slips through.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "AuditTampered",
    "ContractError",
    "ContractExpired",
    "DeliveryError",
    "DeliveryQuarantined",
    "DestructionUnverified",
    "DisclosureFailed",
    "KeyMismatch",
    "KeystoreError",
    "OptOutListStale",
    "OutputTampered",
    "QueryRefused",
    "ReportRefused",
    "SafehavenError",
    "SettingsError",
    "TransientError",
    "UserError",
    "exit_code_for",
]


class SafehavenError(Exception):
    """Base class for every error this package raises on purpose."""

    exit_code = 1


class UserError(SafehavenError):
    """An error a person must fix; shown without a traceback."""

    exit_code = 2


class SettingsError(UserError):
    """A setting is missing or invalid."""

    exit_code = 3


class ContractError(UserError):
    """A data contract is missing, invalid or inconsistent; nothing that uses it may run."""

    exit_code = 10

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class ContractExpired(ContractError):
    """A contract's legal basis has passed its end date."""

    exit_code = 11


class DeliveryError(UserError):
    """A delivery cannot be read or identified (bad name, unreadable file)."""

    exit_code = 20


class DeliveryQuarantined(DeliveryError):
    """A delivery failed the validation gate and was quarantined whole."""

    exit_code = 21

    def __init__(self, message: str, reasons: list[str], quarantine_path=None):
        super().__init__(message)
        self.reasons = list(reasons)
        self.quarantine_path = quarantine_path


class AuditError(UserError):
    """The audit log cannot be written or read."""

    exit_code = 30


class AuditTampered(AuditError):
    """The audit log's hash chain is broken: an entry was edited, removed or reordered."""

    exit_code = 31

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


class KeystoreError(UserError):
    """The keystore is missing, cannot be opened, or a key version is not usable."""

    exit_code = 40


class KeyMismatch(UserError):
    """Data pseudonymised under one key met data or a run under another (by fingerprint)."""

    exit_code = 41


class OptOutListStale(UserError):
    """An opt-out list is missing or older than its contract allows; nothing is staged."""

    exit_code = 42


class QueryRefused(UserError):
    """A query asked for more than its role allows (a write, an attach, another mart); audited."""

    exit_code = 50


class DisclosureFailed(UserError):
    """A table breaks a primary rule or a hidden cell can be narrowed below its protection."""

    exit_code = 70


class OutputTampered(DisclosureFailed):
    """A published package no longer matches its manifest (a file changed, added or removed)."""

    exit_code = 71


class DestructionUnverified(UserError):
    """A destruction certificate does not check out, or the scan found a destroyed record
    still readable: what was certified as gone may not be."""

    exit_code = 72


class ReportRefused(UserError):
    """A report page would have shown a value shaped like an NHS number or a postcode; nothing
    was written."""

    exit_code = 73


class TransientError(SafehavenError):
    """A failure that may pass if the step is tried again (flows retry these)."""

    exit_code = 75  # EX_TEMPFAIL


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception (1 for anything unexpected)."""
    if isinstance(exc, SafehavenError):
        return exc.exit_code
    return 1
