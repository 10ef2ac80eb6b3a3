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

Rows committed within ``linger_seconds`` of each other go out as one task (``notifications.deliver_many``)
when the publisher can do that: under a flood a publish per report cost the api process about a tenth of
a report's CPU, and a few milliseconds more before a mail is nothing against the seconds it takes anyway.
The linger starts with the first row handed over to an idle dispatcher; rows handed over meanwhile go with
it, and the thread is not woken for each of them (a wake-up per report cost the serving thread more than
the publish did: session 16, docs/intake-cost.md).
"""

from __future__ import annotations

import functools
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
# Publishes one task that delivers every row of the list (task name, outbox row ids).
PublishMany = Callable[[str, list[str]], None]

# The task that delivers a list of rows, for each task that delivers one.
BATCH_TASK = {"notifications.deliver": "notifications.deliver_many"}


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        publish: Publish,
        *,
        publish_many: PublishMany | None = None,
        linger_seconds: float = 0.02,
        max_batch: int = 32,
        cooldown_seconds: float = 30.0,
        slow_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._publish = publish
        self._publish_many = publish_many
        self._linger = linger_seconds
        self._max_batch = max_batch
        self._cooldown = cooldown_seconds
        self._slow = slow_seconds
        self._clock = clock
        # Rows handed over and not yet taken; the thread is woken once for all that arrive while it is
        # awake (a wake-up per report cost the serving thread more than the publish: session 16).
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._awake = False
        # True: rows are pending; False: ``close`` asked.
        self._wake: queue.SimpleQueue[bool] = queue.SimpleQueue()
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
        if not rows:
            return
        with self._lock:
            self._pending.extend(rows)
            if self._awake:
                return  # taken with the others when the thread next looks
            self._awake = True
        self._wake.put(True)

    def close(self, timeout: float = 10.0) -> None:
        """Publish what was handed over (bounded in time); what is left is given back to the relay."""
        if self._thread.is_alive():
            self._wake.put(False)
            self._thread.join(timeout)
        with self._lock:
            left, self._pending = self._pending, []
        self._give_back([row_id for row_id, _ in left])

    def _run(self) -> None:
        while self._wake.get():
            if self._publish_many is not None:
                # The linger: rows handed over meanwhile join the batch, with no wake-up each.
                time.sleep(self._linger)
            self._publish_pending()
        self._publish_pending()  # what came before ``close``

    def _publish_pending(self) -> None:
        """Publish the pending rows, ``max_batch`` at a time, until there are none."""
        while True:
            with self._lock:
                rows = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if not rows:
                    # From here a new row wakes the thread again; none can slip between.
                    self._awake = False
                    return
            self._dispatch(rows)

    def _dispatch(self, rows: Rows) -> None:
        if self._clock() < self._down_until:
            self._give_back([row_id for row_id, _ in rows])
            return
        # One task per kind of task: a list where a batch task exists and there is more than one row.
        groups: dict[str, list[str]] = {}
        for row_id, topic in rows:
            groups.setdefault(task_for(topic), []).append(row_id)
        sends: list[tuple[Callable[[], None], list[str]]] = []
        for task, ids in groups.items():
            batch_task = BATCH_TASK.get(task)
            if self._publish_many is not None and batch_task is not None and len(ids) > 1:
                sends.append((functools.partial(self._publish_many, batch_task, ids), ids))
            else:
                sends += [(functools.partial(self._publish, task, row_id), [row_id]) for row_id in ids]
        for index, (send, ids) in enumerate(sends):
            self._publishing_since = self._clock()
            try:
                send()
            except Exception as exc:
                log.warning("outbox dispatch: the broker refused a task (%s)", type(exc).__name__)
                self._down_until = self._clock() + self._cooldown
                self._give_back([row_id for _, left in sends[index:] for row_id in left])
                return
            finally:
                self._publishing_since = None
            self.published += len(ids)

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


def broker_publisher(broker_settings: Settings) -> tuple[Publish, PublishMany]:
    """Publish through Celery on the broker of ``broker_settings`` (the tasks the workers define): one row
    per task, and a list of rows per task."""
    from workers.celery_app import make_celery

    app = make_celery(broker_settings)

    def publish(task_name: str, outbox_id: str) -> None:
        # No retries here: a refusal gives the rows back to the relay at once.
        app.send_task(task_name, args=[outbox_id], retry=False)

    def publish_many(task_name: str, outbox_ids: list[str]) -> None:
        app.send_task(task_name, args=[outbox_ids], retry=False)

    return publish, publish_many
