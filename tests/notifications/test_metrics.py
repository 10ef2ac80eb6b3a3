"""Prometheus metrics, scraped from the listener the api serves them on (docs/metrics.md).

Given reports filed through the intake (accepted, refused as invalid, too large and by the rate limit) and a
real Celery worker that delivers their notifications, when Prometheus scrapes, then the counters moved by
exactly what happened; when the worker is stopped, its heartbeat age grows at every scrape; and no label
value anywhere carries a receipt, a case id, an address or a word of the reports: every label comes from a
fixed set. Both databases, both brokers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import httpx
import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from service.app import create_app
from service.cases.models import Case
from service.config import Settings
from service.observability import metrics
from service.runtime import Runtime
from tests.support.notification import SmtpServer
from tests.support.page_catalogue import routes_answering
from tests.support.stack import free_port
from tests.support.worker import REPORT, outbox, wait_until
from workers import context
from workers.celery_app import make_celery

DESCRIPTION = "QXMETRICSCANARY Drohbrief an den Ortsvorsteher"
NOTIFY = "qxmetrics-reporter@example.org"
FILED = {**REPORT, "description": DESCRIPTION, "notify_email": NOTIFY}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Three reports an hour per client: the fourth is refused by the rate limit.
    return settings.model_copy(update={"intake_limit_per_hour": 3, "metrics_port": free_port()})


@pytest.fixture
def served(runtime: Runtime) -> Iterator[TestClient]:
    """The api with its lifespan, which starts the metrics listener on ``metrics_port``."""
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
        yield client


def scrape(settings: Settings) -> tuple[str, Samples]:
    text = httpx.get(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=10).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, metric: str, **labels: str) -> float:
    return value(after, metric, **labels) - value(before, metric, **labels)


def heartbeat_age(settings: Settings) -> float:
    return value(scrape(settings)[1], "rueckhalt_worker_heartbeat_age_seconds", name="worker")


def test_counters_move_with_the_reports_and_the_heartbeat_ages_without_a_worker(
    served: TestClient,
    runtime: Runtime,
    settings: Settings,
    smtp_server: SmtpServer,
    broker_url: str,
    members: list[str],
) -> None:
    _, before = scrape(settings)

    # Given: three accepted reports, one invalid, one too large, and a fourth valid one over the limit.
    receipts = []
    for _ in range(3):
        response = served.post("/api/v1/reports", json=FILED)
        assert response.status_code == 201, response.text
        receipts.append(response.json()["receipt"])
    assert served.post("/api/v1/reports", json={**FILED, "land": "99"}).status_code == 422
    huge = {**FILED, "description": "x" * (settings.max_json_body_bytes + 1)}
    assert served.post("/api/v1/reports", json=huge).status_code == 413
    assert served.post("/api/v1/reports", json=FILED).status_code == 429

    # And a real worker that delivers the notifications and beats once.
    worker_settings = settings.model_copy(
        update={
            "broker_url": broker_url,
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_security": "none",
        }
    )
    app = make_celery(worker_settings)
    import workers.tasks  # noqa: F401 - registers the shared tasks with the app

    app.finalize()
    context.use(context.context_for(runtime, worker_settings), app)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            app.send_task("outbox.relay")
            assert wait_until(lambda: all(row.completed_at is not None for row in outbox(runtime)))
            app.send_task("system.heartbeat")
            assert wait_until(lambda: heartbeat_age(settings) < 5)
            text, during = scrape(settings)
    finally:
        context.use(None)

    # Then: the intake's counters moved by what happened, by reason.
    assert moved(before, during, "rueckhalt_reports_total", via="api", outcome="accepted") == 3
    assert moved(before, during, "rueckhalt_reports_total", via="api", outcome="validation") == 1
    assert moved(before, during, "rueckhalt_reports_total", via="api", outcome="too_large") == 1
    assert moved(before, during, "rueckhalt_reports_total", via="api", outcome="rate_limited") == 1
    assert moved(before, during, "rueckhalt_rate_limit_refusals_total", scope="intake") == 1
    assert (
        moved(
            before,
            during,
            "rueckhalt_http_request_duration_seconds_count",
            route="/api/v1/reports",
            method="POST",
        )
        == 6  # every one of them, the refused ones too, under the route's template
    )
    assert (
        moved(
            before,
            during,
            "rueckhalt_http_requests_total",
            route="/api/v1/reports",
            method="POST",
            status="201",
        )
        == 3
    )
    # The notifications went out (two counsellors per report), and the backlog is empty.
    assert moved(before, during, "rueckhalt_deliveries_total", channel="mail", outcome="delivered") >= 6
    assert value(during, "rueckhalt_outbox_pending") == 0
    assert value(during, "rueckhalt_outbox_oldest_pending_age_seconds") == 0
    assert value(during, "rueckhalt_metrics_database_up") == 1
    assert moved(before, during, "rueckhalt_tasks_total", task="outbox.relay", state="SUCCESS") >= 1
    assert value(during, "rueckhalt_db_pool_capacity", engine="threads") >= 1

    # When the worker is gone (the beat still sends heartbeats, nobody takes them), its heartbeat ages.
    app.send_task("system.heartbeat")
    first = heartbeat_age(settings)
    time.sleep(1.5)
    second = heartbeat_age(settings)
    assert second >= first + 1.0
    assert not math.isinf(second)

    # And no label carries content: not a receipt, a case id, an address or the description.
    with runtime.sessions() as db:
        case_ids = list(db.scalars(select(Case.id)))
    assert len(case_ids) == 3
    forbidden = [DESCRIPTION, "QXMETRICSCANARY", NOTIFY, *members, *case_ids]
    forbidden += [r for receipt in receipts for r in (receipt, receipt.replace("-", ""))]
    for needle in forbidden:
        assert needle.lower() not in text.lower()
    assert_labels_from_fixed_sets(served, text)


def assert_labels_from_fixed_sets(client: TestClient, text: str) -> None:
    """Every label value of our metrics is a member of its fixed set (a positive list, not a search)."""
    # Every template of the application (the static mount under its own path), and none for the rest.
    templates = {path for method in metrics.METHODS for path in routes_answering(client.app, method)}
    templates |= {"/static", metrics.UNMATCHED_ROUTE}
    allowed = {
        "route": templates,
        "method": metrics.METHODS | {metrics.OTHER},
        "outcome": metrics.OUTCOMES | {"delivered", "failed"},
        "via": set(metrics.INTAKE_PATHS.values()),
        "scope": metrics.RATE_LIMIT_SCOPES | {metrics.OTHER},
        "channel": metrics.CHANNELS | {metrics.OTHER},
        "task": metrics.TASKS | {metrics.OTHER},
        "state": metrics.TASK_STATES | {metrics.OTHER},
        "name": metrics.HEARTBEATS,
        "engine": metrics.ENGINES,
    }
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("rueckhalt_"):
            continue
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                if label == "le":
                    continue
                if label == "status":
                    assert label_value.isdigit()
                    assert len(label_value) == 3
                    continue
                assert label in allowed, (sample.name, label)
                assert label_value in allowed[label], (sample.name, label)
