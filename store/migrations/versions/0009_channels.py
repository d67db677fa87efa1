"""channels: debtors' phone and postal address, letters by post, call scripts and assignees

Revision ID: 0009
Revises: 0008 (0003 on the branch before main was merged)
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("debtor", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("sms_stopped_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("phone_invalid_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("postal_address", sa.JSON(), nullable=True))
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("script", sa.String(), nullable=True))
        batch_op.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.create_index(batch_op.f("ix_task_assignee"), ["assignee"], unique=False)
    op.create_table(
        "letter",
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("registered", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=True),
        sa.Column("provider_recipient_ref", sa.String(length=128), nullable=True),
        sa.Column("tracking_number", sa.String(length=32), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("last_event", sa.String(length=200), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_on", sa.Date(), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome_by", sa.String(length=128), nullable=True),
        sa.Column("addresses", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["invoice_number"], ["invoice.number"]),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_letter_invoice_number"), "letter", ["invoice_number"], unique=False)
    op.create_index(op.f("ix_letter_status"), "letter", ["status"], unique=False)
    op.create_index(op.f("ix_letter_tracking_number"), "letter", ["tracking_number"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_letter_tracking_number"), table_name="letter")
    op.drop_index(op.f("ix_letter_status"), table_name="letter")
    op.drop_index(op.f("ix_letter_invoice_number"), table_name="letter")
    op.drop_table("letter")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_assignee"))
        batch_op.drop_column("attempt")
        batch_op.drop_column("script")
        batch_op.drop_column("assignee")
    with op.batch_alter_table("debtor", schema=None) as batch_op:
        batch_op.drop_column("postal_address")
        batch_op.drop_column("phone_invalid_at")
        batch_op.drop_column("sms_stopped_at")
        batch_op.drop_column("phone")
