"""Publishing a delivery task right after the commit of its outbox row, without waiting for the relay.

The relay is a scheduled pass through the broker: a notification waits for the next pass, then for the
broker to hand the pass to a worker, then for the broker again. An api process with a dispatcher marks the
rows it writes as dispatched (in the same transaction, so the relay leaves them alone) and, once the commit
has returned, hands their ids to a thread of its own that publishes them. The request never waits for the
broker and never fails because of it.

Nothing is lost on any path:
- the commit precedes every publish (``submit`` is called after ``commit``);
- a publish the broker refuses gives its rows back (``dispatched_at`` cleared): the relay's next pass
  publishes them, with its own backoff;
- while the broker is known to be down (a refusal less than ``cooldown_seconds`` ago, or a publish under
  way for more than ``slow_seconds``) ``ready`` says no, and new rows are written for the relay as before;
- a process that dies between the commit and the publish leaves its rows marked dispatched: the relay hands
  them out again after its ``redispatch_after``; late, never lost (as for a relay that dies after claiming).
Each delivery is still recorded in the delivery log, so a row published twice is delivered once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.outbox.models import OutboxMessage
from service.outbox.relay import Publish, task_for

log = logging.getLogger("rueckhalt.outbox")

# (outbox row id, topic) of committed rows.
Rows = Sequence[tuple[str, str]]


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        publish: Publish,
        *,
        cooldown_seconds: float = 30.0,
        slow_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._publish = publish
        self._cooldown = cooldown_seconds
        self._slow = slow_seconds
        self._clock = clock
        self._queue: queue.SimpleQueue[Rows | None] = queue.SimpleQueue()
        self._down_until = 0.0
        # When the publish under way began: one that hangs (a broker out of reach) stops new claims early.
        self._publishing_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="outbox-dispatch", daemon=True)
        self.published = 0
        self.given_back = 0

    def start(self) -> None:
        self._thread.start()

    def ready(self) -> bool:
        """Whether rows written now should be marked dispatched and handed to this dispatcher."""
        now = self._clock()
        since = self._publishing_since
        return (
            self._thread.is_alive()
            and now >= self._down_until
            and (since is None or now - since < self._slow)
        )

    def submit(self, rows: Rows) -> None:
        """Hand over committed rows (never blocks, never raises)."""
        if rows:
            self._queue.put(list(rows))

    def close(self, timeout: float = 10.0) -> None:
        """Publish what is queued (bounded in time); what is left is given back to the relay."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        left: list[tuple[str, str]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            left.extend(item or [])
        self._give_back([row_id for row_id, _ in left])

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._dispatch(item)

    def _dispatch(self, rows: Rows) -> None:
        if self._clock() < self._down_until:
            self._give_back([row_id for row_id, _ in rows])
            return
        for index, (row_id, topic) in enumerate(rows):
            self._publishing_since = self._clock()
            try:
                self._publish(task_for(topic), row_id)
            except Exception as exc:
                log.warning("outbox dispatch: the broker refused a task (%s)", type(exc).__name__)
                self._down_until = self._clock() + self._cooldown
                self._give_back([rid for rid, _ in rows[index:]])
                return
            finally:
                self._publishing_since = None
            self.published += 1

    def _give_back(self, ids: list[str]) -> None:
        """Clear ``dispatched_at`` of rows not yet completed, so the relay's next pass publishes them."""
        if not ids:
            return
        try:
            with self._sessions() as session:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids), OutboxMessage.completed_at.is_(None))
                    .values(dispatched_at=None)
                    .execution_options(synchronize_session=False)
                )
                session.commit()
            self.given_back += len(ids)
        except Exception as exc:
            # The rows stay marked dispatched: the relay hands them out after its redispatch delay.
            log.warning(
                "outbox dispatch: %d rows left to the relay's redispatch (%s)", len(ids), type(exc).__name__
            )


def broker_publisher(broker_settings: Settings) -> Publish:
    """Publish through Celery on the broker of ``broker_settings`` (the tasks the workers define)."""
    from workers.celery_app import make_celery

    app = make_celery(broker_settings)

    def publish(task_name: str, outbox_id: str) -> None:
        # No retries here: a refusal gives the row back to the relay at once.
        app.send_task(task_name, args=[outbox_id], retry=False)

    return publish
