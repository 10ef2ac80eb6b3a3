"""Fault matrix: the whole product under one fault at a time, counting what was lost or sent twice.

The product runs as production runs it, each piece its own process on loopback: an api process (uvicorn
with uvloop), a Celery worker and the beat schedule (the commands of `rueckhalt up`), PostgreSQL with
durable commits, Redis with its append-only file (broker and rate-limit counters), an aiosmtpd server and
a webhook receiver. Each scenario gets a fresh database and fresh processes; reports arrive at a steady
rate (open loop) while the fault is injected a third of the way in and lifted after --fault-seconds:

  baseline                    no fault (the control row)
  redis_down                  Redis stopped, then started again (queues kept in its append-only file)
  worker_killed               the worker SIGKILLed while a mail is in flight, a new worker started
  smtp_down                   the SMTP server stopped (connections refused), then started again
  postgres_restart_fast       PostgreSQL stopped with -m fast (sessions ended), then started
  postgres_restart_immediate  PostgreSQL stopped with -m immediate (a crash: WAL recovery), then started
  webhook_flaky               the organisation's webhook answers 503, then recovers
  webhook_dead                the webhook answers 500 forever: dead letter and an alert to the coordinator

For each: reports submitted, accepted (201), refused (503: the reporter was told to send again, so not
lost), failed (any other answer or none), lost (accepted but not in the database, or not notified),
notifications expected and delivered, duplicated (one delivery arriving twice: same Message-ID at the SMTP
server, same delivery id at the webhook receiver), dead letters and alerts, and the seconds from the end of
the fault until every outbox row was done. Target: 0 lost, 0 duplicated, 0 failed, dead letters only where
the webhook never recovers; the command exits 1 otherwise. Writes bench/results/faults.json.

Retries are compressed in time (base 1 s) and the broker's visibility timeout is short, so that a scenario
takes seconds, not the production minutes; the mechanisms are the same. Every loop is bounded in count and
time; all traffic goes to 127.0.0.1.

Usage: python -m bench.faults --seconds 20   (make faults BENCH_SECONDS=20)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import update

from bench.common import Stack
from service.config import Settings, load_secrets
from service.db import make_engine, make_sessionmaker
from service.identity.models import Organisation
from tests.support.notification import Inbox, SmtpService, WebhookServer
from tests.support.product import (
    ROUTED_ORGANISATION,
    Audience,
    Product,
    Tally,
    Traffic,
    outbox_settled,
    tally,
    wait_until,
)
from tests.support.stack import free_port

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = "faults_template"


@dataclass
class World:
    """What a scenario's fault acts on."""

    stack: Stack
    product: Product
    smtp: SmtpService
    hooks: WebhookServer
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Callable[[World], None] | None = None
    lift: Callable[[World], None] | None = None
    webhook: bool = False
    # The fault is there before the first report (a receiver that never works), not injected later.
    from_start: bool = False
    # Seconds the SMTP server waits before its answer: keeps deliveries in flight and queued, and the
    # fault waits (bounded) for a mail between DATA and the answer, so it strikes a delivery at work.
    smtp_delay_seconds: float = 0.0
    # Dead letters this scenario must end with (one per report) rather than none.
    dead_letters_expected: bool = False
    env: dict[str, str] = field(default_factory=dict)


def kill_worker(world: World) -> None:
    world.product.kill("worker")


def restart_worker(world: World) -> None:
    world.product.worker("worker")


def hook_statuses(*statuses: int) -> Callable[[World], None]:
    def set_statuses(world: World) -> None:
        world.hooks.receiver.statuses = list(statuses)

    return set_statuses


# A worker waits up to 30 s to note a delivery while the database restarts (RECORD_PATIENCE_SECONDS);
# Redis must not hand that task to another worker meanwhile, or the mail would go twice.
WAITS_FOR_DATABASE = {"RUECKHALT_BROKER_VISIBILITY_TIMEOUT_SECONDS": "60"}

SCENARIOS = [
    Scenario("baseline"),
    Scenario("redis_down", lambda w: w.stack.redis.stop(), lambda w: w.stack.redis.start()),
    Scenario("worker_killed", kill_worker, restart_worker, smtp_delay_seconds=0.2),
    Scenario("smtp_down", lambda w: w.smtp.stop(), lambda w: w.smtp.start()),
    Scenario(
        "postgres_restart_fast",
        lambda w: w.stack.cluster.halt("fast"),
        lambda w: w.stack.cluster.start(),
        smtp_delay_seconds=0.2,
        env=WAITS_FOR_DATABASE,
    ),
    Scenario(
        "postgres_restart_immediate",
        lambda w: w.stack.cluster.halt("immediate"),
        lambda w: w.stack.cluster.start(),
        smtp_delay_seconds=0.2,
        env=WAITS_FOR_DATABASE,
    ),
    Scenario("webhook_flaky", hook_statuses(503), hook_statuses(204), webhook=True),
    Scenario(
        "webhook_dead",
        hook_statuses(500),
        None,
        webhook=True,
        from_start=True,
        dead_letters_expected=True,
        # Few retries: the point is the dead letter and its alert, not the wait for them.
        env={"RUECKHALT_TASK_MAX_RETRIES": "2"},
    ),
]


def prepare_template(stack: Stack) -> Audience:
    """One migrated database with the organisations, two counsellors of the routed organisation and a
    coordinator (who gets the dead-letter alerts); every scenario starts from a copy."""
    url = stack.database(TEMPLATE)
    runtime = stack.runtime(url)
    counsellors = tuple(
        stack.staff(runtime, f"berater{i}@beratung.example", member_of=ROUTED_ORGANISATION) for i in (1, 2)
    )
    coordinator = stack.staff(runtime, "koordination@example.org", coordinator=True)
    runtime.dispose()
    return Audience(counsellor_ids=counsellors, alert_ids=(coordinator,), webhook=False)


def fresh_database(stack: Stack, name: str, webhook_url: str | None) -> str:
    with stack.cluster.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    url = stack.cluster.url(name)
    if webhook_url:
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            session.execute(
                update(Organisation)
                .where(Organisation.slug == ROUTED_ORGANISATION)
                .values(webhook_url=webhook_url)
            )
            session.commit()
        engine.dispose()
    return url


def compressed_retries(fault_seconds: float) -> dict[str, str]:
    """Retries that outlast the fault: the cap grows with it; the visibility timeout exceeds the cap,
    or Redis would hand a task waiting for its retry to a second worker."""
    cap = max(4.0, fault_seconds / 2)
    return {
        "RUECKHALT_TASK_RETRY_BASE_SECONDS": "1",
        "RUECKHALT_TASK_RETRY_CAP_SECONDS": f"{cap:g}",
        "RUECKHALT_TASK_MAX_RETRIES": "8",
        "RUECKHALT_BROKER_VISIBILITY_TIMEOUT_SECONDS": str(math.ceil(2 * cap) + 6),
        "RUECKHALT_SMTP_TIMEOUT_SECONDS": "5",
        "RUECKHALT_WEBHOOK_TIMEOUT_SECONDS": "3",
    }


def run(
    stack: Stack,
    scenario: Scenario,
    audience: Audience,
    pepper: bytes,
    args: argparse.Namespace,
    logs: Path,
) -> dict[str, Any]:
    inbox = Inbox(delay_seconds=scenario.smtp_delay_seconds)
    smtp = SmtpService(inbox, free_port())
    smtp.start()
    hooks = WebhookServer(free_port())
    url = fresh_database(stack, f"faults_{scenario.name}", hooks.receiver.url if scenario.webhook else None)
    redis.Redis(port=stack.redis_port).flushall()  # no task of an earlier scenario
    port = free_port()
    env = stack.env(
        url,
        RUECKHALT_BROKER_URL=f"redis://127.0.0.1:{stack.redis_port}/1",
        RUECKHALT_PUBLIC_URL=f"http://127.0.0.1:{port}",
        RUECKHALT_SMTP_HOST="127.0.0.1",
        RUECKHALT_SMTP_PORT=str(smtp.port),
        RUECKHALT_SMTP_SECURITY="none",
        **{**compressed_retries(args.fault_seconds), **scenario.env},
    )
    product = Product(env, logs / scenario.name)
    world = World(stack, product, smtp, hooks)
    settled_after: float | None = None
    try:
        product.worker("worker")
        product.beat()
        product.api("api", port)
        base = f"http://127.0.0.1:{port}"
        if not wait_until(lambda: _healthy(base), seconds=60):
            raise RuntimeError(f"{scenario.name}: the worker did not report in (logs in {logs})")
        if scenario.from_start and scenario.inject:
            scenario.inject(world)

        traffic = Traffic([f"{base}/api/v1/reports"], args.rate, args.seconds)
        time.sleep(args.seconds / 3)
        if scenario.inject and not scenario.from_start:
            if scenario.smtp_delay_seconds:
                in_flight = wait_until(lambda: inbox.in_flight > 0, seconds=10, step=0.01)
                world.notes.append("struck with a mail in flight" if in_flight else "no mail was in flight")
            scenario.inject(world)
        time.sleep(args.fault_seconds)
        if scenario.lift:
            scenario.lift(world)
        lifted = time.monotonic()
        submissions = traffic.join(args.seconds + 60)
        if wait_until(lambda: outbox_settled(url), seconds=args.settle_seconds, step=0.5):
            settled_after = time.monotonic() - lifted
        # A late duplicate (a task handed out again after the visibility timeout) would come now.
        time.sleep(2)
        counted = tally(
            url,
            pepper,
            submissions,
            inbox,
            hooks.receiver,
            Audience(audience.counsellor_ids, audience.alert_ids, webhook=scenario.webhook),
        )
    finally:
        product.close()
        smtp.stop()
        hooks.close()
    row = {"scenario": scenario.name, **counted.as_dict(), "settled_seconds": _round(settled_after)}
    row["notes"] = world.notes
    # Proof that the webhook faults happened: the statuses the receiver answered, with their counts.
    row["webhook_answers"] = {
        str(status): n for status, n in sorted(Counter(hooks.receiver.answered).items())
    }
    row["met"] = met(counted, scenario, settled_after)
    return row


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def met(counted: Tally, scenario: Scenario, settled_after: float | None) -> bool:
    dead_ok = (
        (counted.dead_letters == counted.accepted)
        if scenario.dead_letters_expected
        else not counted.dead_letters
    )
    return (
        counted.lost == 0
        and counted.duplicated == 0
        and counted.failed == 0
        and counted.unexpected == 0
        and counted.accepted > 0
        and dead_ok
        and settled_after is not None
    )


COLUMNS = (
    ("scenario", 26),
    ("submitted", 9),
    ("accepted", 8),
    ("refused", 7),
    ("failed", 6),
    ("lost", 4),
    ("expected", 8),
    ("delivered", 9),
    ("duplicated", 10),
    ("dead", 4),
    ("alerts", 6),
    ("settled_s", 9),
)


def table(rows: list[dict[str, Any]]) -> str:
    keys = {"dead": "dead_letters", "settled_s": "settled_seconds"}
    lines = [
        "  ".join(f"{name:>{width}}" if i else f"{name:<{width}}" for i, (name, width) in enumerate(COLUMNS))
    ]
    for row in rows:
        cells = []
        for i, (name, width) in enumerate(COLUMNS):
            value = row.get(keys.get(name, name))
            text = "-" if value is None else str(value)
            cells.append(f"{text:>{width}}" if i else f"{text:<{width}}")
        lines.append("  ".join(cells) + ("" if row["met"] else "  <- target missed"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "20")))
    parser.add_argument("--rate", type=float, default=5.0, help="reports per second")
    parser.add_argument("--fault-seconds", type=float, default=None, help="default: a third of --seconds")
    parser.add_argument("--settle-seconds", type=float, default=120.0, help="wait at most this for delivery")
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    args = parser.parse_args()
    if args.fault_seconds is None:
        args.fault_seconds = max(2.0, args.seconds / 3)
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    if not chosen:
        parser.error(f"no such scenario; choose from {', '.join(s.name for s in SCENARIOS)}")

    logs = Path(tempfile.mkdtemp(prefix="rh-faults-logs-"))
    stack = Stack(durable=True)
    rows: list[dict[str, Any]] = []
    try:
        audience = prepare_template(stack)
        pepper = load_secrets(Settings(data_dir=stack.data_dir)).lookup_pepper
        for scenario in chosen:
            print(f"-- {scenario.name}", flush=True)
            rows.append(run(stack, scenario, audience, pepper, args, logs))
    finally:
        stack.close()
    all_met = bool(rows) and all(row["met"] for row in rows)
    print(table(rows))
    results = {
        "seconds": args.seconds,
        "rate_per_s": args.rate,
        "fault_seconds": args.fault_seconds,
        "targets": {
            "lost": 0,
            "duplicated": 0,
            "failed": 0,
            "dead_letters": "only webhook_dead, one per report",
        },
        "scenarios": rows,
        "met": all_met,
        # The rows of bench/report.py's table (make bench, make bench-report).
        "report_rows": [
            {
                "what": f"fault: {row['scenario']}",
                "figure": f"{row['accepted']} accepted, {row['refused']} refused (503), {row['lost']} lost, "
                f"{row['delivered']}/{row['expected']} delivered, {row['duplicated']} twice",
                "target": "0 lost, 0 twice",
                "met": row["met"],
            }
            for row in rows
        ],
    }
    out = ROOT / "bench" / "results" / "faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out.relative_to(ROOT)}; {'all targets met' if all_met else 'TARGET MISSED'}")
    if all_met:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"process logs kept in {logs}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
