"""lookup key id: which lookup pepper a case's receipt hash is under

``case_file.lookup_key_id`` names the lookup pepper of ``lookup_hash`` by a public 4-byte id (hex; an HMAC of
a constant under the pepper, as staff keys name their key pepper). During a rotation of the lookup pepper
(`rueckhalt secrets rotate lookup_pepper`) receipts are found under the new or the previous pepper, and a case
is re-keyed at its reporter's next sign-in; the id counts the cases still under the previous one
(`rueckhalt secrets status`). Existing rows are under the pepper in force now: NULL until the first rotation
names it (the rotation fills it in; it holds that pepper).

Revision ID: 0020
Revises: 0013
Create Date: 2027-02-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lookup_key_id', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.drop_column('lookup_key_id')
