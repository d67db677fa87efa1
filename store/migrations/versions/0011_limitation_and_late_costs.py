"""limitation and late costs: the invoice's limitation date and its late-payment costs in the
read model

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-02 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limitation_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("late_payment_costs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_column("late_payment_costs")
        batch_op.drop_column("limitation_date")
