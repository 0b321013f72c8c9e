"""resubmissions, claims by worker"""
import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'


def upgrade() -> None:
    op.create_table('submissions',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_submissions_expires_at', 'submissions', ['expires_at'], unique=False)
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('claimed_by', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('claimed_by')
    op.drop_index('ix_submissions_expires_at', table_name='submissions')
    op.drop_table('submissions')
