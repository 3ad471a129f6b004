"""key columns compared byte by byte (collation "C") on PostgreSQL

Ids, identifiers, source names and inbox keys are machine keys: their order means nothing to a
reader, and under a locale's collation (even C.UTF-8) every index probe, unique check and
foreign-key check compares them through strcoll. SQLite has no collations to change.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

#: table -> (column, length) of every key column
KEYS = {
    'inbox': (('connector', 64), ('key', 255)),
    'profiles': (('id', 36), ('merged_into', 36)),
    'identities': (('profile_id', 36), ('type', 64), ('value', 320)),
    'traits': (('profile_id', 36), ('name', 64)),
    'activities': (('profile_id', 36), ('type', 64), ('source', 64), ('source_id', 255)),
    'merges': (('survivor_id', 36), ('merged_id', 36)),
    'separations': (('profile_a', 36), ('profile_b', 36)),
    'suppressions': (('identifier_hash', 64),),
    'stage_history': (('profile_id', 36),),
    'segment_members': (('profile_id', 36),),
    'trigger_matches': (('profile_id', 36),),
}


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, columns in KEYS.items():  # one rewrite of each table and its indexes
        changes = ', '.join(f'ALTER COLUMN {name} TYPE varchar({length}) COLLATE "{collation}"'
                            for name, length in columns)
        op.execute(f'ALTER TABLE {table} {changes}')


def upgrade() -> None:
    _collate('C')


def downgrade() -> None:
    _collate('default')
