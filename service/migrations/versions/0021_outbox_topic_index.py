"""outbox topic index: the repeat-perpetrator notices of the last day are found without a scan

``service.matching`` tells each case's holders of a match at most once a day, and reads the match notices of
the last day from the outbox to know; the outbox keeps delivered rows for weeks (policies/retention.yaml), so
without an index on (topic, available_at) every match scanned them all while it held the case's lock.

Revision ID: 0021
Revises: 0016
Create Date: 2027-03-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0021'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_message_topic_available', ['topic', 'available_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_message_topic_available')
