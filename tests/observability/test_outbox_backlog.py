"""The outbox backlog the metrics report (``DatabaseCollector``): what should be out by now, and since when.

A notice scheduled ahead (a repeat-perpetrator match within the day of the last notice) is no backlog until
its time, and then it has waited since that time: counted from its creation, one such row kept the paging
alert ``RueckhaltOutboxStuck`` (oldest age > 300 s) on for a day, and a hostile reporter could raise it at
will. A row that failed and waits for its retry still counts from its creation: that is a stuck delivery.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.samples import Sample

from service.db import utcnow
from service.observability.collectors import OUTBOX_OLDEST_AGE, OUTBOX_PENDING, DatabaseCollector
from service.outbox.writer import message
from service.runtime import Runtime


def backlog(runtime: Runtime) -> tuple[float, float]:
    samples: dict[str, Sample] = {
        sample.name: sample for family in DatabaseCollector(runtime).collect() for sample in family.samples
    }
    return samples[OUTBOX_PENDING].value, samples[OUTBOX_OLDEST_AGE].value


def test_a_notice_scheduled_ahead_is_no_backlog_until_its_time(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.sessions() as db:
        scheduled = message("notifications.perpetrator_match", case_id="c1", organisation_id="o1")
        scheduled.created_at = now - timedelta(hours=20)
        scheduled.available_at = now + timedelta(hours=4)
        db.add(scheduled)
        db.commit()
    assert backlog(runtime) == (0, 0.0)

    with runtime.sessions() as db:  # its time has come a minute ago
        row = db.get(type(scheduled), scheduled.id)
        assert row is not None
        row.available_at = now - timedelta(minutes=1)
        db.commit()
    pending, age = backlog(runtime)
    assert pending == 1
    assert 60 <= age < 120, "waiting since it was due, not since it was written (20 h)"


def test_a_row_waiting_for_its_retry_counts_from_its_creation(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.sessions() as db:
        failing = message("notifications.new_report", case_id="c2")
        failing.created_at = now - timedelta(minutes=30)
        failing.available_at = now + timedelta(minutes=5)  # the next try, after a back-off
        failing.attempts = 3
        db.add(failing)
        db.commit()
    pending, age = backlog(runtime)
    assert pending == 1
    assert age >= 30 * 60, "a stuck delivery is paged, whatever its back-off"
