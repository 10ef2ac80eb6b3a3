"""The api's workers (service/serving.py): each on its own socket of the port, so that connections opened
together reach every worker; a worker that dies or hangs is replaced; a stop stops them all, and so does
the death of the parent; an app that does not start stops the service; a port in use, even by a process
that shares ports, is refused before anything starts, and a port that only has connections of an earlier
run in TIME_WAIT is not."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service import cpu_quota, serving
from service.config import PROJECT_ROOT
from tests.support.stack import free_port

APP = "tests.support.pid_app:create_app"
CONNECTIONS = 32


def _serve(port: int, workers: int = 2, *extra: str, app: str = APP) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.serving",
            app,
            "--port",
            str(port),
            "--workers",
            str(workers),
            *extra,
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # A session of its own: the cleanup reaches every process of it, and nothing else.
        start_new_session=True,
    )


def _end(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


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


def _together(port: int, count: int = CONNECTIONS, timeout: float = 10) -> list[int]:
    """Open ``count`` connections at once (as wrk or a proxy's pool does), then ask on each."""
    connections = [socket.create_connection(("127.0.0.1", port), timeout=timeout) for _ in range(count)]
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
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended meanwhile
        return b""


def _gone(pid: int, timeout: float = 30) -> bool:
    """Whether the process has ended (a zombie counts: it serves nothing) within the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.1)
    return False


Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start() -> Iterator[Start]:
    """``_serve``, with every process it started ended after the test, whatever the test did."""
    started: list[subprocess.Popen[bytes]] = []

    def start_(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(_serve(*args, **kwargs))
        return started[-1]

    yield start_
    for process in started:
        _end(process)


@pytest.fixture
def served(start: Start) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    return start(port), port


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
    answered = _together(port, timeout=60)
    assert killed not in answered
    replacement = _wait_until_served(port, 2) - workers
    assert len(replacement) == 1
    assert replacement <= _children(process.pid)
    assert process.poll() is None


def test_a_hung_worker_is_killed_and_replaced(start: Start) -> None:
    port = free_port()
    start(port, 2, "--hung-seconds", "10")
    workers = _wait_until_served(port, 2)
    hung = min(workers)
    os.kill(hung, signal.SIGSTOP)  # alive, its loop beats no more: it would keep its share of connections
    assert _gone(hung)
    replacement = _wait_until_served(port, 2) - workers
    assert len(replacement) == 1


def test_a_stop_stops_every_worker_and_then_the_parent(served: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = served
    workers = _wait_until_served(port, 2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert all(_gone(pid, 1) for pid in workers)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_one_worker_finishes_its_request_when_stopped(start: Start, stop: signal.Signals) -> None:
    """One worker is its own parent: a stop by SIGHUP (a closed terminal, a supervisor) finishes what is in
    flight as SIGTERM does, instead of ending the process in the middle of a report."""
    port = free_port()
    process = start(port, 1)
    (pid,) = _wait_until_served(port, 1)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.3)  # the request is in the app, sleeping
        process.send_signal(stop)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.split(b"\r\n\r\n", 1)[1]:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.split(b"\r\n\r\n", 1)[1] == str(pid).encode()
    assert _gone(process.pid, 30)


def test_workers_stop_when_the_parent_is_killed_and_the_port_can_be_served_again(start: Start) -> None:
    """SIGKILL gives the parent no chance to stop its workers: the kernel tells them (PR_SET_PDEATHSIG).
    Left running they would serve unsupervised, and hold the port against the next start."""
    port = free_port()
    process = start(port)
    workers = _wait_until_served(port, 2)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert all(_gone(pid) for pid in workers)
    start(port)
    assert len(_wait_until_served(port, 2)) == 2


def test_a_new_start_right_after_a_stop_is_not_refused_for_the_old_connections(start: Start) -> None:
    """The server closes its idle keep-alive connections when it stops, and they stay in TIME_WAIT on
    its side for a minute: a restart within it (systemd, an operator) must not read that as "in use"."""
    port = free_port()
    first = start(port)
    _wait_until_served(port, 2)
    kept = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    for connection in kept:
        _ask(connection)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    for connection in kept:
        connection.close()
    start(port)
    assert len(_wait_until_served(port, 2)) == 2


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("app", "why"),
    [("failing_app", b"no database"), ("unreachable_database_app", b"refused the connection")],
    ids=["lifespan", "factory"],
)
def test_an_app_that_does_not_start_stops_the_service_with_status_3(
    start: Start, workers: int, app: str, why: bytes
) -> None:
    """A worker that cannot start its app (no database, a bad setting) is not restarted in a loop while
    its socket takes a share of the connections: the service stops, and its supervisor sees why."""
    process = start(free_port(), workers, app=f"tests.support.pid_app:{app}")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 3, output.decode(errors="replace")
    assert why in output


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "sharing"])
def test_a_port_in_use_is_refused_before_any_worker_starts(
    start: Start, reuse_port: bool, workers: int
) -> None:
    """Also by a process that set SO_REUSEPORT itself (an earlier Rückhalt still running): without the
    probe, the new workers would join it on the port and silently take part of its connections."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse_port:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(8)
    port = holder.getsockname()[1]
    with holder:
        process = start(port, workers)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert b"cannot listen on 127.0.0.1:%d (Address already in use)" % port in output
    assert b"serving on" not in output  # refused before a worker started


def test_rueckhalt_serve_names_the_port_in_use_and_exits_2(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(8)
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "2"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "RUECKHALT_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(PROJECT_ROOT)},
            capture_output=True,
            timeout=60,
            start_new_session=True,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in result.stderr.decode()


def test_the_service_itself_runs_under_two_workers_and_stops_cleanly(start: Start, tmp_path: Path) -> None:
    """The real app (embedded mode: SQLite, generated secrets) through its lifespan, with the start-up heap
    frozen (``app_factory``), in two workers: both serve, and SIGTERM ends them and the parent with 0."""
    env = {**os.environ, "RUECKHALT_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(PROJECT_ROOT)}
    migrated = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"], cwd=PROJECT_ROOT, env=env, capture_output=True
    )
    assert migrated.returncode == 0, migrated.stderr.decode(errors="replace")
    port = free_port()
    process = subprocess.Popen(
        serving.command("service.app:app_factory", port, 2),
        cwd=PROJECT_ROOT,
        env=env,
        # Not a pipe nobody reads: the workers' log lines could fill it and block them.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = {
                pid
                for pid in _children(process.pid)
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            }
            time.sleep(0.2)
        assert len(workers) == 2
        statuses: list[bytes] = []
        while not statuses and time.monotonic() < deadline:
            try:
                statuses = _health_together(port)
            except OSError:
                time.sleep(0.5)
        # /healthz answers (503 here: no Celery worker beats beside this api), on every connection.
        assert len(statuses) == CONNECTIONS
        assert set(statuses) <= {b"200", b"503"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert all(_gone(pid, 1) for pid in workers)
    finally:
        _end(process)


def _health_together(port: int) -> list[bytes]:
    connections = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(CONNECTIONS)]
    statuses = []
    try:
        for connection in connections:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            statuses.append(answer.split(b" ", 2)[1])
    finally:
        for connection in connections:
            connection.close()
    return statuses


# -- the parent's logic in this process (its workers are still processes of their own) ---------------------


def test_bind_gives_one_listening_socket_per_worker_sharing_the_port() -> None:
    port = free_port()
    sockets = serving.bind(serving.Served(APP, "127.0.0.1", port), 3)
    try:
        assert [s.getsockname() for s in sockets] == [("127.0.0.1", port)] * 3
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in sockets)
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in sockets)
        with pytest.raises(serving.CannotListen, match=re.escape(f"cannot listen on 127.0.0.1:{port}")):
            serving.bind(serving.Served(APP, "127.0.0.1", port), 1)
    finally:
        for listening in sockets:
            listening.close()
    alone = serving.bind(serving.Served(APP, "[127.0.0.1]", port), 1)[0]
    with alone:  # one worker: nobody may join the port
        assert not alone.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


def test_an_unknown_host_cannot_be_listened_on() -> None:
    with pytest.raises(serving.CannotListen, match=re.escape("cannot listen on no-such-host.invalid:")):
        serving.bind(serving.Served(APP, "no-such-host.invalid", free_port()), 2)
    assert serving.main([APP, "--host", "no-such-host.invalid", "--port", str(free_port())]) == 2


class _Server:
    """Stands in for uvicorn's server in ``_run``: what its run() does, and whether the app started."""

    def __init__(self, outcome: BaseException | None, started: bool) -> None:
        self.outcome, self.started = outcome, started

    def run(self, sockets: list[socket.socket]) -> None:
        if self.outcome is not None:
            raise self.outcome


@pytest.mark.parametrize(
    ("outcome", "started", "status"),
    [
        (None, True, 0),  # served, then stopped
        (KeyboardInterrupt(), True, 0),  # Ctrl+C in a terminal
        (None, False, 3),  # the lifespan's start failed
        (ConnectionRefusedError("database"), False, 3),  # the factory failed (uvicorn would exit 1)
        (SystemExit(1), False, 3),  # uvicorn gave up loading the app
    ],
)
def test_any_failure_before_the_start_is_status_3(
    outcome: BaseException | None, started: bool, status: int
) -> None:
    assert serving._run(_Server(outcome, started), []) == status  # type: ignore[arg-type]


def test_a_failure_after_the_start_is_not_hidden() -> None:
    with pytest.raises(RuntimeError):
        serving._run(_Server(RuntimeError("late"), True), [])  # type: ignore[arg-type]


def _tend_in_the_background(workers: serving.Workers, port: int, act: Callable[[set[int]], None]) -> None:
    """Run ``act`` on the workers once both serve, then ask the parent to stop (as SIGTERM does)."""

    def job() -> None:
        try:
            act(_wait_until_served(port, 2))
        finally:
            workers.stop_signal = signal.SIGTERM

    threading.Thread(target=job, daemon=True).start()


def test_the_parent_replaces_a_dead_and_a_hung_worker_then_stops_with_0() -> None:
    port = free_port()
    served = serving.Served(APP, "127.0.0.1", port, "warning")
    workers = serving.Workers(served, serving.bind(served, 2), hung_seconds=10)
    replaced: list[set[int]] = []

    def act(first: set[int]) -> None:
        dead, hung = sorted(first)
        os.kill(dead, signal.SIGKILL)
        assert _gone(dead)
        os.kill(hung, signal.SIGSTOP)  # its loop beats no more
        assert _gone(hung, 60)
        replaced.append(_wait_until_served(port, 2))

    _tend_in_the_background(workers, port, act)
    assert workers.run() == 0
    assert len(replaced) == 1
    assert all(_gone(pid, 1) for pid in replaced[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_the_parent_stops_with_3_when_an_app_does_not_start() -> None:
    served = serving.Served("tests.support.pid_app:unreachable_database_app", "127.0.0.1", free_port())
    workers = serving.Workers(served, serving.bind(served, 2))
    assert workers.run() == 3


# -- --workers auto: the CPUs this process may use -------------------------------------------------------


# No cgroup v1 mount (a /proc/self/mountinfo that does not exist): the v2 tests do not read the host's.
NO_V1 = Path("/nonexistent/mountinfo")


def cgroup_tree(tmp_path: Path, quotas: dict[str, str], own: str = "/system.slice/rueckhalt.service") -> Path:
    """A cgroup v2 mount under ``tmp_path`` with ``cpu.max`` files (path below the root -> content), and
    the /proc/self/cgroup that names ``own``; returns that file."""
    root = tmp_path / "cgroup"
    (root / own.lstrip("/")).mkdir(parents=True)
    for path, content in quotas.items():
        (root / path.lstrip("/") / "cpu.max").write_text(content + "\n")
    cgroups = tmp_path / "cgroup-of-self"
    cgroups.write_text(f"12:cpu,cpuacct:/v1/ignored\n0::{own}\n")
    return cgroups


@pytest.mark.parametrize(
    ("quotas", "expected"),
    [
        ({}, "affinity"),  # no cpu.max anywhere: a host's root cgroup
        ({"/system.slice/rueckhalt.service": "max 100000"}, "affinity"),
        ({"/system.slice/rueckhalt.service": "100000 100000"}, 1),  # cpus: 1
        ({"/system.slice/rueckhalt.service": "150000 100000"}, 2),  # cpus: 1.5, rounded up
        ({"/system.slice/rueckhalt.service": "max 100000", "/system.slice": "50000 100000"}, 1),  # a parent's
        ({"/system.slice/rueckhalt.service": "800000 100000"}, "affinity"),  # more than the CPU set
        ({"/system.slice/rueckhalt.service": "garbage"}, "affinity"),
        ({"/system.slice/rueckhalt.service": "100000 0"}, "affinity"),
    ],
)
def test_auto_workers_follow_the_cgroup_quota_that_nproc_does_not_see(
    tmp_path: Path, quotas: dict[str, str], expected: int | str
) -> None:
    affinity = len(os.sched_getaffinity(0))
    cgroups = cgroup_tree(tmp_path, quotas)

    counted = cpu_quota.available_cpus(cgroups, tmp_path / "cgroup", NO_V1)

    assert counted == (affinity if expected == "affinity" else min(affinity, int(expected)))


def test_a_container_sees_its_own_cgroup_as_the_root_and_unreadable_files_count_the_affinity(
    tmp_path: Path,
) -> None:
    affinity = len(os.sched_getaffinity(0))
    inside = cgroup_tree(tmp_path, {"/": "100000 100000"}, own="/")
    assert cpu_quota.available_cpus(inside, tmp_path / "cgroup", NO_V1) == 1
    assert cpu_quota.available_cpus(tmp_path / "missing", tmp_path / "cgroup", NO_V1) == affinity
    # A path that climbs out of the mount is not followed.
    escaping = tmp_path / "escaping"
    escaping.write_text("0::/../../etc\n")
    assert cpu_quota.available_cpus(escaping, tmp_path / "cgroup", NO_V1) == affinity


def v1_tree(
    tmp_path: Path, quotas: dict[str, tuple[str, str]], own: str, mounted: str = "/"
) -> tuple[Path, Path]:
    """A cgroup v1 cpu controller mounted under ``tmp_path`` (``mounted``: what of the hierarchy is mounted
    there, ``/`` on a host, the container's own cgroup inside one) with ``cpu.cfs_quota_us`` and
    ``cpu.cfs_period_us`` files (path below the mount -> (quota, period)); returns the /proc/self/cgroup
    that names ``own`` and the /proc/self/mountinfo."""
    point = tmp_path / "cpu,cpuacct"
    point.mkdir(parents=True)
    for path, (quota, period) in quotas.items():
        folder = point / path.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.cfs_quota_us").write_text(quota + "\n")
        (folder / "cpu.cfs_period_us").write_text(period + "\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        f"31 25 0:27 {mounted} {tmp_path}/memory rw,nosuid - cgroup cgroup rw,memory\n"
        f"33 25 0:29 {mounted} {point} rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    )
    cgroups = tmp_path / "cgroup-of-self"
    cgroups.write_text(f"5:memory:{own}\n4:cpu,cpuacct:{own}\n1:name=systemd:{own}\n")
    return cgroups, mountinfo


@pytest.mark.parametrize(
    ("quotas", "expected"),
    [
        ({}, "affinity"),
        ({"/system.slice/rueckhalt.service": ("-1", "100000")}, "affinity"),  # no quota
        ({"/system.slice/rueckhalt.service": ("100000", "100000")}, 1),
        ({"/system.slice/rueckhalt.service": ("150000", "100000")}, 2),  # 1.5 CPUs, rounded up
        ({"/system.slice/rueckhalt.service": ("-1", "100000"), "/system.slice": ("50000", "100000")}, 1),
        ({"/system.slice/rueckhalt.service": ("garbage", "100000")}, "affinity"),
        ({"/system.slice/rueckhalt.service": ("100000", "0")}, "affinity"),
    ],
)
def test_auto_workers_follow_a_cgroup_v1_quota(
    tmp_path: Path, quotas: dict[str, tuple[str, str]], expected: int | str
) -> None:
    affinity = len(os.sched_getaffinity(0))
    cgroups, mountinfo = v1_tree(tmp_path, quotas, "/system.slice/rueckhalt.service")

    counted = cpu_quota.available_cpus(cgroups, tmp_path / "no-v2", mountinfo)

    assert counted == (affinity if expected == "affinity" else min(affinity, int(expected)))


def test_a_container_on_cgroup_v1_reads_the_quota_of_its_own_cgroup_at_the_mount(tmp_path: Path) -> None:
    # Docker on a cgroup v1 host: the container's cgroup is mounted at /sys/fs/cgroup/cpu,cpuacct itself,
    # and /proc/self/cgroup names it by its path in the host's hierarchy.
    affinity = len(os.sched_getaffinity(0))
    own = "/docker/3f1c0ffee"
    cgroups, mountinfo = v1_tree(tmp_path, {"/": ("100000", "100000")}, own, mounted=own)
    assert cpu_quota.available_cpus(cgroups, tmp_path / "no-v2", mountinfo) == 1
    # A cgroup outside what is mounted, or a path that climbs out, is not followed.
    elsewhere, _ = v1_tree(tmp_path / "other", {}, "/elsewhere", mounted="/")
    assert cpu_quota.available_cpus(elsewhere, tmp_path / "no-v2", mountinfo) == affinity
    escaping = tmp_path / "escaping"
    escaping.write_text(f"4:cpu,cpuacct:{own}/../../../etc\n")
    assert cpu_quota.available_cpus(escaping, tmp_path / "no-v2", mountinfo) == affinity


def test_a_hybrid_host_counts_the_smaller_of_its_v1_and_v2_quotas(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    cgroups, mountinfo = v1_tree(tmp_path, {"/app": ("300000", "100000")}, "/app")
    v2 = tmp_path / "unified"
    (v2 / "app").mkdir(parents=True)
    (v2 / "app" / "cpu.max").write_text("100000 100000\n")
    cgroups.write_text(cgroups.read_text() + "0::/app\n")
    assert cpu_quota.available_cpus(cgroups, v2, mountinfo) == 1
    (v2 / "app" / "cpu.max").write_text("max 100000\n")
    assert cpu_quota.available_cpus(cgroups, v2, mountinfo) == min(affinity, 3)
    (tmp_path / "cpu,cpuacct" / "app" / "cpu.cfs_quota_us").write_text("100000\n")
    assert cpu_quota.available_cpus(cgroups, v2, mountinfo) == 1  # now the v1 quota is the smaller


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("3", 3), ("auto", "auto"), (" AUTO ", "auto")])
def test_the_workers_option_takes_a_number_or_auto(text: str, expected: int | str) -> None:
    assert serving.worker_count(text) == (cpu_quota.available_cpus() if expected == "auto" else expected)


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_rueckhalt_serve_refuses_other_workers_with_a_message_and_status_2(tmp_path: Path, text: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(free_port()), "--workers", text],
        cwd=PROJECT_ROOT,
        env={**os.environ, "RUECKHALT_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers must be a whole number from 1, or auto" in result.stderr.decode()
