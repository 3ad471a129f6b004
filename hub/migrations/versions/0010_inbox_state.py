"""inbox: each record's state (status, attempts, due time, error, processed time) in a narrow table

A record is written once; its state changes at least once. PostgreSQL writes a whole new version of a
row on each update, and a new entry in each of its indexes, so marking a batch processed rewrote every
record with its body and added an entry to the (connector, key) index at a random place. Kept apart,
the update rewrites a narrow row, indexed by the record's id only.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

import hub.models

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
STATE = ('status', 'attempts', 'next_attempt_at', 'error', 'processed_at')
FOREIGN_KEY = 'fk_inbox_state_inbox_id_inbox'


def _state_columns(required: bool) -> list[sa.Column]:
    """The state's columns (``required``: status, attempts and next_attempt_at NOT NULL)."""
    return [
        sa.Column('status', sa.String(length=16), nullable=not required),
        sa.Column('attempts', sa.Integer(), nullable=not required),
        sa.Column('next_attempt_at', hub.models.UTCDateTime(timezone=True), nullable=not required),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('processed_at', hub.models.UTCDateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    # the foreign key comes last: SQLite rebuilds the inbox to drop its columns, and would refuse
    # to drop the old one while rows of another table refer to it
    op.create_table(
        'inbox_state',
        sa.Column('inbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False,
                  nullable=False),
        *_state_columns(required=True),
        sa.PrimaryKeyConstraint('inbox_id', name='pk_inbox_state'),
    )
    columns = ', '.join(STATE)
    op.execute(f'INSERT INTO inbox_state (inbox_id, {columns}) SELECT id, {columns} FROM inbox')
    op.create_index('ix_inbox_state_pending', 'inbox_state', ['next_attempt_at', 'inbox_id'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_pending')
        for column in STATE:
            batch_op.drop_column(column)
    with op.batch_alter_table('inbox_state', schema=None) as batch_op:
        batch_op.create_foreign_key(FOREIGN_KEY, 'inbox', ['inbox_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('inbox_state', schema=None) as batch_op:
        batch_op.drop_constraint(FOREIGN_KEY, type_='foreignkey')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        for column in _state_columns(required=False):
            batch_op.add_column(column)
    columns = ', '.join(STATE)
    op.execute(f'UPDATE inbox SET ({columns}) = (SELECT {columns} FROM inbox_state '
               'WHERE inbox_state.inbox_id = inbox.id)')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        for column in _state_columns(required=True)[:3]:
            batch_op.alter_column(column.name, existing_type=column.type, nullable=False)
        batch_op.create_index('ix_inbox_pending', ['next_attempt_at', 'id'], unique=False,
                              postgresql_where=PENDING, sqlite_where=PENDING)
    op.drop_table('inbox_state')
