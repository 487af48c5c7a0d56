"""Identity: clients registered from the settings (provisioning_clients).

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0002"
down_revision: str | Sequence[str] | None = "identity_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every client registered before this revision came through the API or the command line.
    op.add_column(
        "idn_client",
        sa.Column("from_settings", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("idn_client") as batch:
        batch.drop_column("from_settings")
