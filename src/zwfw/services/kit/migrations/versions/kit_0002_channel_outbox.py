"""Channel replay cache and the durable outbox (province↔hub interconnection).

Revision ID: kit_0002
Revises: kit_0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "kit_0002"
down_revision: str | Sequence[str] | None = "kit_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_nonce",
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sender", "nonce", name="pk_channel_nonce"),
    )
    op.create_index("ix_channel_nonce_expires_at", "channel_nonce", ["expires_at"])
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_message"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_message_idempotency_key"),
    )
    op.create_index("ix_outbox_message_state", "outbox_message", ["state"])
    op.create_index("ix_outbox_message_next_attempt_at", "outbox_message", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_message_next_attempt_at", table_name="outbox_message")
    op.drop_index("ix_outbox_message_state", table_name="outbox_message")
    op.drop_table("outbox_message")
    op.drop_index("ix_channel_nonce_expires_at", table_name="channel_nonce")
    op.drop_table("channel_nonce")
