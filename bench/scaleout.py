"""Scale-out: does a second api process and a second worker add capacity, and do the guarantees hold
across processes?

One PostgreSQL and one Redis on loopback. Phase "1x": one api process (uvicorn, uvloop) and one Celery
worker with the beat schedule. Phase "2x": two api processes on two ports and two workers (and two beats,
so that two relay passes claim outbox rows at the same moment). In each phase closed-loop clients send
reports over every api port for --seconds; then the backlog of notifications drains. Measured:

- intake throughput per phase and the ratio 2x / 1x. This machine has few cores (see ``cpu_cores`` in the
  JSON), shared by the api processes, the workers, PostgreSQL, Redis and the clients themselves: the ratio
  is bounded by the cores, not by the design, and is reported as measured;
- exactly once: every notification of every accepted report arrived at the SMTP server once (counted by
  Message-ID), against the outbox rows and the delivery log;
- rate limits across processes: one client hammering intake and receipt sign-in over both api ports (with
  low limits) gets exactly the configured limit in total, not one limit per process.

Prints the figures and writes bench/results/scaleout.json; exits 1 when a guarantee does not hold. Every
loop is bounded in count and time; all traffic goes to 127.0.0.1.

Usage: python -m bench.scaleout --seconds 20   (make bench-scaleout BENCH_SECONDS=20)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.common import Stack
from bench.intake import percentile
from service.config import Settings, load_secrets
from tests.support.notification import Inbox, SmtpService
from tests.support.product import (
    REPORT,
    ROUTED_ORGANISATION,
    Audience,
    Product,
    Submission,
    check_limit,
    outbox_counts,
    outbox_settled,
    tally,
    wait_until,
)
from tests.support.stack import free_port

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = "scaleout_template"
# Low limits for the rate-limit proof: small enough to hammer three times over in a second or two.
INTAKE_LIMIT = 40
RECEIPT_LIMIT = 30


async def closed_loop(
    urls: list[str], concurrency: int, seconds: float
) -> tuple[list[Submission], list[float], float]:
    """``concurrency`` clients, each sending its next report when the last one is answered; client i
    talks to ``urls[i % len(urls)]``. Returns the answers, the latencies (ms) and the elapsed time."""
    submissions: list[Submission] = []
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=15) as client:

        async def worker(url: str) -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=REPORT)
                except httpx.HTTPError:
                    submissions.append(Submission(0, None))
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                receipt = response.json()["receipt"] if response.status_code == 201 else None
                submissions.append(Submission(response.status_code, receipt))

        started = time.monotonic()
        await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return submissions, latencies, elapsed


def prepare_template(stack: Stack) -> Audience:
    url = stack.database(TEMPLATE)
    runtime = stack.runtime(url)
    counsellors = tuple(
        stack.staff(runtime, f"berater{i}@beratung.example", member_of=ROUTED_ORGANISATION) for i in (1, 2)
    )
    runtime.dispose()
    return Audience(counsellor_ids=counsellors, alert_ids=(), webhook=False)


def phase(
    stack: Stack,
    name: str,
    copies: int,
    audience: Audience,
    pepper: bytes,
    args: argparse.Namespace,
    logs: Path,
) -> dict[str, Any]:
    """``copies`` api processes, workers and beats on a fresh database: throughput, then delivery."""
    with stack.cluster.admin() as conn:
        conn.execute(f'CREATE DATABASE "scaleout_{name}" TEMPLATE "{TEMPLATE}"')
    url = stack.cluster.url(f"scaleout_{name}")
    redis.Redis(port=stack.redis_port).flushall()
    smtp = SmtpService(Inbox(), free_port())
    smtp.start()
    ports = [free_port() for _ in range(copies)]
    env = stack.env(
        url,
        RUECKHALT_BROKER_URL=f"redis://127.0.0.1:{stack.redis_port}/1",
        RUECKHALT_PUBLIC_URL=f"http://127.0.0.1:{ports[0]}",
        RUECKHALT_SMTP_HOST="127.0.0.1",
        RUECKHALT_SMTP_PORT=str(smtp.port),
        RUECKHALT_SMTP_SECURITY="none",
    )
    product = Product(env, logs / name)
    result: dict[str, Any] = {"phase": name, "api_processes": copies, "workers": copies, "beats": copies}
    try:
        for index in range(copies):
            product.worker(f"worker{index + 1}")
            product.beat(f"beat{index + 1}")
        for index, port in enumerate(ports):
            product.api(f"api{index + 1}", port)
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        if not wait_until(lambda: all(_healthy(base) for base in bases), seconds=90):
            raise RuntimeError(f"{name}: the workers did not report in (logs in {logs})")
        urls = [f"{base}/api/v1/reports" for base in bases]

        warm, _, _ = asyncio.run(closed_loop(urls, args.concurrency, min(2.0, args.seconds / 4)))
        # The machine may be shared: the 1-minute load before and after says how much of it was ours.
        load_before = os.getloadavg()[0]
        measured, latencies, elapsed = asyncio.run(closed_loop(urls, args.concurrency, args.seconds))
        result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        load_ended = time.monotonic()
        accepted = sum(1 for s in measured if s.status == 201)
        result["intake"] = {
            "seconds": round(elapsed, 1),
            "requests": len(measured),
            "accepted": accepted,
            "errors": len(measured) - accepted,
            "rate_per_s": round(accepted / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
        }
        # The api processes end with the load: what follows is the workers' share of the CPU.
        for index in range(copies):
            product.stop(f"api{index + 1}")
        settled = wait_until(lambda: outbox_settled(url), seconds=args.settle_seconds, step=0.5)
        drained = time.monotonic() - load_ended
        time.sleep(2)  # a late second delivery would come now
        counted = tally(url, pepper, warm + measured, smtp.inbox, None, audience)
        result["delivery"] = {
            "settled": settled,
            # After the load ended, until the last row was done.
            "drain_seconds": round(drained, 1) if settled else None,
            # Every mail, over the whole time the workers had them: from the start of the load to the end.
            "mails_per_s": round(counted.delivered / (elapsed + drained), 1) if settled else None,
            **counted.as_dict(),
            **outbox_counts(url),
        }
        result["exactly_once"] = (
            settled
            and counted.lost == 0
            and counted.duplicated == 0
            and counted.unexpected == 0
            and counted.delivered == counted.expected
        )
        if copies > 1:
            result["rate_limits"] = limits_across(product, stack, env, copies)
    finally:
        product.close()
        smtp.stop()
    return result


def limits_across(product: Product, stack: Stack, env: dict[str, str], copies: int) -> list[dict[str, Any]]:
    """Api processes with low limits on the same Redis; one client hammers them all."""
    product.env = {
        **env,
        "RUECKHALT_INTAKE_LIMIT_PER_HOUR": str(INTAKE_LIMIT),
        "RUECKHALT_RECEIPT_LIMIT_PER_HOUR": str(RECEIPT_LIMIT),
    }
    ports = [free_port() for _ in range(copies)]
    for index, port in enumerate(ports):
        product.api(f"limited{index + 1}", port)
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    counters = redis.Redis(port=stack.redis_port, db=0)  # RUECKHALT_REDIS_URL of Stack.env
    checks = [
        check_limit(bases, "intake", INTAKE_LIMIT, counters.flushdb),
        check_limit(bases, "receipt", RECEIPT_LIMIT, counters.flushdb),
    ]
    return [check.as_dict() for check in checks]


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def report_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of bench/report.py's table (make bench, make bench-report)."""
    one, two = results["phases"]
    rows: list[dict[str, Any]] = [
        {
            "what": "scale-out: intake, 1 -> 2 api processes",
            "figure": f"{one['intake']['rate_per_s']}/s -> {two['intake']['rate_per_s']}/s, ratio "
            f"{results['ratio']} on {results['cpu_cores']} cores",
            "target": "measured (cores bound it)",
            "met": None,
        },
        {
            "what": "scale-out: each notification once",
            "figure": f"{two['delivery']['delivered']}/{two['delivery']['expected']} delivered, "
            f"{two['delivery']['duplicated']} twice (2 workers, 2 relays)",
            "target": "exactly once",
            "met": results["exactly_once"],
        },
    ]
    for check in two.get("rate_limits", []):
        rows.append(
            {
                "what": f"scale-out: {check['scope']} limit over 2 api processes",
                "figure": f"{check['passed']} of {check['sent']} passed {list(check['passed_per_api'])}",
                "target": f"= {check['limit']} in total",
                "met": check["holds"],
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "20")))
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients in all")
    parser.add_argument("--settle-seconds", type=float, default=300.0, help="wait at most this for delivery")
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="rh-scaleout-logs-"))
    stack = Stack()
    try:
        audience = prepare_template(stack)
        pepper = load_secrets(Settings(data_dir=stack.data_dir)).lookup_pepper
        phases = [
            phase(stack, name, copies, audience, pepper, args, logs)
            for name, copies in (("1x", 1), ("2x", 2))
        ]
    finally:
        stack.close()
    one, two = phases
    ratio = two["intake"]["rate_per_s"] / one["intake"]["rate_per_s"] if one["intake"]["rate_per_s"] else 0.0
    limits = two.get("rate_limits", [])
    results: dict[str, Any] = {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "cpu_cores": os.cpu_count(),
        "phases": phases,
        "ratio": round(ratio, 2),
        "rate_limits_hold": bool(limits) and all(check["holds"] for check in limits),
        "exactly_once": all(p["exactly_once"] for p in phases),
    }
    results["met"] = results["rate_limits_hold"] and results["exactly_once"]
    results["report_rows"] = report_rows(results)
    for p in phases:
        intake, delivery = p["intake"], p["delivery"]
        print(
            f"{p['phase']}: {p['api_processes']} api, {p['workers']} worker(s): "
            f"intake {intake['rate_per_s']}/s (p50 {intake['p50_ms']} ms, p99 {intake['p99_ms']} ms, "
            f"errors {intake['errors']}); notifications {delivery['delivered']}/{delivery['expected']} "
            f"delivered, {delivery['duplicated']} twice, {delivery['lost']} reports lost, drained in "
            f"{delivery['drain_seconds']} s after the load ({delivery['mails_per_s']} mails/s); outbox rows "
            f"{delivery['outbox_done']}/{delivery['outbox_rows']} done, "
            f"delivery log {delivery['delivery_log_rows']}"
        )
    print(
        f"ratio 2x/1x: {results['ratio']} on {results['cpu_cores']} cores (1-minute load before/after: "
        + ", ".join(f"{p['phase']} {p['load_average_1min']}" for p in phases)
        + ")"
    )
    for check in limits:
        print(
            f"rate limit {check['scope']}: limit {check['limit']}, sent {check['sent']} over "
            f"{len(check['passed_per_api'])} api processes, passed {check['passed']} "
            f"(per process {list(check['passed_per_api'])}), refused 429 {check['limited']}: "
            f"{'holds' if check['holds'] else 'DOES NOT HOLD'}"
        )
    out = ROOT / "bench" / "results" / "scaleout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(
        f"written to {out.relative_to(ROOT)}; {'guarantees hold' if results['met'] else 'GUARANTEE BROKEN'}"
    )
    if results["met"]:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"process logs kept in {logs}")
    return 0 if results["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
