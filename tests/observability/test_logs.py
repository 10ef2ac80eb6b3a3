"""JSON log lines (RUECKHALT_LOG_FORMAT=json): one object a line, behind the same content-free filters."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from service.config import Settings
from service.hardening import ContentFreeLogFilter
from service.observability.logs import JsonFormatter, apply_format

SECRET = "QXLOGCANARY anna@example.org"


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContentFreeLogFilter())
    logger = logging.getLogger("rueckhalt.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_a_line_is_one_json_object_with_the_error_type_and_no_content(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    log.info("report filed on %s", "/api/v1/reports")
    try:
        raise ValueError(f"duplicate key {SECRET}\nsecond line")
    except ValueError:
        log.exception("unhandled")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "report filed on /api/v1/reports"
    assert first["level"] == "INFO"
    assert first["logger"] == "rueckhalt.test-json"
    assert second["message"] == "unhandled [ValueError]"
    assert SECRET not in stream.getvalue()
    assert "Traceback" not in stream.getvalue()


def test_the_formatter_alone_writes_no_traceback_either() -> None:
    try:
        raise KeyError(SECRET)
    except KeyError:
        import sys

        record = logging.LogRecord("rueckhalt", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    assert json.loads(line)["error"] == "KeyError"
    assert SECRET not in line


def test_the_setting_gives_the_root_handlers_the_json_format() -> None:
    handler = logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(handler)
    # pytest's capturing handlers hang on the root too: they get their formatters back.
    kept = {other: other.formatter for other in root.handlers}
    try:
        apply_format(Settings(log_format="text"))
        assert not isinstance(handler.formatter, JsonFormatter)
        apply_format(Settings(log_format="json"))
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        root.removeHandler(handler)
        for other, formatter in kept.items():
            other.setFormatter(formatter)
