"""Prefect flows: wiring only. Parameters are ids and paths; data never crosses a task boundary.

Import ``pipeline.flows.ingest`` only after ``prefect_environment(settings)`` has run (the CLI
does this): Prefect reads its settings at import.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.settings import Settings

__all__ = ["prefect_environment"]


def prefect_environment(settings: Settings) -> None:
    """Point Prefect at a home under the data root (its SQLite database, for ephemeral runs),
    switch off telemetry and result persistence. Explicit PREFECT_* variables win."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(settings.prefect_home.resolve()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_LOG_PRINTS": "false",
        "PREFECT_UI_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
        # the console for people, everything else in the run log (pipeline/runlog.py)
        "PREFECT_LOGGING_SETTINGS_PATH": str(Path(__file__).with_name("logging.yml")),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
