"""changes: drop the profile_id index (the feed is read by id; a drain wrote one random entry per change)

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_index('ix_changes_profile_id')


def downgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.create_index('ix_changes_profile_id', ['profile_id'], unique=False)
