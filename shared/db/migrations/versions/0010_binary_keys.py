"""held keys as 32-byte digests (half the index of 64 hex characters)"""
import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'

_CHUNK = 10_000


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE submissions ALTER COLUMN key TYPE bytea USING decode(key, 'hex')")
        return
    _rebuild(sa.LargeBinary(length=32), bytes.fromhex)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE submissions ALTER COLUMN key TYPE varchar(64) USING encode(key, 'hex')")
        return
    _rebuild(sa.String(length=64), bytes.hex)


def _rebuild(key_type: sa.types.TypeEngine, convert) -> None:  # type: ignore[no-untyped-def]
    """SQLite changes a table's key by copying it into a new one."""
    bind = op.get_bind()
    new = sa.Table(
        'submissions_new',
        sa.MetaData(),
        sa.Column('key', key_type, primary_key=True),
        sa.Column('record_id', sa.String(length=32), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    )
    new.create(bind)
    rows = bind.execute(sa.text('SELECT key, record_id, expires_at FROM submissions'))
    while chunk := rows.fetchmany(_CHUNK):
        bind.execute(
            sa.text('INSERT INTO submissions_new (key, record_id, expires_at) VALUES (:k, :r, :e)'),
            [{'k': convert(k), 'r': r, 'e': e} for k, r, e in chunk],
        )
    op.drop_index('ix_submissions_expires_at', table_name='submissions')
    op.drop_table('submissions')
    op.rename_table('submissions_new', 'submissions')
    op.create_index('ix_submissions_expires_at', 'submissions', ['expires_at'], unique=False)
