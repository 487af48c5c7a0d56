"""E-licence service tables: types, licences, annotated copies, usage records.

Revision ID: elicense_0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "elicense_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("elicense",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "elicense_type",
        sa.Column("type_code", sa.String(21), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("defining_authority_name", sa.String(200), nullable=False),
        sa.Column("data_schema", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("type_code", name="pk_elicense_type"),
    )
    op.create_table(
        "elicense_licence",
        sa.Column("identifier", sa.String(128), nullable=False),
        sa.Column("type_code", sa.String(21), nullable=False),
        sa.Column("issuer_code", sa.String(18), nullable=False),
        sa.Column("licence_number", sa.String(100), nullable=False),
        sa.Column("holder_sub", sa.String(200), nullable=False),
        sa.Column("holder_name", sa.String(200), nullable=False),
        sa.Column("holder_code", sa.String(64), nullable=False),
        sa.Column("holder_code_type", sa.String(8), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("es_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(2), nullable=False),
        sa.Column("status_reason", sa.String(500), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["type_code"],
            ["elicense_type.type_code"],
            name="fk_elicense_licence_type_code_elicense_type",
        ),
        sa.PrimaryKeyConstraint("identifier", name="pk_elicense_licence"),
    )
    op.create_index("ix_elicense_licence_type_code", "elicense_licence", ["type_code"])
    op.create_index("ix_elicense_licence_issuer_code", "elicense_licence", ["issuer_code"])
    op.create_index("ix_elicense_licence_holder_sub", "elicense_licence", ["holder_sub"])
    op.create_table(
        "elicense_copy",
        sa.Column("copy_id", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(128), nullable=False),
        sa.Column("made_by", sa.String(200), nullable=False),
        sa.Column("cause", sa.String(500), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["identifier"],
            ["elicense_licence.identifier"],
            name="fk_elicense_copy_identifier_elicense_licence",
        ),
        sa.PrimaryKeyConstraint("copy_id", name="pk_elicense_copy"),
    )
    op.create_index("ix_elicense_copy_identifier", "elicense_copy", ["identifier"])
    op.create_table(
        "elicense_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("identifier", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("cause", sa.String(500), nullable=False),
        sa.Column("copy_id", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["identifier"],
            ["elicense_licence.identifier"],
            name="fk_elicense_usage_identifier_elicense_licence",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_elicense_usage"),
    )
    op.create_index("ix_elicense_usage_identifier", "elicense_usage", ["identifier"])


def downgrade() -> None:
    op.drop_index("ix_elicense_usage_identifier", table_name="elicense_usage")
    op.drop_table("elicense_usage")
    op.drop_index("ix_elicense_copy_identifier", table_name="elicense_copy")
    op.drop_table("elicense_copy")
    op.drop_index("ix_elicense_licence_holder_sub", table_name="elicense_licence")
    op.drop_index("ix_elicense_licence_issuer_code", table_name="elicense_licence")
    op.drop_index("ix_elicense_licence_type_code", table_name="elicense_licence")
    op.drop_table("elicense_licence")
    op.drop_table("elicense_type")
