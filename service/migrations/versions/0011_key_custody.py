"""key custody: keys born with the owner's password, organisation key epochs, recovery shares

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 07:00:00

The schema part, which needs no secret. Existing grants move unchanged into ``member_key_grant`` as epoch 1
(their contexts are format 1's, which epoch 1 keeps) and every organisation with a key gets its epoch-1
row. What needs the server's key pepper (wrapping password-only sealed keys, dropping keys sealed under an
operator-known initial password, rotating every organisation away from its operator-known recovery key)
runs right after in ``service.organisations.upgrade`` from ``rueckhalt migrate``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'organisation_key_epoch',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('organisation_id', sa.String(length=36), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        sa.Column('recovery_wrapped_private_key', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('destroyed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['organisation_id'], ['organisation.id'],
            name=op.f('fk_organisation_key_epoch_organisation_id_organisation'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_organisation_key_epoch')),
        sa.UniqueConstraint('organisation_id', 'epoch', name=op.f('uq_organisation_key_epoch_organisation_id')),
    )
    op.create_table(
        'member_key_grant',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('organisation_id', sa.String(length=36), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('wrapped_grant_key', sa.LargeBinary(), nullable=False),
        sa.Column('sealed_organisation_key', sa.LargeBinary(), nullable=False),
        sa.Column('granted_by', sa.String(length=36), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['organisation_id'], ['organisation.id'],
            name=op.f('fk_member_key_grant_organisation_id_organisation'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['staff_user.id'], name=op.f('fk_member_key_grant_user_id_staff_user'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_member_key_grant')),
        sa.UniqueConstraint('user_id', 'organisation_id', 'epoch', name=op.f('uq_member_key_grant_user_id')),
    )
    with op.batch_alter_table('member_key_grant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_key_grant_organisation_id'), ['organisation_id'], unique=False)

    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('current_epoch', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('recovery_public_key', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('recovery_threshold', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('recovery_share_count', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('recovery_renewal_needed', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table('case_key_grant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('epoch', sa.Integer(), nullable=False, server_default='1'))
    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.alter_column('public_key', existing_type=sa.LargeBinary(), nullable=True)
        batch_op.alter_column('sealed_private_key', existing_type=sa.LargeBinary(), nullable=True)
        batch_op.add_column(sa.Column('initial_password_seal', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('key_inherited', sa.Boolean(), nullable=False, server_default=sa.false()))

    # Data: every organisation with a key is at epoch 1; every grant is epoch 1's.
    op.execute(
        "INSERT INTO organisation_key_epoch (id, organisation_id, epoch, public_key, created_at) "
        "SELECT id, id, 1, public_key, created_at FROM organisation WHERE public_key IS NOT NULL"
    )
    op.execute("UPDATE organisation SET current_epoch = 1 WHERE public_key IS NOT NULL")
    op.execute(
        "INSERT INTO member_key_grant (id, user_id, organisation_id, epoch, wrapped_grant_key, "
        "sealed_organisation_key, granted_by, created_at) "
        "SELECT id, user_id, organisation_id, 1, wrapped_grant_key, sealed_organisation_key, granted_by, "
        "created_at FROM membership"
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_column('wrapped_grant_key')
        batch_op.drop_column('sealed_organisation_key')

    # The server defaults served the data step only; the models set these values themselves.
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.alter_column('current_epoch', server_default=None)
        batch_op.alter_column('recovery_renewal_needed', server_default=None)
    with op.batch_alter_table('case_key_grant', schema=None) as batch_op:
        batch_op.alter_column('epoch', server_default=None)
    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.alter_column('key_inherited', server_default=None)


def downgrade() -> None:
    # Keys made after the upgrade have no place in format 1; going back would lose them. Restore a backup.
    raise RuntimeError("0010 (key custody) cannot be downgraded: restore the backup taken before upgrading")
