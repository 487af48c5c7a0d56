"""Tables of the e-licence service: licence types, licences, annotated copies, usage records."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from zwfw.services.kit import UTCDateTime, naming_metadata


def utc(moment: datetime) -> datetime:
    """SQLite returns timestamps without a zone; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = naming_metadata()


class LicenceType(Base):
    __tablename__ = "elicense_type"
    type_code: Mapped[str] = mapped_column(String(21), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    defining_authority_name: Mapped[str] = mapped_column(String(200))
    # JSON Schema (draft 2020-12) for the type-specific ``data`` of its licences.
    data_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Licence(Base):
    __tablename__ = "elicense_licence"
    identifier: Mapped[str] = mapped_column(String(128), primary_key=True)
    type_code: Mapped[str] = mapped_column(ForeignKey("elicense_type.type_code"), index=True)
    issuer_code: Mapped[str] = mapped_column(String(18), index=True)
    licence_number: Mapped[str] = mapped_column(String(100))
    holder_sub: Mapped[str] = mapped_column(String(200), index=True)
    holder_name: Mapped[str] = mapped_column(String(200))
    # Personal ID numbers are kept masked only; the holder is matched by ``holder_sub``.
    holder_code: Mapped[str] = mapped_column(String(64))
    holder_code_type: Mapped[str] = mapped_column(String(8))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    document: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    es_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(2))
    status_reason: Mapped[str | None] = mapped_column(String(500))
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_by: Mapped[str] = mapped_column(String(200))


class AnnotatedCopy(Base):
    __tablename__ = "elicense_copy"
    copy_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    identifier: Mapped[str] = mapped_column(ForeignKey("elicense_licence.identifier"), index=True)
    made_by: Mapped[str] = mapped_column(String(200))
    cause: Mapped[str] = mapped_column(String(500))
    made_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    document: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class UsageRecord(Base):
    """用证记录: who used a licence, for which cause, when."""

    __tablename__ = "elicense_usage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identifier: Mapped[str] = mapped_column(ForeignKey("elicense_licence.identifier"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    actor_kind: Mapped[str] = mapped_column(String(16))  # holder | organisation | issuer
    client_id: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(String(500))
    copy_id: Mapped[str | None] = mapped_column(String(64))
