"""prices of leads and events as NUMERIC: money never passes through float

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 04:40:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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
