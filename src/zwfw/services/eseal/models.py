"""Tables of the e-seal service: the seal authority, wrapped keys, seals and their signers."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from zwfw.services.kit import UTCDateTime, naming_metadata


def utc(moment: datetime) -> datetime:
    """SQLite returns timestamps without a zone; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = naming_metadata()


class Authority(Base):
    """The service's root CA and seal-maker certificates (one row, id 1)."""

    __tablename__ = "eseal_authority"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    root_cert: Mapped[bytes] = mapped_column(LargeBinary)
    maker_cert: Mapped[bytes] = mapped_column(LargeBinary)
    root_key_id: Mapped[str] = mapped_column(String(128))
    maker_key_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KeyBlob(Base):
    """An SM2 private key wrapped with SM4-GCM under the KEK (never stored in clear)."""

    __tablename__ = "eseal_key"
    key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)


class Seal(Base):
    __tablename__ = "eseal_seal"
    es_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), index=True)
    organisation: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    picture: Mapped[bytes] = mapped_column(LargeBinary)
    picture_width_mm: Mapped[int] = mapped_column(Integer)
    picture_height_mm: Mapped[int] = mapped_column(Integer)
    valid_start: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_end: Mapped[datetime] = mapped_column(UTCDateTime())
    seal_der: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(String(500))
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    signers: Mapped[list[Signer]] = relationship(
        back_populates="seal", order_by="Signer.id", lazy="selectin"
    )


class Signer(Base):
    """A subject authorised to sign with a seal, with the certificate the seal lists for it."""

    __tablename__ = "eseal_signer"
    __table_args__ = (UniqueConstraint("es_id", "subject"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    es_id: Mapped[str] = mapped_column(ForeignKey("eseal_seal.es_id"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    cert_der: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(128))
    seal: Mapped[Seal] = relationship(back_populates="signers")
