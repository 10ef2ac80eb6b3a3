"""Several processes of one role, one port (PROMETHEUS_MULTIPROC_DIR): the listener serves them all.

Given two processes that counted accepted reports (the first already gone, like a recycled uvicorn worker),
when the second serves and is scraped, the count is their sum, and the first's live gauges are gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.stack import free_port

COUNT = """
import sys
from service.observability import listener, metrics
for _ in range(int(sys.argv[1])):
    metrics.record_request("/api/v1/reports", "POST", "/api/v1/reports", 201, 0.01, None)
metrics.db_pool_checked_out.labels("threads").set(7)
listener.process_ended()
"""

SERVE = """
import sys, urllib.request
from service.config import Settings
from service.observability import listener, metrics
for _ in range(int(sys.argv[1])):
    metrics.record_request("/api/v1/reports", "POST", "/api/v1/reports", 201, 0.01, None)
metrics.db_pool_checked_out.labels("threads").set(2)
served = listener.start(Settings(metrics_port=int(sys.argv[2])), listener.Role.api)
assert served is not None
print(urllib.request.urlopen(f"http://127.0.0.1:{served.port}/metrics", timeout=10).read().decode())
served.close()
"""


def run(script: str, *args: str, directory: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_serving_process_reports_the_sum_of_every_process(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    run(COUNT, "2", directory=directory)
    text = run(SERVE, "3", str(free_port()), directory=directory)
    assert 'rueckhalt_reports_total{outcome="accepted",via="api"} 5.0' in text
    assert 'rueckhalt_db_pool_checked_out{engine="threads"} 2.0' in text
