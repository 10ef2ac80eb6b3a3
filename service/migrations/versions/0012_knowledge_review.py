"""knowledge review: Stand, geprüft am, and a new article waiting for a second coordinator

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 12:00:00

Existing articles are published and count as checked on the day of their version (their ``created_at``),
so the yearly reminder starts from there.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('knowledge_article', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stand', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reviewed_by_id', sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column('awaiting_review', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_knowledge_article_reviewed_by_id_staff_user'),
            'staff_user',
            ['reviewed_by_id'],
            ['id'],
            ondelete='SET NULL',
        )
    op.execute("UPDATE knowledge_article SET reviewed_at = created_at WHERE reviewed_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('knowledge_article', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_knowledge_article_reviewed_by_id_staff_user'), type_='foreignkey'
        )
        batch_op.drop_column('awaiting_review')
        batch_op.drop_column('reviewed_by_id')
        batch_op.drop_column('reviewed_at')
        batch_op.drop_column('stand')
