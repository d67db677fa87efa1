"""debtor portal: link keys, checkout sessions, dispute attachments

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_key",
        sa.Column("debtor_id", sa.String(length=64), sa.ForeignKey("debtor.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("debtor_id"),
    )
    op.create_table(
        "portal_checkout",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("debtor_id", sa.String(length=64), sa.ForeignKey("debtor.id"), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_event_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id"),
    )
    op.create_index("ix_portal_checkout_debtor_id", "portal_checkout", ["debtor_id"])
    op.create_table(
        "portal_attachment",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column(
            "invoice_number", sa.String(length=64), sa.ForeignKey("invoice.number"), nullable=False
        ),
        sa.Column("dispute_id", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portal_attachment_invoice_number", "portal_attachment", ["invoice_number"])
    op.create_index("ix_portal_attachment_dispute_id", "portal_attachment", ["dispute_id"])


def downgrade() -> None:
    op.drop_table("portal_attachment")
    op.drop_table("portal_checkout")
    op.drop_table("portal_key")
