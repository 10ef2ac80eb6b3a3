"""Helpers of the tests that run a real Celery worker (tests/notifications): the report they file, a bounded
wait, the outbox as it stands, and the type of the ``stack`` fixture (tests/notifications/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from celery import Celery
from sqlalchemy import select

from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import report_body

REPORT = report_body(type_codes=["A3a"], description="Drohung per Post", channel="letter")

Stack = Callable[..., Celery]


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def outbox(runtime: Runtime) -> list[OutboxMessage]:
    with runtime.sessions() as db:
        rows = list(db.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))
        db.expunge_all()
        return rows
