"""repeat-perpetrator matching: keyed tokens, and the identifiers as typed sealed in the case

``perpetrator_token`` holds per identifier a keyed token and a keyed case reference (service/crypto/matching.py)
and its kind; no case id, no reporter, no text, no time (docs/clear-columns.md, docs/matching.md).
``case_file.perpetrator_ciphertext`` holds the identifiers as the reporter typed them, sealed with the case key.
Existing cases gave no identifiers: NULL, no tokens.

Revision ID: 0014
Revises: 0015
Create Date: 2027-02-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'perpetrator_token',
        sa.Column('token', sa.LargeBinary(length=32), nullable=False),
        sa.Column('case_ref', sa.LargeBinary(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('token', 'case_ref', name=op.f('pk_perpetrator_token')),
    )
    with op.batch_alter_table('perpetrator_token', schema=None) as batch_op:
        batch_op.create_index('ix_perpetrator_token_case_ref', ['case_ref'], unique=False)
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.add_column(sa.Column('perpetrator_ciphertext', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.drop_column('perpetrator_ciphertext')
    with op.batch_alter_table('perpetrator_token', schema=None) as batch_op:
        batch_op.drop_index('ix_perpetrator_token_case_ref')
    op.drop_table('perpetrator_token')
