"""Typed settings, read once at the edge (the CLI or a flow) and passed down.

Every field can be set by an environment variable ``SAFEHAVEN_<FIELD>``; the CLI's
``--data-root`` overrides ``SAFEHAVEN_DATA_ROOT``. Library functions never read the
environment themselves: they take a ``Settings`` (or plain arguments).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import SettingsError

__all__ = ["DEFAULT_CONTRACTS_DIR", "Settings", "load_settings", "wall_date"]

#: The repository's ``contracts/`` folder (an editable install or a checkout).
DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"


class Settings(BaseSettings):
    """Settings for one run of safehaven."""

    model_config = SettingsConfigDict(env_prefix="SAFEHAVEN_", extra="forbid", frozen=True)

    data_root: Path = Field(Path("data"), description="Root of every zone (landing, staging, ...).")
    contracts_dir: Path = Field(
        DEFAULT_CONTRACTS_DIR, description="Folder of ODCS data contracts, one per feed."
    )
    allow_synthetic_nhs_numbers: bool = Field(
        False,
        description="Treat the never-issued 9xx range as valid: only synthetic runs switch this on.",
    )
    as_of: dt.date | None = Field(
        None, description="Act as if today were this date (default: today): contracts, retention, marts and the "
        "case-finding packs are judged on it, and it is recorded in the audit log and every manifest and receipt. "
        "Opt-out lists are judged on the real date as well: a replay never makes a stale list current."
    )
    stale_opt_out_override: str | None = Field(
        None, description="An IG lead's override that lets ingest use an opt-out list older than its contract "
        "allows: who approved it and why. Audited, recorded in each manifest, shown in the evidence pack."
    )
    validation_batch_bytes: int = Field(
        32 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of CSV read per validation batch; bounds the gate's memory.",
    )
    log_level: str = Field("INFO", description="Logging level for the pipeline's loggers.")
    ingest_workers: int = Field(
        2, ge=1, le=16, description="Activity deliveries ingested at once (threads; polars and pyarrow release the GIL)."
    )
    validation_engine: Literal["polars", "gx"] = Field(
        "polars",
        description="Rule engine at the gate: polars (fast, streaming) or gx (the reference engine).",
    )
    ingest_cron: str = Field("0 6 1-10 * *", description="When each feed's ingest runs (cron): daily at 06:00 over "
                             "the first ten days of the month, while monthly deliveries land; a staged delivery is skipped.")
    link_cron: str = Field("30 7 1-10 * *", description="When link runs (cron): after the morning's ingest runs in the "
                           "delivery window; stratify follows each completed link run.")
    publish_cron: str = Field("0 9 12 * *", description="When the commissioning package is published (cron; monthly, "
                              "after the delivery window).")
    retain_cron: str = Field("30 2 * * *", description="When the retain flow runs (cron; daily by default).")
    report_cron: str = Field("0 7 * * 1", description="When the IG evidence pack and notice are rebuilt (cron; weekly).")
    prefect_port: int = Field(4200, ge=1024, le=65535, description="Port of the local Prefect server `safehaven serve` "
                              "starts when PREFECT_API_URL is not set.")
    prefect_run_retention_days: int | None = Field(
        None, ge=1, description="How long Prefect keeps flow runs, logs and events (default: the longest staging "
        "retention in the feed contracts, since run logs name staged deliveries).")
    dask_address: str | None = Field(None, description="Address of a Dask scheduler (tcp://host:8786): per-delivery "
                                     "ingest work runs on its workers; unset runs it on local threads.")
    schedule_timezone: str = Field("Europe/London", description="Time zone of every schedule.")
    operator: str | None = Field(None, description="Who destruction certificates say ran retention (default: the OS user).")
    kek: SecretStr | None = Field(
        None, description="Key-encryption key for the keystore: 32 bytes as hex or base64 (secret)."
    )
    keystore_passphrase: SecretStr | None = Field(
        None, description="Passphrase the keystore's key-encryption key is derived from (secret)."
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value

    # Zones ---------------------------------------------------------------------------------
    @property
    def landing(self) -> Path:
        """Raw, identifiable deliveries: only the ingest step reads here."""
        return self.data_root / "landing"

    @property
    def quarantine(self) -> Path:
        """Deliveries rejected by the gate, kept whole with a reason file (still identifiable)."""
        return self.landing / "_quarantine"

    @property
    def staging(self) -> Path:
        """Pseudonymised Parquet per delivery."""
        return self.data_root / "staging"

    @property
    def warehouse_dir(self) -> Path:
        """The encrypted DuckDB warehouse (one file per generation)."""
        return self.data_root / "warehouse"

    @property
    def marts_dir(self) -> Path:
        """Read-only, encrypted DuckDB marts per access tier, reached only through ``safehaven query``."""
        return self.data_root / "marts"

    @property
    def reports_dir(self) -> Path:
        """Internal reports (linkage quality): counts not suppressed, never published."""
        return self.data_root / "reports"

    @property
    def models_dir(self) -> Path:
        """Risk models, one folder per version (the model file and its card)."""
        return self.warehouse_dir / "models"

    @property
    def outputs_dir(self) -> Path:
        """What leaves the safe haven: suppressed aggregates and signed case-finding packs."""
        return self.data_root / "outputs"

    @property
    def case_finding_dir(self) -> Path:
        """Signed, expiring case-finding packs, one folder per run, one pack per GP practice."""
        return self.outputs_dir / "case-finding"

    @property
    def reidentification_dir(self) -> Path:
        """Re-identified lists returned to GP practices: identifiable, so inside landing/."""
        return self.landing / "reidentification"

    @property
    def audit_dir(self) -> Path:
        """The append-only, hash-chained audit log."""
        return self.data_root / "audit"

    @property
    def audit_log(self) -> Path:
        return self.audit_dir / "audit.jsonl"

    @property
    def validation_dir(self) -> Path:
        """Validation receipts (counts only) and the Great Expectations project with Data Docs."""
        return self.data_root / "validation"

    @property
    def synthetic_truth(self) -> Path:
        """Ground truth of a synthetic population: read by tests and evaluation, never by flows."""
        return self.data_root / "synthetic-truth"

    @property
    def keystore_path(self) -> Path:
        """The local keystore (encrypted master secrets); never scanned into outputs."""
        return self.data_root / "keys" / "keystore.json"

    @property
    def prefect_home(self) -> Path:
        """Prefect's home (its SQLite database) for ephemeral runs, kept under the data root."""
        return self.data_root / "prefect"

    def today(self) -> dt.date:
        """The one notion of "today": ``as_of`` if given, else the real date."""
        return self.as_of or wall_date()

    def latest_today(self) -> dt.date:
        """The later of ``as_of`` and the real date: what an opt-out list's age is judged on, so
        an as-of in the past cannot make a stale list look current."""
        return max(self.today(), wall_date())

    def audit(self):
        """The audit log of this data root, recording ``as_of`` (when given) in every entry."""
        from pipeline.audit import AuditLog

        return AuditLog(self.audit_log, as_of=self.as_of)


def wall_date() -> dt.date:
    """The real date (the only place the library reads the calendar for "today")."""
    return dt.date.today()


def load_settings(**overrides) -> Settings:
    """Read settings from the environment, with explicit overrides (e.g. from CLI options).

    A bad value raises ``SettingsError`` naming the setting and where it was looked for.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(
                f"setting '{field}' ({err['msg']}); looked in: command-line options, "
                f"environment variable SAFEHAVEN_{field.upper()}, then the default"
            )
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
