"""Logs never carry request content: tracebacks are reduced to the exception's type."""

from __future__ import annotations

import logging

from service.web import ContentFreeLogFilter


def test_a_traceback_with_content_is_reduced_to_its_type() -> None:
    try:
        raise ValueError("QXLOGCANARY description of the threat")
    except ValueError:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in %s", ("app",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    assert ContentFreeLogFilter().filter(record)
    formatted = logging.Formatter("%(message)s").format(record)
    assert "QXLOGCANARY" not in formatted
    assert "ValueError" in formatted
    assert "Exception in app" in formatted
