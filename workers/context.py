"""What a worker process works with: the runtime (database, keys, policies) and the notification service.

Built once per process on first use (after Celery forks its pool, so no database connection crosses a
fork). Tests install a context of their own with ``use``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from celery import Celery

from service.cases.escalation import CaseSchedule
from service.config import Settings, get_settings
from service.notifications.mail import mailer_for
from service.notifications.service import NotificationService
from service.notifications.webhooks import WebhookSender
from service.observability.listener import instrument_pool
from service.runtime import Runtime, build_runtime


@dataclass
class WorkerContext:
    runtime: Runtime
    notifications: NotificationService
    schedule: CaseSchedule
    settings: Settings


def context_for(runtime: Runtime, settings: Settings | None = None) -> WorkerContext:
    """The context of a worker; ``settings`` replaces the runtime's (tests point mail at their server)."""
    settings = settings or runtime.settings
    return WorkerContext(
        runtime=runtime,
        settings=settings,
        notifications=NotificationService(
            settings,
            runtime.secrets.notification_key,
            runtime.taxonomy,
            mailer_for(settings),
            WebhookSender(settings.webhook_timeout_seconds),
            previous_keys=runtime.secrets.previous_of("notification_key"),
        ),
        schedule=CaseSchedule(runtime.audit, settings.reporter_waiting_hours),
    )


_lock = threading.Lock()
_current: WorkerContext | None = None
_app: Celery | None = None


def use(context: WorkerContext | None, app: Celery | None = None) -> None:
    global _current, _app
    with _lock:
        _current, _app = context, app


def current() -> WorkerContext:
    global _current
    with _lock:
        if _current is None:
            runtime = build_runtime(get_settings())
            instrument_pool(runtime.engine, "threads")
            _current = context_for(runtime)
        return _current


def celery() -> Celery:
    """The app tasks publish through (the relay's follow-up tasks): the test's app, or the worker's."""
    if _app is not None:
        return _app
    from celery import current_app

    return current_app
