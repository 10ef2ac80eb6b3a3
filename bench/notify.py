"""Notification latency: from a report's 201 (or commit) to its mail being accepted by an SMTP server.

The whole embedded product runs as `rueckhalt up` starts it (api, Celery worker, beat), once on the Redis
broker with PostgreSQL and once on the embedded SQLite broker with SQLite; an aiosmtpd server on loopback
notes when each mail arrives. Two phases on each:

- from idle: single reports, each sent only when the last one's mail has arrived and the service has been
  quiet for a pause since; latency is the mail's arrival minus the moment the 201 was read (what a reporter
  and a counsellor would see on a quiet evening);
- steady: reports at a fixed rate (open loop) for the given time; latency is arrival minus the commit time of
  the report's outbox row.

Prints p50/p99 of each and writes bench/results/notify.json. Target: p99 < 3 s on both brokers, from idle and
steady. Every loop is bounded in count and time.

Usage: python -m bench.notify --seconds 20 --rate 5 --idle-reports 10   (make bench-notify BENCH_SECONDS=20)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import select

from bench.common import Stack, free_port
from bench.intake import percentile
from service.config import Settings, load_secrets
from service.db import make_engine, make_sessionmaker
from service.identity.models import MembershipRole
from service.migrate import upgrade
from service.outbox.models import OutboxMessage
from service.runtime import build_runtime
from tests.support.forms import report_body

ROOT = Path(__file__).resolve().parent.parent

BODY = report_body(type_codes=["A3a"], description="Drohung per E-Mail. " * 20)
CASE_LINK = re.compile(r"/intern/faelle/([0-9a-f-]{36})")


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        found = CASE_LINK.search(envelope.content.decode("utf-8", "replace"))
        if found:
            with self.lock:
                self.at.setdefault(found.group(1), time.time())
        return "250 OK"


def prepare(settings: Settings) -> None:
    """Migrate, create the demo organisations and one Bavarian counsellor (weak Argon2: set-up only)."""
    from tests.support.staff import Clock, staff_factory, weak_accounts, with_policy_organisations

    load_secrets(settings)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    runtime = build_runtime(settings)
    with_policy_organisations(runtime)
    staff_factory(runtime, weak_accounts(runtime, Clock()))(
        email="bench@beratung.example", memberships=[("beratung-by", MembershipRole.counsellor)]
    )
    runtime.dispose()


async def send(url: str, rate: float, seconds: float) -> int:
    sent = 0
    async with httpx.AsyncClient(timeout=10) as client:
        tasks = []
        start = time.monotonic()
        for index in range(int(rate * seconds)):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(client.post(url, json=BODY)))
        for response in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(response, httpx.Response) and response.status_code == 201:
                sent += 1
    return sent


def from_idle(url: str, arrivals: Arrivals, count: int, pause: float) -> tuple[list[float], int]:
    """One report at a time after a quiet pause: seconds from its 201 to its mail; and how many were lost."""
    latencies: list[float] = []
    lost = 0
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            time.sleep(pause)
            with arrivals.lock:
                before = set(arrivals.at)
            response = client.post(url, json=BODY)
            answered = time.time()
            if response.status_code != 201:
                lost += 1
                continue
            deadline = time.monotonic() + 30
            new: set[str] = set()
            while time.monotonic() < deadline and not new:
                time.sleep(0.01)
                with arrivals.lock:
                    new = set(arrivals.at) - before
            if not new:
                lost += 1
                continue
            with arrivals.lock:
                latencies.append(arrivals.at[new.pop()] - answered)
    return latencies, lost


def figures(latencies: list[float]) -> dict[str, float | None]:
    return {
        "p50_s": round(percentile(latencies, 50), 3) if latencies else None,
        "p99_s": round(percentile(latencies, 99), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
    }


def commit_times(url: str) -> dict[str, float]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(OutboxMessage.payload, OutboxMessage.created_at).where(
                    OutboxMessage.topic == "notifications.new_case"
                )
            ).all()
    finally:
        engine.dispose()
    by_case: dict[str, float] = {}
    for payload, created_at in rows:
        moment: datetime = created_at
        by_case[str(payload["case_id"])] = moment.timestamp()
    return by_case


def run(
    name: str, env: dict[str, str], settings: Settings, rate: float, seconds: float, idle: int, pause: float
) -> dict[str, Any]:
    arrivals = Arrivals()
    smtp_port = free_port()
    controller = Controller(arrivals, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    port = free_port()
    env = {
        **env,
        "RUECKHALT_SMTP_HOST": "127.0.0.1",
        "RUECKHALT_SMTP_PORT": str(smtp_port),
        "RUECKHALT_SMTP_SECURITY": "none",
        "RUECKHALT_INTAKE_LIMIT_PER_HOUR": "100000000",
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "up", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/v1/reports"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"{name}: the service did not become healthy")
        idle_latencies, idle_lost = from_idle(url, arrivals, idle, pause)
        with arrivals.lock:
            idle_cases = set(arrivals.at)
        sent = asyncio.run(send(url, rate, seconds))
        wait_until = time.monotonic() + 60
        while time.monotonic() < wait_until and len(arrivals.at) - len(idle_cases) < sent:
            time.sleep(0.2)
        committed = commit_times(settings.resolved_database_url)
    finally:
        up.terminate()
        try:
            up.wait(timeout=40)
        except subprocess.TimeoutExpired:
            up.kill()
        controller.stop()
    latencies = [
        arrivals.at[case] - at
        for case, at in committed.items()
        if case in arrivals.at and case not in idle_cases
    ]
    idle_result: dict[str, Any] = {
        "reports": idle,
        "pause_s": pause,
        "lost": idle_lost,
        **figures(idle_latencies),
    }
    result: dict[str, Any] = {
        "broker": name,
        "idle": idle_result,
        "reports_accepted": sent,
        "mails_received": len(arrivals.at) - len(idle_cases),
        "lost": sent - len(latencies),
        "rate_per_s": rate,
        **figures(latencies),
    }
    print(
        f"{name:9} from idle ({idle} reports, {pause:.0f} s apart): 201 -> mail "
        f"p50 {idle_result['p50_s']} s  p99 {idle_result['p99_s']} s  max {idle_result['max_s']} s  "
        f"lost {idle_lost}"
    )
    print(
        f"{name:9} steady {rate:.0f}/s: accepted {sent:4}  mails {result['mails_received']:4}  "
        f"commit -> mail p50 {result['p50_s']} s  p99 {result['p99_s']} s  (target p99 < 3 s)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "20")))
    parser.add_argument("--rate", type=float, default=5.0, help="reports per second")
    parser.add_argument("--idle-reports", type=int, default=10, help="reports sent one at a time from idle")
    parser.add_argument("--idle-pause", type=float, default=3.0, help="quiet seconds before each of them")
    args = parser.parse_args()
    phases = (args.rate, args.seconds, args.idle_reports, args.idle_pause)
    results: dict[str, Any] = {"seconds": args.seconds, "rate_per_s": args.rate, "runs": []}
    stack = Stack()
    try:
        url = stack.database("bench_notify")
        redis_settings = Settings(data_dir=stack.data_dir, database_url=url)
        prepare(redis_settings)
        env = stack.env(url, RUECKHALT_BROKER_URL=f"redis://127.0.0.1:{stack.redis_port}/1")
        results["runs"].append(run("redis", env, redis_settings, *phases))

        embedded_dir = Path(tempfile.mkdtemp(prefix="rh-bench-embedded-"))
        embedded = Settings(data_dir=embedded_dir)
        prepare(embedded)
        env = {**os.environ, "RUECKHALT_DATA_DIR": str(embedded_dir), "PYTHONPATH": str(ROOT)}
        results["runs"].append(run("embedded", env, embedded, *phases))
    finally:
        stack.close()
    results["target_p99_s"] = 3.0
    results["met"] = all(
        run["p99_s"] is not None
        and run["p99_s"] < 3.0
        and run["lost"] == 0
        and run["idle"]["p99_s"] is not None
        and run["idle"]["p99_s"] < 3.0
        and run["idle"]["lost"] == 0
        for run in results["runs"]
    )
    out = ROOT / "bench" / "results" / "notify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
