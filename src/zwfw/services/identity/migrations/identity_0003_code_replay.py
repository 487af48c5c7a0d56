"""Identity: redeemed authorization codes are kept, with the token family they gave, so that a
replay revokes it (RFC 6749 §4.1.2).

Revision ID: identity_0003
Revises: identity_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0003"
down_revision: str | Sequence[str] | None = "identity_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Codes issued before this revision were deleted when redeemed: none is marked used.
    op.add_column("idn_auth_code", sa.Column("used_at", sa.Float(), nullable=True))
    op.add_column("idn_auth_code", sa.Column("family", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idn_auth_code") as batch:
        batch.drop_column("family")
        batch.drop_column("used_at")
