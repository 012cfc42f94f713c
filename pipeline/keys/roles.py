"""Roles and which of them hold which key.

Every key in the keystore is wrapped for the roles that may use it, and only a role's own
credential unwraps its private key (see ``store``):

- ``engineer`` (ingest, link, stratify, publish): the master secrets (so the linkage, postcode,
  local-id, mart-pseudonym, case-finding and signing domains), the warehouse, staged deliveries
  and retention's working keys;
- each mart's data keys: the roles its mart contract lets read it (``access: read``): the
  engineer reads the person and linkage marts (publishing reads the person mart; retention's
  verification scans them), analysts the person mart, IG leads the governance mart;
- ``ig-lead``: the destruction-certificate signing key, so retention needs the IG lead's
  credential beside the engineer's.
"""

from __future__ import annotations

import os

__all__ = ["ENGINEER", "IG_LEAD", "KeyHolders", "role_env"]

ENGINEER = "engineer"
IG_LEAD = "ig-lead"
CERTIFICATE_SIGNING = "certificate-signing"


def role_env(role: str) -> str:
    """The environment variable with a role's credential: ``SAFEHAVEN_KEK`` for the engineer,
    ``SAFEHAVEN_KEK_<ROLE>`` for the others (``ig-lead`` -> ``SAFEHAVEN_KEK_IG_LEAD``)."""
    return "SAFEHAVEN_KEK" if role == ENGINEER else "SAFEHAVEN_KEK_" + role.upper().replace("-", "_")


def role_credential_text(role: str) -> str | None:
    return os.environ.get(role_env(role)) or None


class KeyHolders:
    """Which roles a data key is wrapped for, by its name: ``mart-<mart>-<stamp>`` keys for the
    mart's readers; every other data key for the engineer alone."""

    def __init__(self, mart_readers: dict[str, frozenset[str] | tuple[str, ...]] | None = None):
        self.mart_readers = {m: tuple(sorted(r)) for m, r in (mart_readers or {}).items()}

    @classmethod
    def from_contracts(cls, contracts_dir) -> KeyHolders:
        from pathlib import Path

        from pipeline.marts.contracts import load_mart_contracts

        if not (Path(contracts_dir) / "marts").is_dir():  # a contracts folder of feeds only: no mart keys to make
            return cls()
        return cls({name: c.readers for name, c in load_mart_contracts(contracts_dir).items()})

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role a keystore made now needs: the engineer, the IG lead and each mart reader."""
        return tuple(sorted({ENGINEER, IG_LEAD}.union(*self.mart_readers.values())))

    def __call__(self, name: str) -> tuple[str, ...]:
        for mart in sorted(self.mart_readers, key=len, reverse=True):
            if name.startswith(f"mart-{mart}-"):
                return self.mart_readers[mart]
        return (ENGINEER,)
