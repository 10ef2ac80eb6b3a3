"""who reports, the KoMo answers in the statistics rows, demo cases

``statistics_extract`` gains the report's optional KoMo answers (motives, bias, triggers, consequences) as
lists of top-level taxonomy codes, on the row of a report's first incident (docs/clear-columns.md). Rows
written before have none: NULL, "not asked", which the coordinators' catalogue leaves out.
``case_file.demo`` marks the cases the demo loader filed (embedded mode only); every existing case is a
reporter's: false. Who reports (``reported_by``) is sealed with the case and needs no column.

Revision ID: 0016
Revises: 0017
Create Date: 2027-02-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANSWER_COLUMNS = ('motives', 'bias', 'triggers', 'consequences')


def upgrade() -> None:
    with op.batch_alter_table('statistics_extract', schema=None) as batch_op:
        for name in ANSWER_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.add_column(sa.Column('demo', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.alter_column('demo', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.drop_column('demo')
    with op.batch_alter_table('statistics_extract', schema=None) as batch_op:
        for name in reversed(ANSWER_COLUMNS):
            batch_op.drop_column(name)
