"""The api's processes: uvicorn workers, each with its own listening socket on the one port (SO_REUSEPORT).

uvicorn's ``--workers`` shares one listening socket between its workers, and whichever worker wakes first
accepts every connection waiting in the queue (uvloop accepts until the queue is empty). Connections that
open together all land in one worker: measured with wrk's 16 connections against two workers, every one of
them was served by the same process while the other idled (docs/intake-cost.md, session 12), and a reverse
proxy's pool of keep-alive connections opens the same way. That worker then queues every request, and
its tail is a queue.

Here the parent binds one socket per worker, each with SO_REUSEPORT on the same address and port, and the
kernel spreads new connections over them by a hash of each connection's addresses and ports: every worker
gets its share whatever the timing. Only processes of the same user can join such a port (Linux); the
parent first proves that no other process listens there.

The parent keeps the sockets and tends the workers:
- a worker that exits is started again on its socket (after a pause that doubles while it keeps failing),
  and connections that arrived for it meanwhile wait in that socket's queue instead of being refused;
- a worker whose event loop stops beating (``HUNG_SECONDS`` without uvicorn's tick) is killed and replaced:
  it would otherwise keep its share of the new connections and answer none;
- a worker whose app did not start (any failure before uvicorn's start, or no start within
  ``STARTUP_SECONDS``: configuration, database) stops them all with status 3, as uvicorn's own supervisor
  does: a restart does not cure it, and the container's restart policy and health check must see it;
- SIGTERM, SIGINT or SIGHUP stops the workers (each finishes its requests, as uvicorn does on SIGTERM, for
  up to ``GRACEFUL_SHUTDOWN_SECONDS``) within ``STOP_GRACE_SECONDS``, then the parent; a worker whose parent
  dies, even by SIGKILL, gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and stops too.

One worker takes the same way without SO_REUSEPORT, in the process itself: the port is checked before the
app starts, and nobody can join it; there uvicorn handles SIGTERM and SIGINT itself, and SIGHUP stops it
as SIGTERM does (``_SoleServer``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from types import FrameType

import uvicorn

from service.cpu_quota import available_cpus
from service.observability import listener as metrics_listener

log = logging.getLogger("rueckhalt.serving")

# Within `rueckhalt up`'s 20 s (service/supervisor.py) and compose's stop_grace_period (30 s), which
# SIGKILL what is still running after theirs.
STOP_GRACE_SECONDS = 15.0
GRACEFUL_SHUTDOWN_SECONDS = 10
# A worker that exits is started again after this pause (doubling up to the maximum while it keeps
# failing at once): a worker that cannot start must not spin the machine.
RESTART_PAUSE_SECONDS = 0.5
RESTART_PAUSE_MAX_SECONDS = 30.0
# A worker that ran this long before it exited is not failing at start-up: its next pause is the first.
STABLE_SECONDS = 60.0
# A worker's event loop beats every 0.1 s (``_BeatingServer``); one silent for HUNG_SECONDS after its first
# beat is hung (its loop blocked), not busy.
HUNG_SECONDS = 60.0
# A worker whose app has not started after this long (a database that does not answer) is a failed start.
STARTUP_SECONDS = 120.0
BACKLOG = 2048
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Workers start from a fresh interpreter: nothing of the parent (its threads, its loop) comes along.
_SPAWN = multiprocessing.get_context("spawn")
# uvicorn's exit status for an application that did not start (uvicorn.run exits with it as well).
STARTUP_FAILURE = 3


class CannotListen(Exception):
    """The address cannot be listened on: in use (also by a process that shares ports), not ours, unknown."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port} ({reason})")


@dataclass(frozen=True)
class Served:
    """What every worker serves, and how: the settings of ``rueckhalt serve`` for uvicorn."""

    app: str = "service.app:app_factory"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    @property
    def bind_host(self) -> str:
        """The host as the socket takes it (``[::1]`` is ``::1``)."""
        return self.host.strip("[]")

    def config(self) -> uvicorn.Config:
        # No access log of uvicorn's (paths and client addresses; the service logs a content-free line
        # itself), no Server header, and no proxy headers: the service reads X-Forwarded-For from its
        # trusted proxies only (service/auth/client_address.py), uvicorn would trust the left-most hop.
        return uvicorn.Config(
            self.app,
            factory=True,
            host=self.bind_host,
            port=self.port,
            loop="uvloop",  # without it every request stalls ~44 ms with several workers
            access_log=False,
            proxy_headers=False,
            server_header=False,
            log_level=self.log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )


def bind(served: Served, count: int) -> list[socket.socket]:
    """``count`` listening sockets on the one address and port (with SO_REUSEPORT when more than one).

    First a probe without SO_REUSEPORT: bound, it proves that no other process listens there (one that set
    SO_REUSEPORT itself, such as an earlier Rückhalt still running, would otherwise share the port
    silently and take part of the connections). With SO_REUSEADDR, as the listeners: connections of an
    earlier run still in TIME_WAIT do not hold the port. CannotListen if the port is taken or not ours."""
    # IPv4 unless the host is an IPv6 address, as uvicorn: "localhost" may resolve to ::1 first, and a
    # container without IPv6 could not listen there.
    family = socket.AF_INET6 if ":" in served.bind_host else socket.AF_INET
    try:
        _, _, _, _, address = socket.getaddrinfo(
            served.bind_host, served.port, family, socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise CannotListen(served.bind_host, served.port, str(error.strerror)) from error
    sockets: list[socket.socket] = []
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
        for _ in range(count):
            listener = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            listener.bind(address)
            listener.listen(BACKLOG)
    except OSError as error:
        for listener in sockets:
            listener.close()
        raise CannotListen(served.bind_host, served.port, error.strerror or str(error)) from error
    return sockets


def _die_with_parent(parent: int) -> None:
    """SIGTERM from the kernel when the parent dies, however it dies (Linux's PR_SET_PDEATHSIG): a worker
    left behind would keep serving on the port, unsupervised, and hold it against the next start."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.prctl.restype = ctypes.c_int
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the request took effect
        raise SystemExit(0)


class _BeatingServer(uvicorn.Server):
    """uvicorn's server, writing the time of each tick of its main loop (every 0.1 s) where the parent
    reads it: a loop that stops ticking is hung. Monotonic time: a step of the wall clock is no silence."""

    def __init__(self, config: uvicorn.Config, beat: ctypes.c_double) -> None:
        super().__init__(config)
        self._beat = beat

    async def on_tick(self, counter: int) -> bool:
        self._beat.value = time.monotonic()
        return await super().on_tick(counter)


class _SoleServer(uvicorn.Server):
    """uvicorn's server for a service of one worker, which is its own parent: SIGHUP stops it as SIGTERM
    does (its requests are finished first), as it stops several workers. uvicorn itself handles SIGINT and
    SIGTERM only; left alone, SIGHUP (a closed terminal, a supervisor's stop) would end the process in the
    middle of a report."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            with super().capture_signals():
                yield
            return
        previous = signal.signal(signal.SIGHUP, lambda _sig, frame: self.handle_exit(signal.SIGTERM, frame))
        try:
            with super().capture_signals():
                yield
        finally:
            signal.signal(signal.SIGHUP, previous)


def _run(server: uvicorn.Server, sockets: list[socket.socket]) -> int:
    """Run ``server`` on ``sockets``; the exit status: 0, or STARTUP_FAILURE if the app did not start.

    uvicorn turns only some failures of loading the app into its status 3; the service's factory reads the
    database, and an error there (no database, a refused password) would exit 1 and be restarted forever
    while the socket takes its share of the connections. Every failure before the start is one."""
    try:
        with contextlib.suppress(KeyboardInterrupt):  # a terminal's Ctrl+C: uvicorn has stopped already
            server.run(sockets=sockets)
    except Exception:
        if server.started:
            raise
        log.exception("the app did not start")
    except SystemExit as exit_:
        if server.started or exit_.code in (0, None):
            raise
        log.error("the app did not start (status %s)", exit_.code)
    return 0 if server.started else STARTUP_FAILURE


def _worker(served: Served, listener: socket.socket, parent: int, beat: ctypes.c_double) -> None:
    """One api worker process: uvicorn on its own socket, beating on its event loop."""
    _die_with_parent(parent)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    raise SystemExit(_run(_BeatingServer(served.config(), beat), [listener]))


@dataclass
class _Slot:
    """One socket and the worker serving it."""

    listener: socket.socket
    beat: ctypes.c_double  # the time of the worker's last beat (time.monotonic(), shared), 0 before the first
    process: SpawnProcess | None = None
    started: float = 0.0
    pause: float = RESTART_PAUSE_SECONDS
    restart_at: float | None = None

    def restart_later(self, now: float) -> None:
        """Start this slot's worker after its pause, and double the pause for the next failure."""
        self.process, self.restart_at = None, now + self.pause
        self.pause = min(self.pause * 2, RESTART_PAUSE_MAX_SECONDS)


@dataclass
class Workers:
    """The parent: starts a worker per socket and tends them (see the module's docstring)."""

    served: Served
    sockets: list[socket.socket]
    hung_seconds: float = HUNG_SECONDS
    slots: list[_Slot] = field(init=False)
    # Set by the signal handler: a plain assignment (a lock taken there could be held by the interrupted
    # main thread itself).
    stop_signal: int | None = None

    def __post_init__(self) -> None:
        self.slots = [_Slot(listener, _SPAWN.Value("d", 0.0, lock=False)) for listener in self.sockets]

    def _start(self, slot: _Slot) -> None:
        slot.beat.value = 0.0
        process = _SPAWN.Process(
            target=_worker,
            args=(self.served, slot.listener, os.getpid(), slot.beat),
            name="rueckhalt-api",
        )
        try:
            process.start()
        except OSError as error:  # no memory or processes left: try again later, the others serve
            log.error("api worker could not be started (%s); trying again in %.1f s", error, slot.pause)
            slot.restart_later(time.monotonic())
            return
        slot.process, slot.started, slot.restart_at = process, time.monotonic(), None

    def run(self) -> int:
        """Serve until SIGTERM, SIGINT or SIGHUP (0), or until a worker's app does not start (3)."""
        previous = [(number, signal.getsignal(number)) for number in STOP_SIGNALS]
        try:
            for number, _ in previous:
                signal.signal(number, self._on_signal)
            for slot in self.slots:
                self._start(slot)
            log.info("serving on %s:%d with %d workers", self.served.host, self.served.port, len(self.slots))
            while self.stop_signal is None:
                status = self._tend()
                if status is not None:
                    return status
                time.sleep(0.2)
            return 0
        finally:
            self._stop()
            for number, handler in previous:
                signal.signal(number, handler)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        self.stop_signal = number

    def _tend(self) -> int | None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is not None and process.is_alive():
                if slot.beat.value and now - slot.beat.value > self.hung_seconds:
                    log.error("api worker silent for %.0f s: killed and replaced", now - slot.beat.value)
                    self._kill(process)
                elif not slot.beat.value and now - slot.started > STARTUP_SECONDS:
                    log.error("api worker's app has not started after %.0f s: stopping", STARTUP_SECONDS)
                    self._kill(process)
                    return STARTUP_FAILURE
            if process is not None and not process.is_alive():
                process.join()
                if process.pid is not None:
                    metrics_listener.process_ended(process.pid)
                if process.exitcode == STARTUP_FAILURE and not slot.beat.value:
                    log.error("api worker's app did not start: stopping")
                    return STARTUP_FAILURE
                ran = now - slot.started
                slot.pause = RESTART_PAUSE_SECONDS if ran >= STABLE_SECONDS else slot.pause
                log.error(
                    "api worker exited with status %s after %.0f s; starting another in %.1f s",
                    process.exitcode,
                    ran,
                    slot.pause,
                )
                slot.restart_later(now)
            if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._start(slot)
        return None

    @staticmethod
    def _kill(process: SpawnProcess) -> None:
        process.kill()
        # Bounded: a process stuck in the kernel (uninterruptible) must not hold the parent too.
        process.join(5)

    def _stop(self) -> None:
        running = [slot.process for slot in self.slots if slot.process is not None]
        for process in running:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        # The workers keep their own copies: closed here, the port refuses new connections at once instead
        # of queueing them for workers that are stopping.
        for listening in self.sockets:
            listening.close()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                self._kill(process)


# ``--workers auto``: one per CPU this process may use (``available_cpus``).
AUTO = "auto"


def worker_count(text: str) -> int:
    """``--workers``: a whole number from 1, or ``auto`` (``available_cpus``); ValueError otherwise."""
    if text.strip().lower() == AUTO:
        return available_cpus()
    if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < 1:
        raise ValueError(f"--workers must be a whole number from 1, or {AUTO}; got {text!r}")
    return int(text)


def serve(served: Served, workers: int, *, hung_seconds: float = HUNG_SECONDS) -> int:
    """Serve ``served.app`` with ``workers`` processes; returns the exit status. CannotListen before
    anything starts if the address cannot be listened on."""
    if workers < 1:
        raise ValueError("at least one worker")
    sockets = bind(served, workers)
    if workers > 1:
        return Workers(served, sockets, hung_seconds).run()
    try:
        return _run(_SoleServer(served.config()), sockets)
    finally:
        sockets[0].close()


def command(app: str, port: int, workers: int, *extra: str, log_level: str = "warning") -> list[str]:
    """The command line that serves ``app`` as ``rueckhalt serve`` serves the api (``main`` below), on
    loopback: for the benchmarks' and the tests' server processes."""
    return [
        sys.executable,
        "-m",
        "service.serving",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        log_level,
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m service.serving APP``: the benchmarks and tests serve their apps the way the api is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", help="module:factory, e.g. service.app:app_factory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=worker_count, default=1, help="a number, or auto")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--hung-seconds", type=float, default=HUNG_SECONDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    try:
        served = Served(args.app, args.host, args.port, args.log_level)
        return serve(served, args.workers, hung_seconds=args.hung_seconds)
    except CannotListen as error:
        log.error("%s", error)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
