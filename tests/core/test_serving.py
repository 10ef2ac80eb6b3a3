"""The api's workers (service/serving.py): each on its own socket of the port, so that connections opened
together reach every worker; a worker that dies is replaced; a stop stops them all; a port in use, even by
a process that shares ports itself, is refused before anything starts."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT
from tests.support.stack import free_port

APP = "tests.support.pid_app:create_app"
CONNECTIONS = 32


def _serve(port: int, workers: int = 2) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.serving", APP, "--port", str(port), "--workers", str(workers)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _ask(connection: socket.socket) -> int:
    """One request on an open connection (kept alive); the answering worker's pid."""
    connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.split(b"\r\n\r\n", 1)[1]:
        chunk = connection.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        answer += chunk
    return int(answer.split(b"\r\n\r\n", 1)[1])


def _together(port: int, count: int = CONNECTIONS) -> list[int]:
    """Open ``count`` connections at once (as wrk or a proxy's pool does), then ask on each."""
    connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    try:
        return [_ask(connection) for connection in connections]
    finally:
        for connection in connections:
            connection.close()


def _wait_until_served(port: int, workers: int, timeout: float = 60) -> set[int]:
    """The workers' pids, once every one of them has answered."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        try:
            seen |= set(_together(port, 8))
        except OSError:
            time.sleep(0.2)
            continue
        if len(seen) >= workers:
            return seen
    raise AssertionError(f"{len(seen)} of {workers} workers answered")


def _children(pid: int) -> set[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: set[int] = set()
    for task in tasks.iterdir():
        children = (task / "children").read_text().split()
        found |= {int(child) for child in children}
    return found


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = _serve(port)
    seen: set[int] = set()
    try:
        yield process, port
    finally:
        if process.poll() is None:
            seen |= _children(process.pid)
            process.kill()
            process.wait(10)
        for child in seen:  # a worker outliving a killed parent: not left running after the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_connections_opened_together_reach_every_worker(served: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = served
    workers = _wait_until_served(port, 2)
    assert workers <= _children(process.pid)
    shares = collections.Counter(_together(port))
    assert set(shares) == workers
    # The kernel hashes each connection to a socket: 32 of them split about evenly, and fewer than 4 on one
    # side has a chance of one in 400,000. uvicorn's --workers gave all 16 of wrk's to one worker.
    assert min(shares.values()) >= 4, shares


def test_a_worker_that_dies_is_replaced_and_its_connections_wait_for_it(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = served
    workers = _wait_until_served(port, 2)
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    # Every connection is answered meanwhile: those hashed to the dead worker's socket wait for the next one.
    answered = _together(port)
    assert killed not in answered
    replacement = _wait_until_served(port, 2) - workers
    assert len(replacement) == 1
    assert replacement <= _children(process.pid)
    assert process.poll() is None


def test_a_stop_stops_every_worker_and_then_the_parent(served: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = served
    workers = _wait_until_served(port, 2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in (Path(f"/proc/{pid}/stat").read_text().split()[2])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "sharing"])
def test_a_port_in_use_is_refused_before_any_worker_starts(reuse_port: bool) -> None:
    """Also by a process that set SO_REUSEPORT itself (an earlier Rückhalt still running): without the
    probe, the new workers would join it on the port and silently take part of its connections."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse_port:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(8)
    port = holder.getsockname()[1]
    process = _serve(port)
    try:
        output, _ = process.communicate(timeout=30)
        assert process.returncode != 0
        assert b"port %d on 127.0.0.1 is in use" % port in output
        assert b"serving on" not in output  # refused before a worker started
    finally:
        if process.poll() is None:  # it did not refuse: not left serving after the test
            process.kill()
            process.wait(10)
        holder.close()


def test_rueckhalt_serve_names_the_port_in_use_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from service.cli import app
    from service.config import get_settings

    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(8)
        port = holder.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port), "--workers", "2"])
    get_settings.cache_clear()
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in result.output
