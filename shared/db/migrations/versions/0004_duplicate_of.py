"""the lead a duplicate was refused for; held keys by record"""
import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'


def upgrade() -> None:
    with op.batch_alter_table('leads') as batch:
        batch.add_column(sa.Column('duplicate_of', sa.String(length=32), nullable=True))
    op.create_index('ix_submissions_record_id', 'submissions', ['record_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_submissions_record_id', table_name='submissions')
    with op.batch_alter_table('leads') as batch:
        batch.drop_column('duplicate_of')
