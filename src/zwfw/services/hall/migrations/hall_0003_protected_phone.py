"""Applicants' phone numbers encrypted at rest (SM4-GCM), like their certificate numbers:
``hall_case.phone_enc`` replaces the clear ``hall_case.phone``. Nothing looks cases up by
phone, so no keyed hash.

Existing rows with a phone are converted in place with the hall's key-encryption key
(``ZWFW_KEK`` / ``ZWFW_KEK_FILE``); the downgrade decrypts them back.

Revision ID: hall_0003
Revises: hall_0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from zwfw.crypto.fields import FieldProtector
from zwfw.crypto.keystore import KeyEncryptionKeyError

revision: str = "hall_0003"
down_revision: str | Sequence[str] | None = "hall_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed here, not imported from the models: this revision must keep meaning what it meant.
_PURPOSE = "hall.case"
_CONTEXT = "phone"

_case = sa.table(
    "hall_case",
    sa.column("id", sa.Integer()),
    sa.column("phone", sa.String(20)),
    sa.column("phone_enc", sa.LargeBinary()),
)


def _protector(rows: int) -> FieldProtector:
    try:
        return FieldProtector.from_environment(_PURPOSE)
    except KeyEncryptionKeyError as exc:
        raise RuntimeError(
            f"hall_0003 must convert {rows} phone number(s) and needs the hall's "
            f"key-encryption key: {exc}"
        ) from None


def upgrade() -> None:
    op.add_column("hall_case", sa.Column("phone_enc", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_case.c.id, _case.c.phone).where(_case.c.phone.is_not(None))
    ).all()
    if rows:
        protector = _protector(len(rows))
        for row_id, phone in rows:
            bind.execute(
                _case.update()
                .where(_case.c.id == row_id)
                .values(phone_enc=protector.encrypt(phone, _CONTEXT))
            )
    with op.batch_alter_table("hall_case") as batch:
        batch.drop_column("phone")


def downgrade() -> None:
    op.add_column("hall_case", sa.Column("phone", sa.String(length=20), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_case.c.id, _case.c.phone_enc).where(_case.c.phone_enc.is_not(None))
    ).all()
    if rows:
        protector = _protector(len(rows))
        for row_id, blob in rows:
            bind.execute(
                _case.update()
                .where(_case.c.id == row_id)
                .values(phone=protector.decrypt(blob, _CONTEXT))
            )
    with op.batch_alter_table("hall_case") as batch:
        batch.drop_column("phone_enc")
