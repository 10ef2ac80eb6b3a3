"""reporter flows: used submission tokens; the time a further incident reopened a closed case

``submission_token`` holds a keyed hash of each used form token with the hour it expires, and nothing that
links it to a case (service/reports/submissions.py). ``case_file.reopened_at`` is when a further incident
last opened a closed case again: escalation timers count from it (docs/clear-columns.md: the minute, as
the incident's own ``created_at``). Existing cases were never reopened: NULL.

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-20 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'submission_token',
        sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_submission_token')),
    )
    with op.batch_alter_table('submission_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submission_token_expires_at'), ['expires_at'], unique=False)
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reopened_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.drop_column('reopened_at')
    with op.batch_alter_table('submission_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_token_expires_at'))
    op.drop_table('submission_token')
