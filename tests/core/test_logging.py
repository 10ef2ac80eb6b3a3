"""Logs never carry request content: tracebacks are reduced to the exception's type."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from service.db import make_engine
from service.hardening import ContentFreeLogFilter


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


def test_a_database_drivers_message_is_reduced_to_the_types_of_its_arguments() -> None:
    """psycopg logs an error it ignores with the server's message, which can quote a value."""
    from service.hardening import DriverLogFilter

    server_message = "duplicate key value\nDETAIL:  Key (body)=(QXLOGCANARY) already exists."
    record = logging.LogRecord(
        "psycopg",
        logging.WARNING,
        __file__,
        1,
        "error ignored terminating %r: %s",
        ("pipe", server_message),
        None,
    )
    assert DriverLogFilter().filter(record)
    formatted = logging.Formatter("%(message)s").format(record)
    assert "QXLOGCANARY" not in formatted
    assert "error ignored terminating" in formatted
    assert "[str, str]" in formatted


def test_the_driver_filter_is_installed_with_the_others() -> None:
    from service.hardening import DriverLogFilter, install_log_filter

    install_log_filter()
    assert any(isinstance(f, DriverLogFilter) for f in logging.getLogger("psycopg").filters)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_database_error_never_carries_the_statements_values(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SQLAlchemy's message lists a failed statement's parameters; ours say they are hidden, wherever the
    error is logged or retried (a worker's retry log line, for one)."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'x.db'}"
    else:
        url = request.getfixturevalue("pg_cluster").url("postgres")
    engine = make_engine(url)
    try:
        with engine.connect() as connection, pytest.raises(sa_exc.DBAPIError) as caught:
            connection.execute(text("SELECT * FROM no_such_table WHERE x = :x"), {"x": "QXLOGCANARY"})
    finally:
        engine.dispose()
    assert "QXLOGCANARY" not in str(caught.value)
    assert "hidden" in str(caught.value)
