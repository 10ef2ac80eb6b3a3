"""The api's processes: uvicorn workers, each with its own listening socket on the one port (SO_REUSEPORT).

uvicorn's ``--workers`` shares one listening socket between its workers, and whichever worker wakes first
accepts every connection waiting in the queue (uvloop accepts until the queue is empty). Connections that
open together all land in one worker: measured with wrk's 16 connections against two workers, every one of
them was served by the same process while the other idled (docs/intake-cost.md, session 12), and a reverse
proxy's pool of keep-alive connections opens the same way. That worker then queues every request, and
its tail is a queue.

Here the parent binds one socket per worker, each with SO_REUSEPORT on the same address and port, and the
kernel spreads new connections over them by a hash of each connection's addresses and ports: every worker
gets its share whatever the timing. The parent keeps the sockets: a worker that dies is started again on
its socket, and connections that arrived for it meanwhile wait in that socket's queue instead of being
refused. SIGTERM or SIGINT stops the workers (each finishes its requests, as uvicorn does on SIGTERM)
within ``STOP_GRACE_SECONDS``, then the parent.

One worker is served by uvicorn directly: there is nothing to spread.
"""

from __future__ import annotations

import argparse
import errno
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from types import FrameType

import uvicorn

log = logging.getLogger("rueckhalt.serving")

STOP_GRACE_SECONDS = 25.0
# A worker that exits is started again after this pause (doubling up to the maximum while it keeps
# failing at once): a worker that cannot start must not spin the machine.
RESTART_PAUSE_SECONDS = 0.5
RESTART_PAUSE_MAX_SECONDS = 30.0
# A worker that ran this long before it exited is not failing at start-up: its next pause is the first.
STABLE_SECONDS = 60.0
BACKLOG = 2048


@dataclass(frozen=True)
class Served:
    """What every worker serves, and how: the settings of ``rueckhalt serve`` for uvicorn."""

    app: str = "service.app:app_factory"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    def config(self) -> uvicorn.Config:
        # No access log of uvicorn's (paths and client addresses; the service logs a content-free line
        # itself), no Server header, and no proxy headers: the service reads X-Forwarded-For from its
        # trusted proxies only (service/auth/client_address.py), uvicorn would trust the left-most hop.
        return uvicorn.Config(
            self.app,
            factory=True,
            host=self.host,
            port=self.port,
            loop="auto",  # uvloop, a dependency (without it every request stalls ~44 ms with workers)
            access_log=False,
            proxy_headers=False,
            server_header=False,
            log_level=self.log_level,
        )


def bind(served: Served, count: int) -> list[socket.socket]:
    """``count`` listening sockets on the one address and port, each with SO_REUSEPORT.

    First a probe without SO_REUSEPORT: bound, it proves no other process listens there (one that set
    SO_REUSEPORT itself, such as an earlier Rückhalt still running, would otherwise share the port
    silently, and take part of the connections). OSError (EADDRINUSE, EACCES) if the port is taken."""
    family = socket.AF_INET6 if ":" in served.host else socket.AF_INET
    address = (served.host.strip("[]"), served.port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind(address)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            listener = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            listener.bind(address)
            listener.listen(BACKLOG)
            listener.set_inheritable(True)
    except OSError:
        for listener in sockets:
            listener.close()
        raise
    return sockets


# uvicorn's exit status for an application that did not start (uvicorn.run exits with it as well).
STARTUP_FAILURE = 3


def _worker(served: Served, listener: socket.socket) -> None:
    """One api worker process: uvicorn on its own socket."""
    server = uvicorn.Server(served.config())
    server.run(sockets=[listener])
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


@dataclass
class _Slot:
    """One socket and the worker serving it."""

    listener: socket.socket
    process: SpawnProcess | None = None
    started: float = 0.0
    pause: float = RESTART_PAUSE_SECONDS
    restart_at: float | None = None


@dataclass
class Workers:
    """The parent: starts a worker per socket, starts one again when it exits, stops them all on a signal."""

    served: Served
    sockets: list[socket.socket]
    slots: list[_Slot] = field(init=False)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.slots = [_Slot(listener) for listener in self.sockets]

    def _start(self, slot: _Slot) -> None:
        process = multiprocessing.get_context("spawn").Process(
            target=_worker, args=(self.served, slot.listener), name="rueckhalt-api", daemon=False
        )
        process.start()
        slot.process, slot.started, slot.restart_at = process, time.monotonic(), None

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit status is 0 after a stop asked for."""
        previous = {
            number: signal.signal(number, self._on_signal) for number in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for slot in self.slots:
                self._start(slot)
            log.info("serving on %s:%d with %d workers", self.served.host, self.served.port, len(self.slots))
            while not self.stopping.wait(0.2):
                self._tend()
            return 0
        finally:
            self._stop()
            for number, handler in previous.items():
                signal.signal(number, handler)
            for listener in self.sockets:
                listener.close()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _tend(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is not None and not process.is_alive():
                process.join()
                ran = now - slot.started
                slot.pause = RESTART_PAUSE_SECONDS if ran >= STABLE_SECONDS else slot.pause
                log.error(
                    "api worker exited with status %s after %.0f s; starting another in %.1f s",
                    process.exitcode,
                    ran,
                    slot.pause,
                )
                slot.process, slot.restart_at = None, now + slot.pause
                slot.pause = min(slot.pause * 2, RESTART_PAUSE_MAX_SECONDS)
            if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._start(slot)

    def _stop(self) -> None:
        running = [slot.process for slot in self.slots if slot.process is not None]
        for process in running:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def serve(served: Served, workers: int) -> int:
    """Serve ``served.app`` with ``workers`` processes; returns the exit status."""
    if workers < 1:
        raise ValueError("at least one worker")
    if workers == 1:
        server = uvicorn.Server(served.config())
        server.run()
        return 0 if server.started else STARTUP_FAILURE
    try:
        sockets = bind(served, workers)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            log.error("port %d on %s is in use", served.port, served.host)
        raise
    return Workers(served, sockets).run()


def main(argv: list[str] | None = None) -> int:
    """``python -m service.serving APP``: the benchmarks serve their own apps the way the api is served."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", help="module:factory, e.g. service.app:app_factory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    return serve(Served(args.app, args.host, args.port, args.log_level), args.workers)


if __name__ == "__main__":
    raise SystemExit(main())
