"""The hub's tables. It stores reports' supervision facts, never licence content."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from zwfw.services.kit import UTCDateTime, naming_metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = naming_metadata()


class Province(Base):
    """A province registered with the hub (省级平台)."""

    __tablename__ = "hub_province"

    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))  # active | suspended
    endpoints: Mapped[dict[str, Any]] = mapped_column(JSON)
    oauth_client_id: Mapped[str] = mapped_column(String(200), unique=True)
    tls_fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    tls_subject: Mapped[str] = mapped_column(String(500))
    signing_certificate: Mapped[str] = mapped_column(Text)
    signing_key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Report(Base):
    """Every report taken, once per (sender, idempotency key)."""

    __tablename__ = "hub_report"
    __table_args__ = (UniqueConstraint("sender", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(20))
    digest: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(64), index=True)  # case number or "catalog"
    version: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))  # stored | superseded
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The registered channel key the message was verified with (evidence for supervision).
    signing_key_id: Mapped[str | None] = mapped_column(String(64))


class CatalogItem(Base):
    """A province's published item (事项) as aggregated at the hub."""

    __tablename__ = "hub_catalog_item"

    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    code: Mapped[str] = mapped_column(String(33), primary_key=True)
    implementation_code: Mapped[str] = mapped_column(String(31), index=True)
    basic_code: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    guide: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Case(Base):
    """What the hub knows of a case (办件), from the province's latest report."""

    __tablename__ = "hub_case"

    case_number: Mapped[str] = mapped_column(String(43), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    implementation_code: Mapped[str] = mapped_column(String(31))
    handling_item_code: Mapped[str | None] = mapped_column(String(33))
    item_name: Mapped[str] = mapped_column(String(300))
    dept_code: Mapped[str] = mapped_column(String(18))
    dept_name: Mapped[str] = mapped_column(String(200))
    user_type: Mapped[str] = mapped_column(String(1))
    channel: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    apply_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accept_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    promised_days: Mapped[int | None] = mapped_column(Integer)
    promise_date: Mapped[date | None] = mapped_column(Date, index=True)
    finish_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    result: Mapped[str | None] = mapped_column(String(20))
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    licence_materials: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Evaluation(Base):
    """An evaluation (好差评) of a case, from the province's latest report."""

    __tablename__ = "hub_evaluation"

    case_number: Mapped[str] = mapped_column(String(43), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    implementation_code: Mapped[str] = mapped_column(String(31))
    dept_code: Mapped[str] = mapped_column(String(18))
    level: Mapped[int] = mapped_column(Integer)
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str | None] = mapped_column(Text)
    followed_up: Mapped[bool] = mapped_column()
    rectification_state: Mapped[str | None] = mapped_column(String(16))
    rectification_deadline: Mapped[date | None] = mapped_column(Date, index=True)
    rectification_closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rectification_response: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LicenceUse(Base):
    """One routed licence exchange (跨省通办): who asked whom, for what; never the content."""

    __tablename__ = "hub_licence_use"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    requester_region: Mapped[str] = mapped_column(String(6), index=True)
    issuer_region: Mapped[str] = mapped_column(String(6), index=True)
    identifier: Mapped[str] = mapped_column(String(128))
    cause: Mapped[str] = mapped_column(String(500))
    copy_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    subject: Mapped[str] = mapped_column(String(200))
    case_number: Mapped[str | None] = mapped_column(String(43))
    outcome: Mapped[str] = mapped_column(String(20))  # delivered | refused | unavailable
    issuer_status: Mapped[int | None] = mapped_column(Integer)
    copy_id: Mapped[str | None] = mapped_column(String(100))
    copy_sha256: Mapped[str | None] = mapped_column(String(64))
