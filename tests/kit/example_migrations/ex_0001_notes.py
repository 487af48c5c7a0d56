"""Example service: notes.

Revision ID: ex_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ex_0001"
down_revision = None
branch_labels = ("example",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "example_note",
        sa.Column("code", sa.String(40), primary_key=True),
        sa.Column("text", sa.String(500), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("example_note")
