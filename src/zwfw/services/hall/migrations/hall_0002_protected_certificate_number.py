"""Applicants' certificate numbers encrypted at rest: SM4-GCM ciphertext plus an HMAC-SM3
keyed hash for lookups replace the clear ``hall_case.certificate_number``.

Existing rows are converted in place; that needs the hall's key-encryption key
(``ZWFW_KEK`` / ``ZWFW_KEK_FILE``), and so does the downgrade, which decrypts them back.

Revision ID: hall_0002
Revises: hall_0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from zwfw.crypto.fields import FieldProtector
from zwfw.crypto.keystore import KeyEncryptionKeyError

revision: str = "hall_0002"
down_revision: str | Sequence[str] | None = "hall_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed here, not imported from the models: this revision must keep meaning what it meant.
_PURPOSE = "hall.case"
_CONTEXT = "certificate_number"

_case = sa.table(
    "hall_case",
    sa.column("id", sa.Integer()),
    sa.column("certificate_number", sa.String(18)),
    sa.column("certificate_number_enc", sa.LargeBinary()),
    sa.column("certificate_number_lookup", sa.String(64)),
)


def _protector(rows: int) -> FieldProtector:
    try:
        return FieldProtector.from_environment(_PURPOSE)
    except KeyEncryptionKeyError as exc:
        raise RuntimeError(
            f"hall_0002 must convert {rows} case(s) and needs the hall's key-encryption key: {exc}"
        ) from None


def upgrade() -> None:
    op.add_column("hall_case", sa.Column("certificate_number_enc", sa.LargeBinary(), nullable=True))
    op.add_column(
        "hall_case", sa.Column("certificate_number_lookup", sa.String(length=64), nullable=True)
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(_case.c.id, _case.c.certificate_number)).all()
    if rows:
        protector = _protector(len(rows))
        for row_id, number in rows:
            bind.execute(
                _case.update()
                .where(_case.c.id == row_id)
                .values(
                    certificate_number_enc=protector.encrypt(number, _CONTEXT),
                    certificate_number_lookup=protector.lookup(number.upper(), _CONTEXT),
                )
            )
    with op.batch_alter_table("hall_case") as batch:
        batch.alter_column("certificate_number_enc", existing_type=sa.LargeBinary(), nullable=False)
        batch.alter_column(
            "certificate_number_lookup", existing_type=sa.String(length=64), nullable=False
        )
        batch.drop_column("certificate_number")
    op.create_index(
        op.f("ix_hall_case_certificate_number_lookup"),
        "hall_case",
        ["certificate_number_lookup"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_hall_case_certificate_number_lookup"), table_name="hall_case")
    op.add_column("hall_case", sa.Column("certificate_number", sa.String(length=18), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_case.c.id, _case.c.certificate_number_enc)).all()
    if rows:
        protector = _protector(len(rows))
        for row_id, blob in rows:
            bind.execute(
                _case.update()
                .where(_case.c.id == row_id)
                .values(certificate_number=protector.decrypt(blob, _CONTEXT))
            )
    with op.batch_alter_table("hall_case") as batch:
        batch.alter_column("certificate_number", existing_type=sa.String(length=18), nullable=False)
        batch.drop_column("certificate_number_lookup")
        batch.drop_column("certificate_number_enc")
