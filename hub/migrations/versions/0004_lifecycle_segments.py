"""lifecycle and segments: each profile's stage history, and segment membership

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import hub.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('segment_members',
    sa.Column('segment', sa.String(length=64), nullable=False),
    sa.Column('profile_id', sa.String(length=36), nullable=False),
    sa.Column('entered_at', hub.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['profile_id'], ['profiles.id'], name=op.f('fk_segment_members_profile_id_profiles')),
    sa.PrimaryKeyConstraint('segment', 'profile_id', name=op.f('pk_segment_members'))
    )
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.create_index('ix_segment_members_entered', ['segment', 'entered_at', 'profile_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_segment_members_profile_id'), ['profile_id'], unique=False)
    op.create_table('stage_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('profile_id', sa.String(length=36), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('entered_at', hub.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('exited_at', hub.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['profile_id'], ['profiles.id'], name=op.f('fk_stage_history_profile_id_profiles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_history'))
    )
    with op.batch_alter_table('stage_history', schema=None) as batch_op:
        batch_op.create_index('ix_stage_history_entered', ['stage', 'entered_at'], unique=False)
        batch_op.create_index('ix_stage_history_exited', ['stage', 'exited_at'], unique=False)
        batch_op.create_index('ix_stage_history_profile', ['profile_id', 'entered_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stage_history', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_history_profile')
        batch_op.drop_index('ix_stage_history_exited')
        batch_op.drop_index('ix_stage_history_entered')
    op.drop_table('stage_history')
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_members_profile_id'))
        batch_op.drop_index('ix_segment_members_entered')
    op.drop_table('segment_members')
