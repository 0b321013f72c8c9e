"""a delivery whose return waits for a decision is ``return requested``, as SPEC section 15
spells it (it was stored ``return_requested``)"""
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'


def upgrade() -> None:
    op.execute(
        "UPDATE deliveries SET status = 'return requested' WHERE status = 'return_requested'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE deliveries SET status = 'return_requested' WHERE status = 'return requested'"
    )
