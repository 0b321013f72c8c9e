"""the ledger; a lead's cost, and whether intake accepted it; returns and their decisions"""
import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'


def upgrade() -> None:
    with op.batch_alter_table('leads') as batch:
        batch.add_column(sa.Column('cost', sa.Numeric(precision=12, scale=2), nullable=True))
        batch.add_column(sa.Column('accepted', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('sold', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('returned', sa.Boolean(), nullable=True))
    # the leads stored before: sold and returned from their deliveries
    op.execute(
        "UPDATE leads SET "
        "sold = EXISTS (SELECT 1 FROM deliveries d WHERE d.lead_id = leads.id AND d.status "
        "IN ('delivered', 'return_requested', 'returned', 'converted')), "
        "returned = EXISTS (SELECT 1 FROM deliveries d WHERE d.lead_id = leads.id "
        "AND d.status = 'returned')"
    )
    op.create_table(
        'ledger',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('lead_id', sa.String(length=32), nullable=False),
        sa.Column('event_id', sa.String(length=32), nullable=True),
        sa.Column('party_type', sa.String(length=16), nullable=False),
        sa.Column('party', sa.String(length=200), nullable=False),
        sa.Column('flow_id', sa.String(length=200), nullable=False),
        sa.Column('source_id', sa.String(length=200), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_ledger_lead_id', 'ledger', ['lead_id'], unique=False)
    op.create_index('ix_ledger_received_at', 'ledger', ['received_at'], unique=False)
    op.create_index('ix_ledger_party_at', 'ledger', ['party_type', 'party', 'at'], unique=False)


    op.create_table(
        'returns',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('lead_id', sa.String(length=32), nullable=False),
        sa.Column('event_id', sa.String(length=32), nullable=False),
        sa.Column('recipient_id', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decision_reason', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_returns_lead_id', 'returns', ['lead_id'], unique=False)
    op.create_index('ix_returns_event_id', 'returns', ['event_id'], unique=False)
    op.create_index('ix_returns_status', 'returns', ['status'], unique=False)
    op.create_index(
        'ix_returns_recipient_at', 'returns', ['recipient_id', 'requested_at'], unique=False
    )


def downgrade() -> None:
    op.drop_table('returns')
    op.drop_index('ix_ledger_party_at', table_name='ledger')
    op.drop_index('ix_ledger_received_at', table_name='ledger')
    op.drop_index('ix_ledger_lead_id', table_name='ledger')
    op.drop_table('ledger')
    with op.batch_alter_table('leads') as batch:
        batch.drop_column('returned')
        batch.drop_column('sold')
        batch.drop_column('accepted')
        batch.drop_column('cost')
