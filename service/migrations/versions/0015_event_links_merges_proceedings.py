"""the same event, merged cases, proceedings (issue 18)

``event_link``: incidents declared the same event share an ``event_id`` (which incidents belong together is
clear; docs/clear-columns.md). ``statistics_extract.event_key``: a keyed token of that event id, so the
statistics count an event once without leading back to a case. ``merge_proposal``: a counsellor's proposal to
merge a newer case into an older one, waiting for the reporter's confirmation; the older case's key in it is
sealed under the newer case's key. ``incident.proceedings``: the criminal proceedings of an incident, sealed
with the case key. Existing rows: no links, no proposals, no proceedings (NULL).

Revision ID: 0015
Revises: 0020
Create Date: 2027-02-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'event_link',
        sa.Column('incident_id', sa.String(length=36), nullable=False),
        sa.Column('event_id', sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ['incident_id'], ['incident.id'], name=op.f('fk_event_link_incident_id_incident'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_event_link')),
    )
    with op.batch_alter_table('event_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_link_event_id'), ['event_id'], unique=False)
    op.create_table(
        'merge_proposal',
        sa.Column('newer_case_id', sa.String(length=36), nullable=False),
        sa.Column('older_case_id', sa.String(length=36), nullable=False),
        sa.Column('older_key', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['newer_case_id'],
            ['case_file.id'],
            name=op.f('fk_merge_proposal_newer_case_id_case_file'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['older_case_id'],
            ['case_file.id'],
            name=op.f('fk_merge_proposal_older_case_id_case_file'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('newer_case_id', name=op.f('pk_merge_proposal')),
    )
    with op.batch_alter_table('merge_proposal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merge_proposal_older_case_id'), ['older_case_id'], unique=False)
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('proceedings', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('statistics_extract', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('statistics_extract', schema=None) as batch_op:
        batch_op.drop_column('event_key')
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('proceedings')
    with op.batch_alter_table('merge_proposal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merge_proposal_older_case_id'))
    op.drop_table('merge_proposal')
    with op.batch_alter_table('event_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_link_event_id'))
    op.drop_table('event_link')
