"""pings and their bids; the ping a lead was posted against"""
import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'


def upgrade() -> None:
    with op.batch_alter_table('leads') as batch:
        batch.add_column(sa.Column('ping_id', sa.String(length=32), nullable=True))
    op.create_table(
        'pings',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('flow_id', sa.String(length=200), nullable=False),
        sa.Column('source_id', sa.String(length=200), nullable=False),
        sa.Column('config_version', sa.Integer(), nullable=False),
        sa.Column('dedupe_key', sa.String(length=64), nullable=False),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('price', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('ms', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('lead_id', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_pings_dedupe', 'pings', ['dedupe_key', 'created_at'], unique=False)
    op.create_index('ix_pings_created_at', 'pings', ['created_at'], unique=False)
    op.create_table(
        'ping_bids',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('ping_id', sa.String(length=32), nullable=True),
        sa.Column('lead_id', sa.String(length=32), nullable=True),
        sa.Column('event_id', sa.String(length=32), nullable=True),
        sa.Column('flow_id', sa.String(length=200), nullable=False),
        sa.Column('source_id', sa.String(length=200), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('recipient_id', sa.String(length=200), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('reference', sa.Text(), nullable=True),
        sa.Column('ms', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('pinged', sa.Boolean(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_ping_bids_ping_id', 'ping_bids', ['ping_id'], unique=False)
    op.create_index('ix_ping_bids_lead_id', 'ping_bids', ['lead_id'], unique=False)
    op.create_index('ix_ping_bids_recipient_id', 'ping_bids', ['recipient_id'], unique=False)
    op.create_index('ix_ping_bids_at', 'ping_bids', ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('ping_bids')
    op.drop_table('pings')
    with op.batch_alter_table('leads') as batch:
        batch.drop_column('ping_id')
