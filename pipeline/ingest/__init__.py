"""Reading deliveries: naming, and the validation gate every delivery passes first."""

from pipeline.ingest.deliveries import Delivery, find_deliveries, find_delivery_files
from pipeline.ingest.gate import GateResult, RuleOutcome, ValidationGate

__all__ = ["Delivery", "GateResult", "RuleOutcome", "ValidationGate", "find_deliveries", "find_delivery_files"]
