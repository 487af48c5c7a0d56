"""E-seal service tables: authority, wrapped keys, seals, signers.

Revision ID: eseal_0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "eseal_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("eseal",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eseal_authority",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("root_cert", sa.LargeBinary(), nullable=False),
        sa.Column("maker_cert", sa.LargeBinary(), nullable=False),
        sa.Column("root_key_id", sa.String(128), nullable=False),
        sa.Column("maker_key_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_eseal_authority"),
    )
    op.create_table(
        "eseal_key",
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name="pk_eseal_key"),
    )
    op.create_table(
        "eseal_seal",
        sa.Column("es_id", sa.String(64), nullable=False),
        sa.Column("credit_code", sa.String(18), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("picture", sa.LargeBinary(), nullable=False),
        sa.Column("picture_width_mm", sa.Integer(), nullable=False),
        sa.Column("picture_height_mm", sa.Integer(), nullable=False),
        sa.Column("valid_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seal_der", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(500), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("es_id", name="pk_eseal_seal"),
    )
    op.create_index("ix_eseal_seal_credit_code", "eseal_seal", ["credit_code"])
    op.create_table(
        "eseal_signer",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("es_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("cert_der", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["es_id"], ["eseal_seal.es_id"], name="fk_eseal_signer_es_id_eseal_seal"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_eseal_signer"),
        sa.UniqueConstraint("es_id", "subject", name="uq_eseal_signer_es_id"),
    )
    op.create_index("ix_eseal_signer_es_id", "eseal_signer", ["es_id"])


def downgrade() -> None:
    op.drop_index("ix_eseal_signer_es_id", table_name="eseal_signer")
    op.drop_table("eseal_signer")
    op.drop_index("ix_eseal_seal_credit_code", table_name="eseal_seal")
    op.drop_table("eseal_seal")
    op.drop_table("eseal_key")
    op.drop_table("eseal_authority")
