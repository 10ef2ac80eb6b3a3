"""Fixtures for the audit tests: sessions on each database, a key, a way to fill the chain and to tamper."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, TextClause, text
from sqlalchemy.orm import Session, sessionmaker

from service.audit import AuditLog
from service.audit.models import AuditEvent
from service.db import make_engine, make_sessionmaker

Fill = Callable[[int], list[AuditEvent]]
Tamper = Callable[..., None]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def log(key: bytes) -> AuditLog:
    return AuditLog(key)


@pytest.fixture
def fill(sessions: sessionmaker[Session], log: AuditLog) -> Fill:
    """Append ``n`` realistic events, each in its own committed transaction, as the service would."""

    def _fill(n: int) -> list[AuditEvent]:
        events = []
        for number in range(n):
            with sessions() as session:
                events.append(
                    log.append(
                        session,
                        actor_kind="staff",
                        actor_id=f"00000000-0000-4000-8000-{number:012d}",
                        action="case.decrypt",
                        object_type="case",
                        object_id=f"case-{number}",
                        details={"field": "description", "count": number, "urgent": number % 2 == 0},
                    )
                )
                session.commit()
        return events

    return _fill


@pytest.fixture
def tamper(engine: Engine) -> Tamper:
    """Run raw SQL on its own connection, past the service, as someone with write access to the database."""

    def _tamper(statement: str | TextClause, **params: Any) -> None:
        clause = text(statement) if isinstance(statement, str) else statement
        with engine.begin() as connection:
            connection.execute(clause, params)

    return _tamper


@pytest.fixture
def count_rows(sessions: sessionmaker[Session]) -> Callable[[], int]:
    """Rows in audit_event as a fresh session sees them (that is: committed rows only)."""

    def _count() -> int:
        with sessions() as session:
            return int(session.execute(text("SELECT count(*) FROM audit_event")).scalar_one())

    return _count
