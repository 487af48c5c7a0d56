"""Hall tables: items, cases with steps and materials, case-number counters, evaluations,
rectification tasks.

Revision ID: hall_0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hall_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("hall",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hall_case_sequence",
        sa.Column("implementation_code", sa.String(length=31), nullable=False),
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("implementation_code", "day", name=op.f("pk_hall_case_sequence")),
    )
    op.create_table(
        "hall_item",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("implementation_code", sa.String(length=31), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("dept_code", sa.String(length=18), nullable=False),
        sa.Column("guide", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_item")),
        sa.UniqueConstraint(
            "implementation_code", "version", name=op.f("uq_hall_item_implementation_code")
        ),
    )
    op.create_index(op.f("ix_hall_item_dept_code"), "hall_item", ["dept_code"], unique=False)
    op.create_index(
        op.f("ix_hall_item_implementation_code"), "hall_item", ["implementation_code"], unique=False
    )
    op.create_table(
        "hall_case",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_number", sa.String(length=43), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("implementation_code", sa.String(length=31), nullable=False),
        sa.Column("handling_item_code", sa.String(length=33), nullable=True),
        sa.Column("applicant_sub", sa.String(length=255), nullable=False),
        sa.Column("user_type", sa.String(length=16), nullable=False),
        sa.Column("applicant_name", sa.String(length=200), nullable=False),
        sa.Column("certificate_type", sa.String(length=3), nullable=False),
        sa.Column("certificate_number", sa.String(length=18), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("resume_state", sa.String(length=20), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("promised_days", sa.Integer(), nullable=True),
        sa.Column("promised_unit", sa.String(length=16), nullable=True),
        sa.Column("promise_date", sa.Date(), nullable=True),
        sa.Column("deadline_provisional", sa.Boolean(), nullable=False),
        sa.Column("provisional_years", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=20), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["hall_item.id"], name=op.f("fk_hall_case_item_id_hall_item")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_case")),
        sa.UniqueConstraint("case_number", name=op.f("uq_hall_case_case_number")),
    )
    op.create_index(
        op.f("ix_hall_case_applicant_sub"), "hall_case", ["applicant_sub"], unique=False
    )
    op.create_index(op.f("ix_hall_case_promise_date"), "hall_case", ["promise_date"], unique=False)
    op.create_index(op.f("ix_hall_case_state"), "hall_case", ["state"], unique=False)
    op.create_table(
        "hall_case_material",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("gettype", sa.Integer(), nullable=False),
        sa.Column("supplement", sa.Boolean(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("licence_id", sa.String(length=128), nullable=True),
        sa.Column("licence_cause", sa.String(length=500), nullable=True),
        sa.Column("licence_copy", sa.JSON(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["hall_case.id"], name=op.f("fk_hall_case_material_case_id_hall_case")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_case_material")),
        sa.UniqueConstraint("case_id", "seq", name=op.f("uq_hall_case_material_case_id")),
    )
    op.create_index(
        op.f("ix_hall_case_material_case_id"), "hall_case_material", ["case_id"], unique=False
    )
    op.create_table(
        "hall_case_step",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("nodetype", sa.Integer(), nullable=False),
        sa.Column("noderesult", sa.Integer(), nullable=False),
        sa.Column("node_name", sa.String(length=100), nullable=False),
        sa.Column("handler_sub", sa.String(length=255), nullable=False),
        sa.Column("handler_name", sa.String(length=100), nullable=False),
        sa.Column("opinion", sa.String(length=2000), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["hall_case.id"], name=op.f("fk_hall_case_step_case_id_hall_case")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_case_step")),
        sa.UniqueConstraint("case_id", "seq", name=op.f("uq_hall_case_step_case_id")),
    )
    op.create_index(op.f("ix_hall_case_step_case_id"), "hall_case_step", ["case_id"], unique=False)
    op.create_table(
        "hall_evaluation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("evaluator_sub", sa.String(length=255), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("dimensions", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("follow_up_text", sa.Text(), nullable=True),
        sa.Column("follow_up_level", sa.Integer(), nullable=True),
        sa.Column("follow_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["hall_case.id"], name=op.f("fk_hall_evaluation_case_id_hall_case")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_evaluation")),
        sa.UniqueConstraint("case_id", name=op.f("uq_hall_evaluation_case_id")),
    )
    op.create_table(
        "hall_rectification",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("working_days", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("deadline_provisional", sa.Boolean(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["hall_evaluation.id"],
            name=op.f("fk_hall_rectification_evaluation_id_hall_evaluation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_rectification")),
        sa.UniqueConstraint("evaluation_id", name=op.f("uq_hall_rectification_evaluation_id")),
    )
    op.create_index(
        op.f("ix_hall_rectification_deadline"), "hall_rectification", ["deadline"], unique=False
    )
    op.create_index(
        op.f("ix_hall_rectification_state"), "hall_rectification", ["state"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_hall_rectification_state"), table_name="hall_rectification")
    op.drop_index(op.f("ix_hall_rectification_deadline"), table_name="hall_rectification")
    op.drop_table("hall_rectification")
    op.drop_table("hall_evaluation")
    op.drop_index(op.f("ix_hall_case_step_case_id"), table_name="hall_case_step")
    op.drop_table("hall_case_step")
    op.drop_index(op.f("ix_hall_case_material_case_id"), table_name="hall_case_material")
    op.drop_table("hall_case_material")
    op.drop_index(op.f("ix_hall_case_state"), table_name="hall_case")
    op.drop_index(op.f("ix_hall_case_promise_date"), table_name="hall_case")
    op.drop_index(op.f("ix_hall_case_applicant_sub"), table_name="hall_case")
    op.drop_table("hall_case")
    op.drop_index(op.f("ix_hall_item_implementation_code"), table_name="hall_item")
    op.drop_index(op.f("ix_hall_item_dept_code"), table_name="hall_item")
    op.drop_table("hall_item")
    op.drop_table("hall_case_sequence")
