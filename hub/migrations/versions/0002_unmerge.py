"""unmerge: the identifiers each merge moved, and separations

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import hub.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('merges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('moved', sa.JSON(), nullable=True))
    op.create_table('separations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('profile_a', sa.String(length=36), nullable=False),
    sa.Column('profile_b', sa.String(length=36), nullable=False),
    sa.Column('created_at', hub.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['profile_a'], ['profiles.id'], name=op.f('fk_separations_profile_a_profiles')),
    sa.ForeignKeyConstraint(['profile_b'], ['profiles.id'], name=op.f('fk_separations_profile_b_profiles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_separations')),
    sa.UniqueConstraint('profile_a', 'profile_b', name='uq_separations_pair')
    )
    with op.batch_alter_table('separations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_separations_profile_a'), ['profile_a'], unique=False)
        batch_op.create_index(batch_op.f('ix_separations_profile_b'), ['profile_b'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('separations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_separations_profile_b'))
        batch_op.drop_index(batch_op.f('ix_separations_profile_a'))
    op.drop_table('separations')
    with op.batch_alter_table('merges', schema=None) as batch_op:
        batch_op.drop_column('moved')
