"""collection machine: a debtor's message of the day is claimed; the read model names the next
step's message key

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_day",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("debtor_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_message_day_debtor_id"), "message_day", ["debtor_id"], unique=False)
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_message_key", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_column("next_message_key")
    op.drop_index(op.f("ix_message_day_debtor_id"), table_name="message_day")
    op.drop_table("message_day")
