"""The metrics listener: a socket of its own, apart from the application Prometheus watches.

Why not a path of the application: every path of the application is what the TLS proxy forwards, and a
rule that keeps one path private is one proxy configuration away from publishing case counts and queue
lengths. A separate listener (loopback by default, the containers' network in compose, never published) is
private however the proxy is set up.

Several processes of one role (uvicorn's ``--workers``, Celery's prefork pool) share one port through
prometheus_client's multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the processes start,
emptied at each start) each process writes its counters there and whichever process holds the port serves
them all. Without it, each process would report only its own counts.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator
from enum import IntEnum
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.engine import Engine

from service.config import Settings
from service.observability.metrics import db_pool_capacity, db_pool_checked_out

log = logging.getLogger("rueckhalt.metrics")


class Role(IntEnum):
    """Which process serves, as its offset from ``metrics_port`` (so ``rueckhalt up`` fits on one host)."""

    api = 0
    worker = 1
    beat = 2


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _ProcessMetrics(Collector):
    """This process's own metrics (the default registry), when each process serves itself."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def registry_for(extra: Collector | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ProcessMetrics())
    if extra is not None:
        registry.register(extra)
    return registry


class MetricsListener:
    def __init__(self, server: WSGIServer, thread: threading.Thread, port: int) -> None:
        self._server = server
        self._thread = thread
        self.port = port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start(settings: Settings, role: Role, extra: Collector | None = None) -> MetricsListener | None:
    """Serve this process's metrics if ``metrics_port`` is set; None if off, or if another process of the
    same role holds the port already (multiprocess mode: it serves this process's counts too)."""
    if settings.metrics_port is None:
        return None
    port = settings.metrics_port + role.value
    try:
        server, thread = start_http_server(port, addr=settings.metrics_host, registry=registry_for(extra))
    except OSError as exc:
        if multiprocess_dir():
            log.info("metrics: port %d is served by another %s process", port, role.name)
        else:
            log.warning(
                "metrics: port %d is taken (%s); with several %s processes set PROMETHEUS_MULTIPROC_DIR",
                port,
                type(exc).__name__,
                role.name,
            )
        return None
    log.info("metrics: %s serves on %s:%d", role.name, settings.metrics_host, port)
    return MetricsListener(server, thread, port)


def process_ended(pid: int | None = None) -> None:
    """A process leaves: its live gauges (connections in use) stop counting in multiprocess mode. ``pid``:
    another process that ended without saying so (an api worker killed: service/serving.py)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]


_instrumented: weakref.WeakSet[Engine] = weakref.WeakSet()


def instrument_pool(engine: Engine, name: str) -> None:
    """Connections in use and the pool's capacity, kept current by the pool's own events."""
    if engine in _instrumented:
        return
    _instrumented.add(engine)
    pool = engine.pool
    size = getattr(pool, "size", None)
    if callable(size):
        db_pool_capacity.labels(name).set(size() + max(0, getattr(pool, "_max_overflow", 0)))
    checked_out = getattr(pool, "checkedout", None)
    if not callable(checked_out):
        return
    in_use = db_pool_checked_out.labels(name)

    def on_checkout(*_: object) -> None:
        in_use.set(checked_out())

    def on_checkin(*_: object) -> None:
        # Sent before the connection is back in the pool: it still counts as checked out.
        in_use.set(max(0, checked_out() - 1))

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
