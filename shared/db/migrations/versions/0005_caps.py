"""cap counters, cap slots held by deliveries, recipient states (pause); held keys
are let go by key (no index of their records)
"""
import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'


def upgrade() -> None:
    # recipient duplicate keys are let go by key now (shared.resubmits.forget)
    op.drop_index('ix_submissions_record_id', table_name='submissions')
    op.create_table(
        'cap_counters',
        sa.Column('cap_key', sa.String(length=300), nullable=False),
        sa.Column('period', sa.String(length=32), nullable=False),
        sa.Column('used', sa.Integer(), nullable=False),
        sa.Column('revenue', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('cap_key', 'period'),
    )
    op.create_index('ix_cap_counters_updated_at', 'cap_counters', ['updated_at'], unique=False)
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('cap_holds', sa.Text(), nullable=True))
    op.create_table(
        'recipient_states',
        sa.Column('recipient_id', sa.String(length=200), nullable=False),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('recipient_id'),
    )


def downgrade() -> None:
    op.create_index('ix_submissions_record_id', 'submissions', ['record_id'], unique=False)
    op.drop_table('recipient_states')
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('cap_holds')
    op.drop_index('ix_cap_counters_updated_at', table_name='cap_counters')
    op.drop_table('cap_counters')
