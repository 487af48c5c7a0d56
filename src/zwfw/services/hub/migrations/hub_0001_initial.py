"""Hub: province registry, reports, aggregated catalog, cases, evaluations, licence uses.

Revision ID: hub_0001
Revises:
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hub_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("hub",)
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "hub_province",
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("oauth_client_id", sa.String(200), nullable=False),
        sa.Column("tls_fingerprint", sa.String(64), nullable=False),
        sa.Column("tls_subject", sa.String(500), nullable=False),
        sa.Column("signing_certificate", sa.Text(), nullable=False),
        sa.Column("signing_key_id", sa.String(64), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("region_code", name="pk_hub_province"),
        sa.UniqueConstraint("oauth_client_id", name="uq_hub_province_oauth_client_id"),
        sa.UniqueConstraint("tls_fingerprint", name="uq_hub_province_tls_fingerprint"),
    )
    op.create_table(
        "hub_report",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("received_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hub_report"),
        sa.UniqueConstraint("sender", "idempotency_key", name="uq_hub_report_sender"),
    )
    op.create_index("ix_hub_report_subject", "hub_report", ["subject"])
    op.create_table(
        "hub_catalog_item",
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("code", sa.String(33), nullable=False),
        sa.Column("implementation_code", sa.String(31), nullable=False),
        sa.Column("basic_code", sa.String(12), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("guide", sa.JSON(), nullable=False),
        sa.Column("received_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("region_code", "code", name="pk_hub_catalog_item"),
    )
    op.create_index(
        "ix_hub_catalog_item_implementation_code", "hub_catalog_item", ["implementation_code"]
    )
    op.create_index("ix_hub_catalog_item_basic_code", "hub_catalog_item", ["basic_code"])
    op.create_table(
        "hub_case",
        sa.Column("case_number", sa.String(43), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("implementation_code", sa.String(31), nullable=False),
        sa.Column("handling_item_code", sa.String(33), nullable=True),
        sa.Column("item_name", sa.String(300), nullable=False),
        sa.Column("dept_code", sa.String(18), nullable=False),
        sa.Column("dept_name", sa.String(200), nullable=False),
        sa.Column("user_type", sa.String(1), nullable=False),
        sa.Column("channel", sa.String(20), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("apply_time", _tz(), nullable=True),
        sa.Column("accept_time", _tz(), nullable=True),
        sa.Column("promised_days", sa.Integer(), nullable=True),
        sa.Column("promise_date", sa.Date(), nullable=True),
        sa.Column("finish_time", _tz(), nullable=True),
        sa.Column("result", sa.String(20), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("licence_materials", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("case_number", name="pk_hub_case"),
    )
    op.create_index("ix_hub_case_region_code", "hub_case", ["region_code"])
    op.create_index("ix_hub_case_promise_date", "hub_case", ["promise_date"])
    op.create_index("ix_hub_case_finish_time", "hub_case", ["finish_time"])
    op.create_table(
        "hub_evaluation",
        sa.Column("case_number", sa.String(43), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("implementation_code", sa.String(31), nullable=False),
        sa.Column("dept_code", sa.String(18), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("rated_at", _tz(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("followed_up", sa.Boolean(), nullable=False),
        sa.Column("rectification_state", sa.String(16), nullable=True),
        sa.Column("rectification_deadline", sa.Date(), nullable=True),
        sa.Column("rectification_closed_at", _tz(), nullable=True),
        sa.Column("rectification_response", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("case_number", name="pk_hub_evaluation"),
    )
    op.create_index("ix_hub_evaluation_region_code", "hub_evaluation", ["region_code"])
    op.create_index(
        "ix_hub_evaluation_rectification_deadline", "hub_evaluation", ["rectification_deadline"]
    )
    op.create_table(
        "hub_licence_use",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("requester_region", sa.String(6), nullable=False),
        sa.Column("issuer_region", sa.String(6), nullable=False),
        sa.Column("identifier", sa.String(128), nullable=False),
        sa.Column("cause", sa.String(500), nullable=False),
        sa.Column("copy_expires_at", _tz(), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("case_number", sa.String(43), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("issuer_status", sa.Integer(), nullable=True),
        sa.Column("copy_id", sa.String(100), nullable=True),
        sa.Column("copy_sha256", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_hub_licence_use"),
    )
    op.create_index("ix_hub_licence_use_at", "hub_licence_use", ["at"])
    op.create_index("ix_hub_licence_use_requester_region", "hub_licence_use", ["requester_region"])
    op.create_index("ix_hub_licence_use_issuer_region", "hub_licence_use", ["issuer_region"])


def downgrade() -> None:
    for table in (
        "hub_licence_use",
        "hub_evaluation",
        "hub_case",
        "hub_catalog_item",
        "hub_report",
        "hub_province",
    ):
        op.drop_table(table)
