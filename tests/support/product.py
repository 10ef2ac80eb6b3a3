"""The product as production runs it, one process per piece, on loopback only: api processes (uvicorn with
uvloop, as docker-compose starts them), Celery workers and the beat schedule (the commands `rueckhalt up`
runs). Shared by the fault and scale-out tests (tests/notifications) and benchmarks (bench/faults.py,
bench/scaleout.py): a test kills one piece, starts another, and counts what arrived where.

Every loop here is bounded in time; ``Product.close`` stops everything it started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import func, select

from service import serving
from service.cases.models import Case
from service.config import PROJECT_ROOT
from service.crypto import receipt_lookup
from service.db import make_engine, make_sessionmaker
from service.notifications.mail import message_id
from service.outbox.models import DeliveryLog, OutboxMessage
from service.supervisor import commands
from tests.support.forms import report_body
from tests.support.notification import Inbox, WebhookReceiver

# The reports of these tests go to Bavaria's counselling organisation alone (policies/routing.yaml).
REPORT: dict[str, Any] = report_body(
    type_codes=["A3a"],
    description="Drohbrief nach der Ratssitzung, an die Privatadresse geschickt.",
    channel="letter",
)
ROUTED_ORGANISATION = "beratung-by"


class Product:
    """Starts the pieces with one environment (``RUECKHALT_*``); their output goes to ``log_dir``."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        # A session of its own: SIGKILL reaches the process and anything it forked, and nothing else.
        process = subprocess.Popen(
            argv, env=self.env, cwd=PROJECT_ROOT, stdout=log, stderr=log, start_new_session=True
        )
        self.processes[name] = process
        return process

    def api(self, name: str, port: int, *, workers: int = 1) -> subprocess.Popen[bytes]:
        """An api process as docker-compose starts it (`rueckhalt serve`'s workers, service/serving.py);
        returns once it serves."""
        argv = serving.command("service.app:app_factory", port, workers)
        process = self._start(name, argv)
        wait_for_api(f"http://127.0.0.1:{port}", process, self.log_dir / f"{name}.log")
        return process

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        """A Celery worker exactly as `rueckhalt up` starts it, under a node name of its own."""
        argv = commands("127.0.0.1", 0, 1)["worker"]
        argv[argv.index("--hostname") + 1] = f"{name}@%h"
        return self._start(name, argv)

    def beat(self, name: str = "beat") -> subprocess.Popen[bytes]:
        # A schedule file per beat: two beats on one shelve file would corrupt it.
        argv = [*commands("127.0.0.1", 0, 1)["beat"], "--schedule", str(self.log_dir / f"{name}-schedule")]
        return self._start(name, argv)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown handler runs, tasks in flight stay unacknowledged at the broker."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        _terminate(process)

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        for log in self._logs:
            log.close()
        self._logs.clear()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for_api(base: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 60.0) -> None:
    """Ready when /healthz says the database answers (the worker may still be starting: 503 for that)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            health = httpx.get(f"{base}/healthz", timeout=2)
            if health.json().get("database", {}).get("ok"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"the api at {base} did not come up:\n{tail}")


def wait_until(condition: Callable[[], bool], seconds: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# -- traffic --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    # 0: no answer at all (refused connection, timeout).
    status: int
    receipt: str | None
    routed_to: tuple[str, ...] = ()


async def submit_at_rate(
    urls: list[str], rate: float, seconds: float, body: Mapping[str, Any] = REPORT
) -> list[Submission]:
    """Open loop: one report every 1/rate seconds, whatever the answers (a fault must not slow the
    reporters down), spread over the api ``urls`` in turn. At most rate × seconds reports."""
    results: list[Submission] = []
    async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=64)) as client:

        async def one(url: str) -> None:
            try:
                response = await client.post(url, json=dict(body))
            except httpx.HTTPError:
                results.append(Submission(0, None))
                return
            if response.status_code == 201:
                created = response.json()
                results.append(Submission(201, created["receipt"], tuple(created["routed_to"])))
            else:
                results.append(Submission(response.status_code, None))

        tasks = []
        start = time.monotonic()
        for index in range(int(rate * seconds)):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(urls[index % len(urls)])))
        await asyncio.gather(*tasks)
    return results


class Traffic:
    """``submit_at_rate`` in a thread of its own, so the caller can inject a fault while it runs."""

    def __init__(self, urls: list[str], rate: float, seconds: float) -> None:
        self.results: list[Submission] = []
        self._thread = threading.Thread(
            target=lambda: self.results.extend(asyncio.run(submit_at_rate(urls, rate, seconds))), daemon=True
        )
        self._thread.start()

    def join(self, seconds: float) -> list[Submission]:
        self._thread.join(timeout=seconds)
        if self._thread.is_alive():
            raise RuntimeError("the traffic did not finish in time")
        return self.results


# -- what arrived ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    """One run: what the reporters were told, and what reached the counsellors (and the alerts)."""

    submitted: int = 0
    accepted: int = 0
    # Told 503 ("send again"): not lost, the reporter knows.
    refused: int = 0
    # Any other answer, or none: the reporter does not know whether the report arrived.
    failed: int = 0
    # Accepted (201) but not in the database, or not notified (nor dead-lettered with an alert delivered).
    lost: int = 0
    expected: int = 0
    delivered: int = 0
    # Deliveries that arrived more than once (same Message-ID, same webhook delivery id), counted once each.
    duplicated: int = 0
    dead_letters: int = 0
    alerts: int = 0
    # Arrived but expected by nobody (a mail to the wrong person would show here).
    unexpected: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Audience:
    """Who must be told of each report: the routed organisation's members, its webhook, the alerts."""

    counsellor_ids: tuple[str, ...]
    alert_ids: tuple[str, ...]
    webhook: bool


def tally(
    database_url: str,
    pepper: bytes,
    submissions: Iterable[Submission],
    inbox: Inbox,
    receiver: WebhookReceiver | None,
    audience: Audience,
) -> Tally:
    result = Tally()
    submissions = list(submissions)
    result.submitted = len(submissions)
    result.statuses = dict(Counter(str(s.status) for s in submissions))
    accepted = [s for s in submissions if s.status == 201]
    result.accepted = len(accepted)
    result.refused = sum(1 for s in submissions if s.status == 503)
    result.failed = result.submitted - result.accepted - result.refused

    mails = Counter(inbox.message_ids())
    hooks = Counter(receiver.delivered_ids() if receiver else [])
    result.duplicated = sum(n - 1 for n in mails.values() if n > 1) + sum(
        n - 1 for n in hooks.values() if n > 1
    )
    expected_mails: set[str] = set()
    expected_hooks: set[str] = set()

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = list(session.scalars(select(OutboxMessage)))
            by_case: dict[str, list[OutboxMessage]] = {}
            for row in rows:
                case_id = row.payload.get("case_id")
                if case_id:
                    by_case.setdefault(str(case_id), []).append(row)
            result.dead_letters = sum(1 for row in rows if row.dead_at is not None)
            for submission in accepted:
                assert submission.receipt is not None
                case_id = session.scalar(
                    select(Case.id).where(Case.lookup_hash == receipt_lookup(pepper, submission.receipt))
                )
                if case_id is None:
                    result.lost += 1
                    continue
                if not _notified(
                    by_case.get(case_id, []), audience, mails, hooks, expected_mails, expected_hooks
                ):
                    result.lost += 1
    finally:
        engine.dispose()
    result.expected = len(expected_mails) + len(expected_hooks)
    result.delivered = len(expected_mails & set(mails)) + len(expected_hooks & set(hooks))
    result.alerts = len(_alert_ids(rows, audience) & set(mails))
    result.unexpected = len(set(mails) - expected_mails) + len(set(hooks) - expected_hooks)
    return result


def _alert_ids(rows: list[OutboxMessage], audience: Audience) -> set[str]:
    return {
        message_id(f"{row.id}:mail:staff:{user_id}")
        for row in rows
        if row.topic == "alerts.dead_letter"
        for user_id in audience.alert_ids
    }


def _notified(
    rows: list[OutboxMessage],
    audience: Audience,
    mails: Counter[str],
    hooks: Counter[str],
    expected_mails: set[str],
    expected_hooks: set[str],
) -> bool:
    """Every counsellor got the mail of the case's new_case row and its webhook arrived; a webhook that
    ended as a dead letter counts as handled when the alert about it reached every coordinator."""
    new_case = [row for row in rows if row.topic == "notifications.new_case"]
    alerts = [row for row in rows if row.topic == "alerts.dead_letter"]
    if not new_case:
        return False
    ok = True
    for row in new_case:
        for user_id in audience.counsellor_ids:
            key = message_id(f"{row.id}:mail:staff:{user_id}")
            expected_mails.add(key)
            ok = ok and key in mails
        if not audience.webhook:
            continue
        if row.dead_at is None:
            expected_hooks.add(row.id)
            ok = ok and row.id in hooks
            continue
        told = [message_id(f"{alert.id}:mail:staff:{uid}") for alert in alerts for uid in audience.alert_ids]
        expected_mails.update(told)
        ok = ok and bool(told) and all(key in mails for key in told)
    return ok


def outbox_settled(database_url: str) -> bool:
    """Every outbox row is done (delivered, or a dead letter whose alert row is done too)."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return (
                session.scalar(select(OutboxMessage.id).where(OutboxMessage.completed_at.is_(None))) is None
            )
    except Exception:  # the database may be on its way back up: not settled yet
        return False
    finally:
        engine.dispose()


# -- rate limits across processes ----------------------------------------------------------------------


async def hammer(
    urls: list[str], body: Mapping[str, Any], total: int, concurrency: int = 8
) -> dict[str, Counter[int]]:
    """``total`` requests spread over ``urls`` in turn, ``concurrency`` at a time; the statuses per url."""
    statuses: dict[str, Counter[int]] = {url: Counter() for url in urls}
    queue = list(range(total))
    async with httpx.AsyncClient(timeout=15) as client:

        async def worker() -> None:
            while queue:
                url = urls[queue.pop() % len(urls)]
                try:
                    status = (await client.post(url, json=dict(body))).status_code
                except httpx.HTTPError:
                    status = 0
                statuses[url][status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


@dataclass(frozen=True)
class LimitCheck:
    """One client hammering one limit over several api processes: what got through, in total and per
    process. Holding across processes means ``passed == limit``, not ``limit`` per process."""

    scope: str
    limit: int
    sent: int
    passed: int
    limited: int
    passed_per_api: tuple[int, ...]

    @property
    def holds(self) -> bool:
        return self.passed == self.limit and self.limited == self.sent - self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "holds": self.holds}


def check_limit(bases: list[str], scope: str, limit: int, clear: Callable[[], object]) -> LimitCheck:
    """Three times the limit from one client (127.0.0.1), spread over every api in ``bases``.

    ``scope`` is "intake" (POST /api/v1/reports, 201 passes), "receipt" (POST /api/v1/reports/lookup
    with a receipt nobody has, 404 passes) or "login" (POST /api/v1/session with an account nobody has,
    401 passes; two at a time, so that each process's one Argon2 slot is never the limit that answers).
    ``clear`` empties the counters first. The windows are fixed
    hours: when one ends during the check, the count starts again, so the check is made once more.
    """
    path, body, ok = {
        "intake": ("/api/v1/reports", REPORT, 201),
        "receipt": ("/api/v1/reports/lookup", {"receipt": "ABCD-EFGH-JKMN-PQRS-TVWX"}, 404),
        "login": (
            "/api/v1/session",
            {"email": "niemand@beratung.example", "password": "falsch-falsch-falsch", "totp": "000000"},
            401,
        ),
    }[scope]
    concurrency = 2 if scope == "login" else 8
    urls = [f"{base}{path}" for base in bases]
    for _ in range(2):
        clear()
        window = int(time.time()) // 3600
        statuses = asyncio.run(hammer(urls, body, 3 * limit, concurrency))
        if int(time.time()) // 3600 == window:
            break
    passed = tuple(statuses[url][ok] for url in urls)
    return LimitCheck(
        scope=scope,
        limit=limit,
        sent=3 * limit,
        passed=sum(passed),
        limited=sum(statuses[url][429] for url in urls),
        passed_per_api=passed,
    )


def outbox_counts(database_url: str) -> dict[str, int]:
    """The database's side of exactly-once: outbox rows, those done, and the deliveries noted."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = list(session.execute(select(OutboxMessage.topic, OutboxMessage.completed_at)))
            noted = session.scalar(select(func.count()).select_from(DeliveryLog)) or 0
    finally:
        engine.dispose()
    return {
        "outbox_rows": len(rows),
        "outbox_done": sum(1 for _, done in rows if done is not None),
        "delivery_log_rows": int(noted),
    }


def on_event_loop() -> bool:
    """Whether the caller runs on an event loop's thread (work that must not, or that should)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
