"""Celery tasks, named <feature>.<verb>; each takes ids only and may run more than once safely."""

from __future__ import annotations

import logging
from datetime import datetime

from celery import Task, shared_task
from celery.signals import worker_ready
from sqlalchemy import select

from service.audit.daily import send_daily_checkpoint
from service.audit.policies import record_policy_state
from service.db import database_unavailable, utcnow
from service.i18n import LOCAL_ZONE
from service.notifications.certificate import smtp_certificate_not_after
from service.observability import metrics
from service.outbox.models import WorkerHeartbeat
from service.outbox.relay import backoff_seconds, relay
from workers import context

log = logging.getLogger("rueckhalt.worker")


def _publish(task_name: str, outbox_id: str) -> None:
    # No publish retries here: a broker that is down leaves the row pending for the relay's own backoff.
    context.celery().send_task(task_name, args=[outbox_id], retry=False)


@shared_task(name="outbox.relay", ignore_result=True)
def relay_outbox() -> int:
    ctx = context.current()
    settings = ctx.settings
    result = relay(
        ctx.runtime.sessions,
        _publish,
        retry_base_seconds=settings.task_retry_base_seconds,
        retry_cap_seconds=settings.task_retry_cap_seconds,
    )
    return result.dispatched


@shared_task(name="notifications.deliver", bind=True, ignore_result=True, acks_late=True)
def deliver(self: Task, outbox_id: str) -> None:
    countdown = _deliver_one(outbox_id, int(self.request.retries or 0))
    if countdown is not None:
        raise self.retry(countdown=countdown, max_retries=context.current().settings.task_max_retries)


@shared_task(name="notifications.deliver_many", ignore_result=True, acks_late=True)
def deliver_many(outbox_ids: list[str]) -> None:
    """The rows an api process committed within a few milliseconds of each other, published as one task.

    Under a flood one publish per report cost the api process about a tenth of a report's CPU. Each row is
    delivered as ``deliver`` would deliver it; one that needs another try continues as its own ``deliver``
    task at its first retry, so its backoff and its dead letter are those of a single row. A worker that dies
    in the middle gets the whole list again (late ack): the delivery log skips what was already sent.
    """
    for outbox_id in outbox_ids:
        countdown = _deliver_one(outbox_id, 0)
        if countdown is not None:
            deliver.apply_async(args=[outbox_id], countdown=countdown, retries=1)


def _deliver_one(outbox_id: str, retries: int) -> float | None:
    """Deliver one outbox row; the countdown of its next try, or None when it is done (or dead-lettered)."""
    ctx = context.current()
    settings = ctx.settings
    unavailable: str | None = None
    try:
        outcome = ctx.notifications.deliver(ctx.runtime.sessions, outbox_id)
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        unavailable = type(exc).__name__
    if unavailable is not None:
        # The database is restarting or out of reach. A failed task would leave the row to the relay's
        # redispatch a quarter of an hour later; a retry tries again in seconds. Never a dead letter for
        # this: nothing is wrong with the recipients. After the last retry the relay's redispatch remains.
        # Retried outside the ``except`` and without ``exc``: Celery's retry and failure log lines would
        # otherwise carry the error's message (a statement's text) as their cause.
        log.warning("delivery of outbox %s: database unavailable (%s)", outbox_id, unavailable)
        return backoff_seconds(retries + 1, settings.task_retry_base_seconds, settings.task_retry_cap_seconds)
    for key in outcome.delivered:
        metrics.deliveries.labels(_channel(key), "delivered").inc()
    for key in outcome.failed:
        metrics.deliveries.labels(_channel(key), "failed").inc()
    if outcome.complete:
        return None
    if retries >= settings.task_max_retries:
        with ctx.runtime.sessions() as session:
            ctx.notifications.dead_letter(session, outbox_id)
            session.commit()  # the task is the transaction: the mark and the alert's outbox row together
        metrics.dead_letters.inc()
        return None
    countdown = backoff_seconds(
        retries + 1, settings.task_retry_base_seconds, settings.task_retry_cap_seconds
    )
    log.warning(
        "delivery of outbox %s failed for %d recipients (%s); retry in %.0f s",
        outbox_id,
        len(outcome.failed),
        ",".join(sorted(set(outcome.failed.values()))),
        countdown,
    )
    return countdown


def _channel(recipient_key: str) -> str:
    # A delivery log key ("mail:staff:<id>", "webhook:<id>"): only its channel, from a fixed set, is a label.
    return metrics.one_of(recipient_key.split(":", 1)[0], metrics.CHANNELS)


@shared_task(name="cases.escalate", ignore_result=True)
def escalate() -> int:
    ctx = context.current()
    escalated = len(ctx.schedule.escalate(ctx.runtime.sessions, utcnow()))
    metrics.escalations.inc(escalated)
    return escalated


@shared_task(name="reports.forget_answers", ignore_result=True)
def forget_answers() -> int:
    """Erase the receipts kept for a second submission once their quarter of an hour has ended."""
    ctx = context.current()
    with ctx.runtime.sessions() as session:
        erased = ctx.runtime.intake.forget_answers_due(session)
        session.commit()
    return erased


@shared_task(name="cases.remind", ignore_result=True)
def remind() -> int:
    ctx = context.current()
    now = utcnow()
    return len(ctx.schedule.remind(ctx.runtime.sessions, now, now.astimezone(LOCAL_ZONE).date()))


@shared_task(name="system.heartbeat", ignore_result=True)
def heartbeat(name: str = "worker") -> None:
    """Proof for /healthz that the schedule runs and a worker takes its tasks."""
    _beat(name)


@worker_ready.connect
def on_worker_ready(**_: object) -> None:
    """A starting worker records the policy files it works by and says it is alive at once."""
    ctx = context.current()
    with ctx.runtime.sessions() as session:
        record_policy_state(session, ctx.runtime.audit, ctx.settings.policies_dir)
        session.commit()  # the worker's start is the transaction
    _beat("worker")
    # The coordinators' snapshot of last month, if it is missing (a fresh installation): queued, because
    # building and gating it takes a while. In demo mode the synthetic year comes first, then the snapshot.
    context.celery().send_task("demo.year" if ctx.settings.demo else "statistics.snapshot")
    # The relay's certificate date at once, not only after the first hour.
    if ctx.settings.smtp_host:
        context.celery().send_task("system.smtp_certificate")


def _beat(name: str) -> None:
    ctx = context.current()
    with ctx.runtime.sessions() as session:
        row = session.scalar(select(WorkerHeartbeat).where(WorkerHeartbeat.name == name))
        now: datetime = utcnow()
        if row is None:
            session.add(WorkerHeartbeat(name=name, beat_at=now))
        else:
            row.beat_at = now
        session.commit()


@shared_task(name="system.smtp_certificate", ignore_result=True)
def smtp_certificate() -> float | None:
    """Read when the SMTP relay's certificate expires and expose it (the alert fires 14 days before)."""
    ctx = context.current()
    try:
        not_after = smtp_certificate_not_after(ctx.settings)
    except (OSError, ValueError) as exc:
        # The type only: a message could name the relay's answer. The gauge keeps the last date read.
        log.warning("the SMTP relay's certificate could not be read (%s)", type(exc).__name__)
        return None
    if not_after is None:
        return None
    metrics.smtp_certificate_expiry.set(not_after.timestamp())
    return not_after.timestamp()


@shared_task(name="audit.checkpoint", ignore_result=True)
def audit_checkpoint() -> int | None:
    """Mail today's signed audit checkpoint to the coordinators and the fallback rota, once a day.

    Returns the checkpoint's seq, or None when today's was already sent (the beat runs this hourly).
    """
    ctx = context.current()
    with ctx.runtime.sessions() as session:
        sent = send_daily_checkpoint(session, ctx.runtime.audit, now=utcnow())
        session.commit()  # the task is the transaction: the checkpoint event and its mail together
    return None if sent is None else sent.checkpoint.seq


@shared_task(name="retention.purge", ignore_result=True)
def purge() -> int:
    """Crypto-shred closed cases past their retention period (policies/retention.yaml)."""
    ctx = context.current()
    with ctx.runtime.sessions() as session:
        report = ctx.runtime.retention.purge(session, utcnow(), dry_run=False)
        # The cases and notices committed one by one in the purge; the task commits the rest of the run.
        session.commit()
    log.info(
        "retention: %d cases purged, %d failed, %d expired sessions deleted",
        len(report.purged),
        len(report.failed),
        report.expired_sessions,
    )
    return len(report.purged)


@shared_task(name="statistics.snapshot", ignore_result=True)
def snapshot() -> str | None:
    """The coordinators' snapshot of the last completed month, built once (a stored one is kept)."""
    from service.statistics.dashboard.service import make_snapshot
    from service.statistics.domains import domains_from
    from service.statistics.policy import load_statistics_policy

    ctx = context.current()
    today = utcnow().astimezone(LOCAL_ZONE).date()
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    as_of = f"{year:04d}-{month:02d}"
    rules = load_statistics_policy(ctx.settings.policies_dir).coordinator
    with ctx.runtime.sessions() as session:
        built = make_snapshot(
            session,
            as_of=as_of,
            domains=domains_from(ctx.runtime.taxonomy),
            rules=rules,
            audit=ctx.runtime.audit,
        )
        session.commit()  # the task is the snapshot's transaction
    log.info("statistics snapshot %s: %s", as_of, "released" if built.released else "not released")
    return as_of


@shared_task(name="demo.year", ignore_result=True)
def demo_year() -> str | None:
    """Demo mode only (``RUECKHALT_DEMO``, which production refuses): the synthetic year of reports, last
    year's public release and last month's snapshot, each once (service/demo_year.py)."""
    from service.config import Mode
    from service.demo_year import load_demo_year

    ctx = context.current()
    if not ctx.settings.demo or ctx.settings.mode is Mode.production:
        log.warning("demo.year refused: not in demo mode")
        return None
    loaded = load_demo_year(ctx.runtime)
    log.info(
        "demo year: %d synthetic reports filed, release %d, snapshot %s %s",
        loaded.reports_filed,
        loaded.released_year,
        loaded.snapshot_as_of,
        "released" if loaded.snapshot_released else "not released",
    )
    return loaded.snapshot_as_of


@shared_task(name="knowledge.remind_review", ignore_result=True)
def remind_knowledge_review() -> int:
    """Tell the coordinators which knowledge-base articles and support-directory entries nobody has checked
    for a year (weekly, one mail)."""
    ctx = context.current()
    now = utcnow()
    with ctx.runtime.sessions() as session:
        entries = ctx.runtime.support.due_for_review(session, now)
        due = ctx.runtime.knowledge.remind_review(session, now, entries=entries)
        session.commit()  # the task is the transaction: the reminder's outbox row with nothing else
        return len(due)
