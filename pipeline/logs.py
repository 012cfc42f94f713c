"""Logging that cannot leak identifiers.

Two layers, because either alone has holes:

* ``install_redaction()`` wraps the process's log-record factory, so every record created by
  any logger (ours, Prefect's, Great Expectations') is redacted when it is made: the message,
  its arguments, and the formatted traceback (a traceback is where values hide: a
  ``ValueError`` raised by a third-party parser often quotes the offending value).
* ``RedactingFilter`` does the same as a ``logging.Filter``; it is attached to the Prefect
  run loggers and to handlers, for processes configured from a logging file.

Redaction replaces anything shaped like an NHS number (10 digits, optionally grouped 3-3-4
by spaces or dashes) or a UK postcode (full or unspaced) with a fixed marker.
"""

from __future__ import annotations

import logging
import re
import traceback

__all__ = [
    "PREFECT_LOGGERS",
    "RedactingFilter",
    "contains_identifier",
    "install_redaction",
    "redact",
]

NHS_NUMBER_SHAPE = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")
POSTCODE_SHAPE = re.compile(
    r"(?<![0-9A-Za-z])[A-Za-z]{1,2}\d[A-Za-z\d]?[ ]?\d[A-Za-z]{2}(?![0-9A-Za-z])"
)
NHS_MARK = "[REDACTED-NHS]"
POSTCODE_MARK = "[REDACTED-POSTCODE]"

#: Loggers Prefect writes run logs to; the filter is attached to each.
PREFECT_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.runner")


def redact(text: str) -> str:
    """Replace NHS-number-shaped and postcode-shaped substrings with markers."""
    text = NHS_NUMBER_SHAPE.sub(NHS_MARK, text)
    return POSTCODE_SHAPE.sub(POSTCODE_MARK, text)


def contains_identifier(text: str) -> bool:
    """True if ``text`` holds anything shaped like an NHS number or a postcode."""
    return bool(NHS_NUMBER_SHAPE.search(text) or POSTCODE_SHAPE.search(text))


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_safehaven_redacted", False):
        return record
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a bad format string must not stop logging
        message = str(record.msg)
    record.msg = redact(message)
    record.args = None
    if record.exc_info:
        formatted = "".join(traceback.format_exception(*record.exc_info))
        record.exc_text = redact(formatted.rstrip("\n"))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._safehaven_redacted = True
    return record


class RedactingFilter(logging.Filter):
    """A logging filter that redacts identifier-shaped text in messages and tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_installed = False


def install_redaction() -> None:
    """Redact every log record made in this process, and attach the filter to Prefect's loggers.

    Safe to call more than once.
    """
    global _installed
    if _installed:
        return
    base_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = base_factory(*args, **kwargs)
        # Arguments are merged now, so later formatting cannot reintroduce a value.
        return _redact_record(record)

    logging.setLogRecordFactory(factory)
    for name in PREFECT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
    _installed = True
