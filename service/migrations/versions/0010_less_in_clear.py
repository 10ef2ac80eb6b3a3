"""less in clear: a week-wide reminder date instead of the Strafantrag deadline; coarse case-work times

The exact incident date and the deadline (incident date plus three months) stay in the sealed incident payload
only. A migration holds no case key, so it cannot seal anything; it does not need to: the payload has always
held the date, and the case page now computes the deadline from it. What the migration can do without a key,
it does: it turns each clear deadline into the Monday of the week of its first reminder, drops the deadline
and the incident month (no query reads the incident's; the statistics row keeps its own, unlinked), and
truncates the case-work timestamps to the precision their queries need (docs/clear-columns.md).

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-12 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from service.db import UTCDateTime

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the rules at this revision (service/cases/deadlines.py may move on; this must not).
_FIRST_REMINDER_DAYS = 14
_LOCAL_ZONE = 'Europe/Berlin'

# (table, primary key, timestamp columns, step in seconds)
_TIMES: tuple[tuple[str, str, tuple[str, ...], int], ...] = (
    ('case_file', 'id', ('ack_deadline_at', 'acknowledged_at', 'closed_at', 'created_at', 'updated_at'), 60),
    ('incident', 'id', ('created_at',), 60),
    ('case_key_grant', 'id', ('granted_at', 'opened_at'), 60),
    ('routing_record', 'id', ('created_at',), 60),
    ('attachment', 'id', ('created_at',), 60),
    ('case_note', 'id', ('created_at',), 60),
    ('reminder_log', 'id', ('created_at',), 60),
    # A message's created_at keeps its precision: the conversation is shown in that order.
    ('case_message', 'id', ('read_at',), 1),
)


def _today() -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(_LOCAL_ZONE)).date()


def _reminder_week(deadline: date, today: date) -> date | None:
    if deadline < today:
        return None  # nothing left to remind of; the case page still shows the deadline from the payload
    first = deadline - timedelta(days=_FIRST_REMINDER_DAYS)
    return first - timedelta(days=first.weekday())


def _truncate(value: datetime, step: int) -> datetime:
    midnight = value.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = int((value - midnight).total_seconds())
    return midnight + timedelta(seconds=elapsed - elapsed % step)


def _coarsen_times() -> None:
    connection = op.get_bind()
    for table_name, key, columns, step in _TIMES:
        table = sa.table(table_name, sa.column(key, sa.String), *(sa.column(c, UTCDateTime()) for c in columns))
        for row in connection.execute(sa.select(table)).mappings().all():
            changed = {
                name: _truncate(row[name].astimezone(UTC), step)
                for name in columns
                if row[name] is not None and row[name] != _truncate(row[name].astimezone(UTC), step)
            }
            if changed:
                connection.execute(table.update().where(table.c[key] == row[key]).values(**changed))


def upgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complaint_reminder_on', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_incident_complaint_reminder_on'), ['complaint_reminder_on'], unique=False)

    incident = sa.table(
        'incident',
        sa.column('id', sa.String),
        sa.column('complaint_deadline_on', sa.Date),
        sa.column('complaint_reminder_on', sa.Date),
    )
    connection = op.get_bind()
    today = _today()
    rows = connection.execute(
        sa.select(incident.c.id, incident.c.complaint_deadline_on).where(incident.c.complaint_deadline_on.is_not(None))
    ).all()
    for incident_id, deadline in rows:
        connection.execute(
            incident.update()
            .where(incident.c.id == incident_id)
            .values(complaint_reminder_on=_reminder_week(deadline, today))
        )

    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('complaint_deadline_on')
        batch_op.drop_column('incident_month')

    _coarsen_times()


def downgrade() -> None:
    """The exact deadline cannot come back without the case key: the old column gets the first day of the
    deadline's week (the earliest the deadline can be, so the old schedule reminds early, never late), and
    the incident month stays empty. Truncated times stay truncated."""
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complaint_deadline_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('incident_month', sa.String(length=7), nullable=True))

    incident = sa.table(
        'incident',
        sa.column('id', sa.String),
        sa.column('complaint_deadline_on', sa.Date),
        sa.column('complaint_reminder_on', sa.Date),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(incident.c.id, incident.c.complaint_reminder_on).where(incident.c.complaint_reminder_on.is_not(None))
    ).all()
    for incident_id, first in rows:
        connection.execute(
            incident.update()
            .where(incident.c.id == incident_id)
            .values(complaint_deadline_on=first + timedelta(days=_FIRST_REMINDER_DAYS))
        )

    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_complaint_reminder_on'))
        batch_op.drop_column('complaint_reminder_on')
