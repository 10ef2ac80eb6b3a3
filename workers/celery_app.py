"""Celery for Rückhalt: Redis as broker in production, a SQLite file in the data folder when embedded.

Both are real brokers with real workers and real timers (never eager mode): the embedded default uses
kombu's SQLAlchemy transport, so ``make run`` needs no server and still exercises the path production takes.
Tasks take ids only (JSON), are acknowledged late (a worker killed mid-task leaves the message for another),
and are idempotent (the delivery log, the reminder log, the outbox row's state).

Start a worker: ``celery -A workers.celery_app worker``; the schedule: ``celery -A workers.celery_app beat``
(``rueckhalt up`` starts both beside the api).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from service.config import Settings, get_settings

# How often the schedule runs each piece of work.
RELAY_SECONDS = 1.0
ESCALATE_SECONDS = 60.0
# The receipt kept for a second submission (service/reports/answer_again.py) outlives its quarter of an
# hour by at most this (and the minute its end is stored to).
FORGET_ANSWERS_SECONDS = 60.0
REMIND_SECONDS = 15 * 60.0
HEARTBEAT_SECONDS = 30.0
RETENTION_SECONDS = 24 * 3600.0
# Hourly, though it sends once a day: a beat restarted or down at the usual hour sends within the hour.
AUDIT_CHECKPOINT_SECONDS = 3600.0
KNOWLEDGE_REVIEW_SECONDS = 7 * 24 * 3600.0
# The SMTP relay's certificate (service/notifications/certificate.py): its date changes rarely.
SMTP_CERTIFICATE_SECONDS = 3600.0


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.resolved_broker_url
    transport_options: dict[str, Any] = {}
    if broker.startswith(("redis://", "rediss://")):
        # A task not acknowledged within this time is handed to another worker: longer than any task runs.
        transport_options = {
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            # Look for tasks of dead workers often enough to honour the timeout (a scan is one Redis call).
            "unacked_restore_interval": max(1, min(60, settings.broker_visibility_timeout_seconds // 3)),
            "unacked_restore_throttle": 1,
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
        }
    # kombu's SQLAlchemy transport hands its options to create_engine: it gets none (polls once a second).
    return {
        "broker_url": broker,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Redis hands a worker its next task as soon as it asks. kombu's SQLAlchemy transport (the embedded
        # default) polls: a worker whose reserved tasks fill its prefetch window sleeps a whole polling
        # interval (a second) before it takes the next, so one task per thread and second would be its pace
        # (at 5 reports/s the queue grew by three a second). A wider window there; on one machine there is no
        # other worker to leave tasks to.
        "worker_prefetch_multiplier": 1 if broker.startswith(("redis://", "rediss://")) else 16,
        "worker_hijack_root_logger": False,
        "task_default_queue": "rueckhalt",
        "timezone": "UTC",
        "beat_schedule_filename": str((settings.data_dir / "celerybeat-schedule").resolve()),
        "beat_schedule": {
            # Short expiry: a pass that waited in the queue is useless once the next one is due.
            "outbox-relay": {"task": "outbox.relay", "schedule": RELAY_SECONDS, "options": {"expires": 10}},
            "cases-escalate": {
                "task": "cases.escalate",
                "schedule": ESCALATE_SECONDS,
                "options": {"expires": 50},
            },
            "reports-forget-answers": {
                "task": "reports.forget_answers",
                "schedule": FORGET_ANSWERS_SECONDS,
                "options": {"expires": 50},
            },
            "cases-remind": {"task": "cases.remind", "schedule": REMIND_SECONDS, "options": {"expires": 600}},
            "system-heartbeat": {
                "task": "system.heartbeat",
                "schedule": HEARTBEAT_SECONDS,
                "options": {"expires": 25},
            },
            # Daily, so a missed first of the month is made up; a stored snapshot is never rebuilt.
            "statistics-snapshot": {
                "task": "statistics.snapshot",
                "schedule": RETENTION_SECONDS,
                "options": {"expires": 3600},
            },
            # The audit chain's head leaves the machine once a day (service/audit/daily.py).
            "audit-checkpoint": {
                "task": "audit.checkpoint",
                "schedule": AUDIT_CHECKPOINT_SECONDS,
                "options": {"expires": 3000},
            },
            # Weekly: articles whose facts nobody checked for a year (law and phone numbers change).
            "knowledge-remind-review": {
                "task": "knowledge.remind_review",
                "schedule": KNOWLEDGE_REVIEW_SECONDS,
                "options": {"expires": 3600},
            },
            # When the relay's certificate expires, for the alert 14 days before (docs/metrics.md).
            "smtp-certificate": {
                "task": "system.smtp_certificate",
                "schedule": SMTP_CERTIFICATE_SECONDS,
                "options": {"expires": 3000},
            },
            "retention-purge": {
                "task": "retention.purge",
                "schedule": RETENTION_SECONDS,
                "options": {"expires": 3600},
            },
        },
    }


def make_celery(settings: Settings) -> Celery:
    app = Celery("rueckhalt")
    app.conf.update(celery_config(settings))
    app.conf.update(include=["workers.tasks"])
    return app


app = make_celery(get_settings())

# The worker's and the beat's metrics and log format, connected to Celery's signals (after ``app`` exists).
import workers.observability  # noqa: E402, F401
