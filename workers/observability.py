"""Metrics of the worker and the beat: each serves its own listener (``metrics_port`` + 1 and + 2).

Connected to Celery's signals when ``workers.celery_app`` is imported, which every worker and beat does
first. A prefork worker's tasks run in child processes: their counts reach the main process's listener only
in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, as docker-compose.yml sets it); the threads pool that
``rueckhalt up`` uses runs everything in one process.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import (
    after_setup_logger,
    beat_init,
    before_task_publish,
    task_postrun,
    worker_init,
    worker_process_shutdown,
    worker_shutdown,
)

from service.config import get_settings
from service.hardening import install_log_filter
from service.observability import listener, logs, metrics

log = logging.getLogger("rueckhalt.worker")

_listeners: list[listener.MetricsListener] = []


def _serve(role: listener.Role) -> None:
    settings = get_settings()
    if settings.metrics_port is None:
        return
    if role is listener.Role.worker and listener.multiprocess_dir() is None:
        log.info("metrics: without PROMETHEUS_MULTIPROC_DIR only this process's tasks are counted")
    served = listener.start(settings, role)
    if served is not None:
        _listeners.append(served)


def on_worker_init(**_: Any) -> None:
    _serve(listener.Role.worker)


def on_beat_init(**_: Any) -> None:
    _serve(listener.Role.beat)


def on_worker_shutdown(**_: Any) -> None:
    while _listeners:
        _listeners.pop().close()


def on_worker_process_shutdown(**_: Any) -> None:
    listener.process_ended()


def on_task_postrun(task: Any = None, state: str | None = None, **_: Any) -> None:
    name = getattr(task, "name", None) or ""
    metrics.tasks.labels(
        metrics.one_of(name, metrics.TASKS), metrics.one_of(state or "", metrics.TASK_STATES)
    ).inc()


def on_task_publish(sender: str | None = None, **_: Any) -> None:
    metrics.tasks_published.labels(metrics.one_of(sender or "", metrics.TASKS)).inc()


def on_setup_logger(**_: Any) -> None:
    """Celery's own handlers get the same filters as the api's, and the JSON format if configured."""
    install_log_filter()
    logs.apply_format(get_settings())


# Connected by call (Celery's decorator is untyped), held strongly: they live as long as the process.
worker_init.connect(on_worker_init, weak=False)
beat_init.connect(on_beat_init, weak=False)
worker_shutdown.connect(on_worker_shutdown, weak=False)
worker_process_shutdown.connect(on_worker_process_shutdown, weak=False)
task_postrun.connect(on_task_postrun, weak=False)
before_task_publish.connect(on_task_publish, weak=False)
after_setup_logger.connect(on_setup_logger, weak=False)
