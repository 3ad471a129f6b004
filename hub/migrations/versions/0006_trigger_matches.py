"""triggers: the profiles each trigger's rule holds for (what edge detection compares with)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
import hub.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trigger_matches',
    sa.Column('trigger', sa.String(length=64), nullable=False),
    sa.Column('profile_id', sa.String(length=36), nullable=False),
    sa.Column('matched_at', hub.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['profile_id'], ['profiles.id'], name=op.f('fk_trigger_matches_profile_id_profiles')),
    sa.PrimaryKeyConstraint('trigger', 'profile_id', name=op.f('pk_trigger_matches'))
    )
    with op.batch_alter_table('trigger_matches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trigger_matches_profile_id'), ['profile_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('trigger_matches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trigger_matches_profile_id'))
    op.drop_table('trigger_matches')
