"""The metrics of the api, the worker and the beat, and the fixed sets their labels are taken from.

The counters live in the process that counts (in PROMETHEUS_MULTIPROC_DIR when there are several
processes, see ``service.observability.listener``). What the database knows (the outbox backlog, the worker's
heartbeat) is read when Prometheus scrapes (``service.observability.collectors``), never counted.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import Scope

# In multiprocess mode every metric has a file there from its creation on: a process that only runs a command
# (`rueckhalt migrate` in a container whose environment names the directory) must not fail for want of it.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# -- fixed label sets ---------------------------------------------------------------------------------------

# Anything a client chooses (a method name, a path) is never a label: it is mapped into one of these.
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER: Final = "other"
UNMATCHED_ROUTE: Final = "(unmatched)"

# The two ways a report comes in, by their (fixed) paths: the JSON API and the page's form.
INTAKE_PATHS: Final = {"/api/v1/reports": "api", "/melden": "form"}


class Outcome:
    """What became of a report sent to the intake (the ``outcome`` label of ``reports_total``)."""

    accepted: Final = "accepted"
    validation: Final = "validation"
    rate_limited: Final = "rate_limited"
    no_recipient: Final = "no_recipient"
    database_unavailable: Final = "database_unavailable"
    too_large: Final = "too_large"
    unsupported_media: Final = "unsupported_media"
    csrf: Final = "csrf"
    duplicate: Final = "duplicate"
    error: Final = "error"
    other: Final = "other"


OUTCOMES: Final = frozenset(value for name, value in vars(Outcome).items() if not name.startswith("_"))

# A domain error's class (service.errors) where the status alone does not tell the reason (two 503s).
_OUTCOME_OF_ERROR: Final = {
    "NoRecipient": Outcome.no_recipient,
    "DatabaseUnavailable": Outcome.database_unavailable,
    "RateLimited": Outcome.rate_limited,
    "PayloadTooLarge": Outcome.too_large,
    "UnsupportedMediaType": Outcome.unsupported_media,
    "CsrfFailed": Outcome.csrf,
    "AlreadySubmitted": Outcome.duplicate,
    "AlreadyFiled": Outcome.duplicate,
}
_OUTCOME_OF_STATUS: Final = {
    201: Outcome.accepted,
    403: Outcome.csrf,
    409: Outcome.duplicate,
    413: Outcome.too_large,
    415: Outcome.unsupported_media,
    422: Outcome.validation,
    429: Outcome.rate_limited,
    500: Outcome.error,
    503: Outcome.no_recipient,
}

# Where the domain error handler notes which error answered the request (read by the access middleware).
ERROR_SCOPE_KEY: Final = "rueckhalt.error"

RATE_LIMIT_SCOPES: Final = frozenset(
    {"intake", "receipt", "login-client", "login-device", "login-account", "password-change", "matching"}
)
CHANNELS: Final = frozenset({"mail", "webhook"})
TASKS: Final = frozenset(
    {
        "outbox.relay",
        "notifications.deliver",
        "notifications.deliver_many",
        "cases.escalate",
        "cases.remind",
        "reports.forget_answers",
        "system.heartbeat",
        "audit.checkpoint",
        "retention.purge",
        "statistics.snapshot",
        "knowledge.remind_review",
        "system.smtp_certificate",
        "demo.year",
    }
)
TASK_STATES: Final = frozenset({"SUCCESS", "FAILURE", "RETRY", "REVOKED", "IGNORED", "REJECTED"})
HEARTBEATS: Final = frozenset({"worker"})
ENGINES: Final = frozenset({"threads", "loop"})


def one_of(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


def count_as_duplicate(scope: Scope) -> None:
    """An intake answer that filed nothing though it shows a receipt (a second tap, an API retry): counted
    a duplicate in ``reports_total``, as the 409 that says so, not accepted."""
    scope[ERROR_SCOPE_KEY] = "AlreadySubmitted"


def intake_outcome(status: int, error: str | None) -> str:
    if error is not None and error in _OUTCOME_OF_ERROR:
        return _OUTCOME_OF_ERROR[error]
    return _OUTCOME_OF_STATUS.get(status, Outcome.other)


# -- the metrics --------------------------------------------------------------------------------------------

# Latency buckets for a service whose intake answers in tens of milliseconds and whose uploads take seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

http_request_duration = Histogram(
    "rueckhalt_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, per route template",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
http_requests = Counter(
    "rueckhalt_http_requests",
    "Answered requests per route template and status code",
    ["route", "method", "status"],
)
reports = Counter(
    "rueckhalt_reports",
    "Reports sent to the intake: accepted, or refused and why",
    ["via", "outcome"],
)
rate_limit_refusals = Counter(
    "rueckhalt_rate_limit_refusals",
    "Requests refused by a rate limit, per limit",
    ["scope"],
)
deliveries = Counter(
    "rueckhalt_deliveries",
    "Notifications handed to the mail server or a webhook (delivered), or that failed this try",
    ["channel", "outcome"],
)
dead_letters = Counter(
    "rueckhalt_outbox_dead_letters",
    "Outbox rows given up after the last retry (the coordinators were alerted)",
)
escalations = Counter(
    "rueckhalt_escalations",
    "Cases escalated because nobody acknowledged them in time",
)
tasks = Counter(
    "rueckhalt_tasks",
    "Celery tasks that ended, per task and state",
    ["task", "state"],
)
tasks_published = Counter(
    "rueckhalt_tasks_published",
    "Celery tasks published (by the beat: its schedule; by the worker: follow-up tasks)",
    ["task"],
)
# Summed over the live processes in multiprocess mode (each process has its own pools).
db_pool_checked_out = Gauge(
    "rueckhalt_db_pool_checked_out",
    "Database connections in use, per pool (threads: the thread pool's; loop: the event loop's)",
    ["engine"],
    multiprocess_mode="livesum",
)
db_pool_capacity = Gauge(
    "rueckhalt_db_pool_capacity",
    "Database connections a pool may open (pool size plus overflow)",
    ["engine"],
    multiprocess_mode="livesum",
)

# Reports that went to PostgreSQL together (service.group_commit): 1 on a quiet service; under load, what
# arrived while the previous statement was in flight.
writes_per_statement = Histogram(
    "rueckhalt_group_commit_writes",
    "Writes sent together in one statement by the event loop's group commit (a report on the loop is one)",
    buckets=(1, 2, 4, 8, 16, 32),
)

# Unix time of the SMTP relay's certificate's notAfter, as the worker last read it (hourly): a timestamp, so
# the value stays true between checks and across restarts of Prometheus; the newest reading wins.
smtp_certificate_expiry = Gauge(
    "rueckhalt_smtp_certificate_expiry_seconds",
    "When the SMTP relay's certificate expires (its notAfter, Unix time), as the worker last read it",
    multiprocess_mode="mostrecent",
)


def record_request(
    path: str, method: str, template: str, status: int, seconds: float, error: str | None
) -> None:
    """One answered request (from the access middleware). ``path`` is only compared with the intake's two
    fixed paths (a body refused before routing has no template); it is never a label."""
    method_label = method if method in METHODS else OTHER
    http_request_duration.labels(template, method_label).observe(seconds)
    http_requests.labels(template, method_label, str(status)).inc()
    if method == "POST" and path in INTAKE_PATHS:
        reports.labels(INTAKE_PATHS[path], intake_outcome(status, error)).inc()
