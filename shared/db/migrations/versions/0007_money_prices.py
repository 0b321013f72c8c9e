"""prices of leads and events as NUMERIC: money never passes through float"""
import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'


def upgrade() -> None:
    for table in ('leads', 'events'):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                'price',
                type_=sa.Numeric(precision=12, scale=2),
                existing_type=sa.Float(),
                postgresql_using='round(price::numeric, 2)',
            )


def downgrade() -> None:
    for table in ('leads', 'events'):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                'price', type_=sa.Float(), existing_type=sa.Numeric(precision=12, scale=2)
            )
