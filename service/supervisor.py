"""``rueckhalt up``: the api, a Celery worker and the beat schedule, started together and stopped together.

The embedded default must behave like production on one machine: real workers, real timers. One command
starts the three processes with the same settings (the environment is inherited); if any of them ends, the
others are stopped too, so a half-running service never pretends to be whole. Ctrl-C or SIGTERM stops all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

STOP_GRACE_SECONDS = 20.0


def commands(host: str, port: int, api_workers: int) -> dict[str, list[str]]:
    celery = [sys.executable, "-m", "celery", "-A", "workers.celery_app"]
    return {
        "worker": [
            *celery,
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            "rueckhalt",
            # Two threads in one process: a long task (the monthly statistics snapshot runs an LP attacker for
            # a minute or more) must not hold up notifications and the heartbeat behind it.
            "--pool",
            "threads",
            "--concurrency",
            "2",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"rueckhalt-{os.getpid()}@%h",
        ],
        "beat": [*celery, "beat", "--loglevel", "INFO"],
        "api": [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(api_workers),
        ],
    }


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(host: str, port: int, api_workers: int = 1) -> int:
    """Start everything, wait until something ends or a stop signal comes; returns the exit code."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    env = dict(os.environ)
    # Links in notification mails lead to this very server unless the operator says otherwise.
    env.setdefault("RUECKHALT_PUBLIC_URL", f"http://{host}:{port}")
    try:
        for name, argv in commands(host, port, api_workers).items():
            started[name] = subprocess.Popen(argv, env=env)  # noqa: S603 - our own interpreter and modules
        while not stopping:
            ended = {name: p.returncode for name, p in started.items() if p.poll() is not None}
            if ended:
                name, code = next(iter(ended.items()))
                print(f"rueckhalt up: {name} ended (exit {code}); stopping the others", file=sys.stderr)
                _stop(list(started.values()))
                return code or 1
            time.sleep(0.5)
        _stop(list(started.values()))
        return 0
    finally:
        _stop(list(started.values()))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
