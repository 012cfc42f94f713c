"""The run log: what a command did, in full, in ``<data root>/logs/<stamp>-<command>.log``.

The console is for people: one clear block per problem, no tracebacks, none of Prefect's server
chatter. Everything else (Prefect's run and server logs, warnings, and the traceback of any
error, user errors included) goes to the run log, redacted like every other log (``pipeline.logs``)
and readable by its owner only (0600). The path travels in ``SAFEHAVEN_RUN_LOG``, so the Prefect
server a command starts for itself (a subprocess) appends to the same file through
``logging.yml`` (which ``pipeline.flows.prefect_environment`` points Prefect at).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
import traceback
from pathlib import Path

from pipeline.logs import RedactingFilter, redact

__all__ = ["RUN_LOG_ENV", "ConsoleFilter", "ConsoleFormatter", "RunLogHandler", "current_run_log",
           "start_run_log", "write_exception"]

RUN_LOG_ENV = "SAFEHAVEN_RUN_LOG"
#: Loggers whose records never reach the console: Prefect's server (an ephemeral server's
#: shutdown cancels its event flushes, which it reports as errors) and its web stack.
QUIET = ("prefect.server", "prefect._internal", "uvicorn", "fastapi", "alembic", "httpx", "websockets",
         "prefect.events", "prefect.client")
#: Prefect's own report of a failed task or flow: the command reports the failure itself, once.
FAILURE_REPORTS = ("prefect.flow_runs", "prefect.task_runs", "prefect.engine", "prefect.flow_engine",
                   "prefect.task_engine")

_lock = threading.Lock()


def current_run_log() -> Path | None:
    path = os.environ.get(RUN_LOG_ENV)
    return Path(path) if path else None


def _append(text: str) -> None:
    path = current_run_log()
    if path is None:
        return
    data = (redact(text).rstrip("\n") + "\n").encode("utf-8", "replace")
    with _lock:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:  # the data root went away (a test's temporary folder): nothing to keep
            return
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


class RunLogHandler(logging.Handler):
    """Appends every record it is given, traceback included, to the run log (if one is open)."""

    def __init__(self, level: int = logging.NOTSET):
        super().__init__(level)
        self.addFilter(RedactingFilter())
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if current_run_log() is None:
            return
        try:
            _append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never take the run down
            self.handleError(record)


class ConsoleFilter(logging.Filter):
    """Keeps the console for people: nothing from Prefect's server, no failure reports the command
    itself will make in one block."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(QUIET):
            return False
        return not (record.name.startswith(FAILURE_REPORTS) and record.levelno >= logging.ERROR)


class ConsoleFormatter(logging.Formatter):
    """One line per record: the message without its traceback (that is in the run log)."""

    def __init__(self, fmt: str | None = "%(levelname)s %(name)s: %(message)s", datefmt: str | None = None):
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def start_run_log(data_root: Path, command: str) -> Path:
    """Open this command's run log under ``<data root>/logs`` and send every logger's records to it."""
    folder = Path(data_root) / "logs"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{re.sub(r'[^a-z0-9-]+', '-', command.lower()).strip('-') or 'run'}.log"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.environ[RUN_LOG_ENV] = str(path.resolve())
    root = logging.getLogger()
    if not any(isinstance(h, RunLogHandler) for h in root.handlers):
        root.addHandler(RunLogHandler())
    return path


def write_exception(exc: BaseException) -> Path | None:
    """Put an error's traceback in the run log (redacted); returns the log's path, if any."""
    path = current_run_log()
    if path is not None:
        _append(f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} ERROR [{os.getpid()}] the command "
                f"stopped:\n{''.join(traceback.format_exception(exc))}")
    return path
