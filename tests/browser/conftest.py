"""A real server (uvicorn, as `make run` starts it) and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from service.supervisor import STOP_GRACE_SECONDS
from tests.support.stack import LiveServer, free_port

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@contextmanager
def serving(*, demo: bool) -> Iterator[LiveServer]:
    """The embedded default served by uvicorn on a free loopback port, with the demo data and staff or on a
    migrated, empty database (the operator's commands set that one up, as on a new installation)."""
    data_dir = Path(tempfile.mkdtemp(prefix="rh-live-"))
    port = free_port()
    env = {
        **os.environ,
        "RUECKHALT_DATA_DIR": str(data_dir),
        "PORT": str(port),
        # The default (20 an hour) is one person's; every browser test signs in with receipts from 127.0.0.1.
        "RUECKHALT_RECEIPT_LIMIT_PER_HOUR": "200",
    }
    if demo:
        env["RUECKHALT_DEMO"] = "true"
    cli = [sys.executable, "-m", "service.cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    if demo:
        subprocess.run([*cli, "demo"], env=env, cwd=ROOT, check=True, capture_output=True)
    # The whole embedded service as `make run` starts it: api, Celery worker and beat (healthz needs all).
    server = subprocess.Popen([*cli, "up", "--port", str(port)], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the live server did not become healthy")
        if demo:
            wait_for_the_demo_year(base)
        yield LiveServer(url=base, data_dir=data_dir)
    finally:
        server.terminate()
        # The worker finishes the task it runs (such as the start-up snapshot) for up to the supervisor's
        # grace period, and is then killed by it.
        server.wait(timeout=STOP_GRACE_SECONDS + 10)
        shutil.rmtree(data_dir, ignore_errors=True)


# The worker files the demo's synthetic year after the start, then publishes last year's release: about
# 10 s of CPU, minutes on a machine as busy as the suite makes it (the snapshot follows; the coordinator
# tests wait for it themselves).
DEMO_YEAR_SECONDS = 400


def wait_for_the_demo_year(base: str) -> None:
    """Until /statistik shows the release the demo year ends with (its chart's bars)."""
    deadline = time.monotonic() + DEMO_YEAR_SECONDS
    while 'class="chart__bar"' not in httpx.get(f"{base}/statistik", timeout=10).text:
        if time.monotonic() > deadline:
            raise RuntimeError("the worker published no release of the demo year")
        time.sleep(2)


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """The embedded default with demo data and staff (every organisation of the policy has its key)."""
    with serving(demo=True) as server:
        yield server


@pytest.fixture(scope="module")
def new_installation() -> Iterator[LiveServer]:
    """The embedded default on a migrated, empty database: no organisation, no account, no case. For a
    module that sets up an organisation from its very start (an organisation the demo made has its key)."""
    with serving(demo=False) as server:
        yield server


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in the main thread while
# it is started, and every later test that calls asyncio.run() would fail with "cannot be called from a
# running event loop". Closing it after each browser module leaves the main thread as it found it (a
# launch costs about a second; "package" scope needs an __init__.py, which importlib mode does without).
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("Debian's chromium is missing: `make test` installs it")
    # Playwright gives every launch a fresh, empty profile of its own.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
