"""support directory: per-Land offices and offers for decision makers, with source and "geprüft am"

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-06 13:00:00

A new table only; the shipped entries (service/knowledge/support.yaml) are added by ``rueckhalt migrate``
like the shipped articles. Numbered 0018 for the branch it was written on: when merged after 0014–0017,
``down_revision`` names the then newest revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'support_entry',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('seed_key', sa.String(length=80), nullable=True),
        sa.Column('land', sa.String(length=4), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('description_de', sa.String(length=1000), nullable=False),
        sa.Column('description_en', sa.String(length=1000), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=True),
        sa.Column('source', sa.String(length=500), nullable=False),
        sa.Column('source_url', sa.String(length=500), nullable=True),
        sa.Column('author_id', sa.String(length=36), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reviewed_by_id', sa.String(length=36), nullable=True),
        sa.Column('awaiting_review', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['author_id'], ['staff_user.id'],
            name=op.f('fk_support_entry_author_id_staff_user'), ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['reviewed_by_id'], ['staff_user.id'],
            name=op.f('fk_support_entry_reviewed_by_id_staff_user'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_support_entry')),
        sa.UniqueConstraint('seed_key', name=op.f('uq_support_entry_seed_key')),
    )
    with op.batch_alter_table('support_entry', schema=None) as batch_op:
        batch_op.create_index('ix_support_entry_land', ['land'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('support_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_support_entry_land')
    op.drop_table('support_entry')
