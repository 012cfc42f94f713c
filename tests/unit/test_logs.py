import logging

import pytest

from pipeline.logs import (
    PREFECT_LOGGERS,
    RedactingFilter,
    contains_identifier,
    install_redaction,
    redact,
)


@pytest.mark.parametrize(
    "text",
    ["nhs 9434765919 bad", "nhs 943 476 5919", "nhs 943-476-5919", "at SS1 2AB", "at ss12ab", "(SW1W 0NY)"],
)
def test_identifier_shapes_are_redacted(text):
    out = redact(text)
    assert not contains_identifier(out)
    assert "REDACTED" in out


@pytest.mark.parametrize("text", ["rows 1,234 of 175,000", "APC000012345", "2026-11-22T10:00:00", "a1b2c3d4e5f6a7b8"])
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_messages_args_and_tracebacks_are_redacted():
    install_redaction()
    logger = logging.getLogger("safehaven.test.redaction")
    handler = _Capture()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("checksum failed for %s at %s", "9434765919", "SS1 2AB")
        try:
            raise ValueError("invalid checksum for 943 476 5919")
        except ValueError:
            logger.exception("parse failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(handler.lines)
    assert "9434765919" not in text and "943 476 5919" not in text and "SS1 2AB" not in text
    assert "ValueError" in text  # the traceback survives, redacted


def test_prefect_loggers_carry_the_filter():
    install_redaction()
    for name in PREFECT_LOGGERS:
        assert any(isinstance(f, RedactingFilter) for f in logging.getLogger(name).filters)


def test_filter_on_a_record_made_elsewhere():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", ("9434765919",), None)
    RedactingFilter().filter(record)
    assert "9434765919" not in record.getMessage()
