"""submission answer: a second tap on the report form is shown its receipt again

A used report form token's row (or an API client's Idempotency-Key's) keeps the receipt page's answer,
sealed under a key that only the token yields (service/reports/answer_again.py), so that the reporter whose
second tap (or resend after a lost answer) got "already sent" instead of the code is shown the code for a
quarter of an hour. ``answer_until`` is the minute that time ends: the minute task erases both then.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('submission_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answer', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('answer_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_submission_token_answer_until'), ['answer_until'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('submission_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_token_answer_until'))
        batch_op.drop_column('answer_until')
        batch_op.drop_column('answer')
