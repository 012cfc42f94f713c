"""safehaven-pipeline: pseudonymised linkage, risk stratification and disclosure control for
health and social care extracts in a safe haven.

The public API is deliberately small; everything else is reached through subpackages
(``pipeline.contracts``, ``pipeline.ingest``, ``pipeline.synth``). Importing ``pipeline``
loads no heavy dependency (Great Expectations is loaded only when a delivery is validated).
"""

from pipeline.audit import AuditLog
from pipeline.contracts import check_contracts, require_contract
from pipeline.errors import (
    ContractError,
    ContractExpired,
    DeliveryQuarantined,
    SafehavenError,
    UserError,
)
from pipeline.settings import Settings, load_settings

__all__ = [
    "AuditLog",
    "ContractError",
    "ContractExpired",
    "DeliveryQuarantined",
    "SafehavenError",
    "Settings",
    "UserError",
    "check_contracts",
    "load_settings",
    "require_contract",
]

__version__ = "0.1.0"
