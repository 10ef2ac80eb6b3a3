"""self-check kept under a code: the sealed rows, and the coordinators' answer counts

``selfcheck_saved`` holds, per code a municipality chose to keep its self-check under, a keyed hash of the
code, a salt and the sealed takes (docs/crypto-formats.md, "Self-check code"); nothing else, no time.
``selfcheck_tally`` counts the answers of each row's newest take, not linked to any row
(docs/clear-columns.md, "selfcheck_tally").

Revision ID: 0017
Revises: 0018
Create Date: 2027-02-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'selfcheck_saved',
        sa.Column('lookup_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('salt', sa.LargeBinary(length=32), nullable=False),
        sa.Column('sealed', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('lookup_hash', name=op.f('pk_selfcheck_saved')),
    )
    op.create_table(
        'selfcheck_tally',
        sa.Column('question_id', sa.String(length=80), nullable=False),
        sa.Column('answer', sa.String(length=8), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('question_id', 'answer', name=op.f('pk_selfcheck_tally')),
    )


def downgrade() -> None:
    op.drop_table('selfcheck_tally')
    op.drop_table('selfcheck_saved')
