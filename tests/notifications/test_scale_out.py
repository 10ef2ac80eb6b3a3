"""Scaled out: two api processes (two ports) and two workers with two beats, on one PostgreSQL and Redis.

What must hold across processes, not only inside one: a client gets the configured rate limit in total,
not once per api process; each outbox row is delivered exactly once although two relays claim rows at
the same moment and two workers deliver. (bench/scaleout.py measures the same at a larger scale.)
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
from sqlalchemy import func, select

from service.config import Settings
from service.identity.models import MembershipRole
from service.notifications.mail import message_id
from service.outbox.models import DeliveryLog, OutboxMessage
from service.reports.filing import CaseDraft
from service.reports.schemas import ReportCreate
from service.runtime import Runtime, build_runtime
from tests.support.notification import Inbox, SmtpService
from tests.support.product import (
    REPORT,
    ROUTED_ORGANISATION,
    Product,
    check_limit,
    outbox_settled,
    wait_until,
)
from tests.support.stack import PgCluster, free_port
from tests.support.staff import Clock, staff_factory, weak_accounts, with_policy_organisations

INTAKE_LIMIT = 12
RECEIPT_LIMIT = 8
LOGIN_LIMIT = 6

pytestmark = pytest.mark.slow


@dataclass
class ScaledOut:
    bases: list[str]
    runtime: Runtime
    inbox: Inbox
    counsellor_ids: tuple[str, ...]
    counters: redis.Redis


@pytest.fixture(scope="module")
def scaled_out(
    pg_cluster: PgCluster, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScaledOut]:
    name = f"scale_{uuid.uuid4().hex[:12]}"
    with pg_cluster.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE rh_template')
    url = pg_cluster.url(name)
    data_dir = tmp_path_factory.mktemp("scale-out")
    runtime = with_policy_organisations(build_runtime(Settings(data_dir=data_dir / "data", database_url=url)))
    make = staff_factory(runtime, weak_accounts(runtime, Clock()))
    counsellors = tuple(
        make(
            email=f"s{i}@beratung.example", memberships=[(ROUTED_ORGANISATION, MembershipRole.counsellor)]
        ).user_id
        for i in range(2)
    )
    # Databases of their own on the session's Redis: rate-limit counters and the broker.
    counters = redis.Redis.from_url(f"{redis_url}/5")
    counters.flushdb()
    redis.Redis.from_url(f"{redis_url}/6").flushdb()
    smtp = SmtpService(Inbox(), free_port())
    smtp.start()
    ports = [free_port(), free_port()]
    product = Product(
        {
            **os.environ,
            "RUECKHALT_DATA_DIR": str(data_dir / "data"),
            "RUECKHALT_DATABASE_URL": url,
            "RUECKHALT_REDIS_URL": f"{redis_url}/5",
            "RUECKHALT_BROKER_URL": f"{redis_url}/6",
            "RUECKHALT_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",
            "RUECKHALT_SMTP_HOST": "127.0.0.1",
            "RUECKHALT_SMTP_PORT": str(smtp.port),
            "RUECKHALT_SMTP_SECURITY": "none",
            "RUECKHALT_INTAKE_LIMIT_PER_HOUR": str(INTAKE_LIMIT),
            "RUECKHALT_RECEIPT_LIMIT_PER_HOUR": str(RECEIPT_LIMIT),
            # The per-client limit is the one checked; the per-account one must not answer first.
            "RUECKHALT_LOGIN_LIMIT_PER_HOUR": str(LOGIN_LIMIT),
            "RUECKHALT_LOGIN_ACCOUNT_LIMIT_PER_HOUR": "1000",
        },
        data_dir / "logs",
    )
    try:
        for index in (1, 2):
            product.worker(f"worker{index}")
            # Two beats: two relay passes every second, so that two relays claim rows at the same moment.
            product.beat(f"beat{index}")
        for index, port in enumerate(ports, 1):
            product.api(f"api{index}", port)
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        assert wait_until(lambda: all(_healthy(base) for base in bases), 90), "the workers reported in"
        yield ScaledOut(bases, runtime, smtp.inbox, counsellors, counters)
    finally:
        product.close()
        smtp.stop()
        runtime.dispose()
        with pg_cluster.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize(
    ("scope", "limit"), [("intake", INTAKE_LIMIT), ("receipt", RECEIPT_LIMIT), ("login", LOGIN_LIMIT)]
)
def test_one_client_gets_the_limit_once_over_both_api_processes(
    scaled_out: ScaledOut, scope: str, limit: int
) -> None:
    """Given two api processes counting in the same Redis, when one client sends three times the limit
    over both of them, exactly the limit gets through in total, and both processes took a share."""
    check = check_limit(scaled_out.bases, scope, limit, scaled_out.counters.flushdb)

    assert check.passed == limit, f"one limit in total, not one per process: {check}"
    assert check.limited == 2 * limit
    assert all(share > 0 for share in check.passed_per_api), "both processes answered"


def test_two_workers_and_two_relays_deliver_each_row_exactly_once(scaled_out: ScaledOut) -> None:
    """Given reports committed in bursts while two beats run the relay and two workers deliver, every
    outbox row reaches each counsellor once: one mail per (row, counsellor), one delivery-log row each."""
    runtime = scaled_out.runtime
    for _ in range(4):
        for _ in range(10):
            with runtime.sessions() as db:
                runtime.intake.file_report(db, ReportCreate.model_validate(REPORT), CaseDraft.new(), [])
                db.commit()
        time.sleep(0.5)

    assert wait_until(lambda: outbox_settled(runtime.settings.resolved_database_url), 90)
    time.sleep(2)  # a second delivery of some row would come now
    with runtime.sessions() as db:
        rows = list(
            db.scalars(select(OutboxMessage.id).where(OutboxMessage.topic == "notifications.new_case"))
        )
        noted = db.scalar(select(func.count()).select_from(DeliveryLog))
    expected = {message_id(f"{row}:mail:staff:{uid}") for row in rows for uid in scaled_out.counsellor_ids}
    received = Counter(scaled_out.inbox.message_ids())

    assert len(rows) >= 40
    assert set(received) == expected, "every row reached every counsellor, and nobody else"
    assert max(received.values()) == 1, "and none twice"
    assert noted == len(expected)
