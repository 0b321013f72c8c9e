"""leads searched by e-mail and phone (the console)

Leads stored before take the normal value of their fields named ``email`` and
``phone_1`` (the names LeadConduit uses); leads stored after, the first field of each
type (``shared.leaddata.contacts``).
"""
import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'


def upgrade() -> None:
    with op.batch_alter_table('leads') as batch:
        batch.add_column(sa.Column('email', sa.String(length=254), nullable=True))
        batch.add_column(sa.Column('phone', sa.String(length=254), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        value = "left(fields->'typed'->'{0}'->>'normal', 254)"
        valid = "fields->'typed'->'{0}'->>'valid' = 'true'"
    else:
        value = "substr(json_extract(fields, '$.typed.{0}.normal'), 1, 254)"
        valid = "json_extract(fields, '$.typed.{0}.valid') = 1"
    for column, field in (('email', 'email'), ('phone', 'phone_1')):
        op.execute(
            f"UPDATE leads SET {column} = {value.format(field)} WHERE {valid.format(field)}"
        )
    op.create_index('ix_leads_email', 'leads', ['email'], unique=False)
    op.create_index('ix_leads_phone', 'leads', ['phone'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_leads_phone', table_name='leads')
    op.drop_index('ix_leads_email', table_name='leads')
    with op.batch_alter_table('leads') as batch:
        batch.drop_column('phone')
        batch.drop_column('email')
