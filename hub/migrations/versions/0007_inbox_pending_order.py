"""inbox: the pending-rows index in claim order (next_attempt_at, id)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def _pending_index(*columns: str) -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_pending')
        batch_op.create_index('ix_inbox_pending', list(columns), unique=False,
                              postgresql_where=PENDING, sqlite_where=PENDING)


def upgrade() -> None:
    _pending_index('next_attempt_at', 'id')


def downgrade() -> None:
    _pending_index('id', 'next_attempt_at')
