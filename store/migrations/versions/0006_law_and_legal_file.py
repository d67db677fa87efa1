"""late-payment law and the legal file: an invoice's contractual rate, messages as sent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 11:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("interest_clause", sa.String(length=40), nullable=True))
    op.create_table(
        "sent_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_key", sa.String(length=200), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("to_email", sa.String(length=320), nullable=False),
        sa.Column("to_name", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("html", sa.String(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["invoice_number"], ["invoice.number"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("interaction_key"),
    )
    op.create_index(
        op.f("ix_sent_message_invoice_number"), "sent_message", ["invoice_number"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sent_message_invoice_number"), table_name="sent_message")
    op.drop_table("sent_message")
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_column("interest_clause")
