"""Hub: the channel key each report was verified with.

Revision ID: hub_0002
Revises: hub_0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hub_0002"
down_revision: str | Sequence[str] | None = "hub_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: reports taken before this revision did not record it.
    op.add_column("hub_report", sa.Column("signing_key_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_report") as batch:
        batch.drop_column("signing_key_id")
