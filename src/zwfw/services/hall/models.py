"""Tables of the service hall: items (事项), cases (办件) with steps and materials, evaluations
(好差评) and rectification tasks (整改)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from zwfw.crypto.fields import FieldProtector
from zwfw.services.kit import UTCDateTime, naming_metadata

# Field keys for the hall's protected columns, derived from the deployment's KEK.
FIELD_PURPOSE = "hall.case"
CERTIFICATE_NUMBER = "certificate_number"
PHONE = "phone"


def field_protector() -> FieldProtector:
    """The hall's personal-data keys (from ``ZWFW_KEK`` / ``ZWFW_KEK_FILE``)."""
    return FieldProtector.from_environment(FIELD_PURPOSE)


def certificate_lookup(number: str, protector: FieldProtector | None = None) -> str:
    """Keyed hash to find cases by certificate number without storing it in clear."""
    return (protector or field_protector()).lookup(number.upper(), CERTIFICATE_NUMBER)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = naming_metadata()


class Item(Base):
    """One version of an item and its 办事指南."""

    __tablename__ = "hall_item"
    __table_args__ = (UniqueConstraint("implementation_code", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    implementation_code: Mapped[str] = mapped_column(String(31), index=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # draft | published | cancelled
    name: Mapped[str] = mapped_column(String(200))
    dept_code: Mapped[str] = mapped_column(String(18), index=True)
    guide: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(500))


class CaseSequence(Base):
    """The last case sequence number given per item and day (case number = code + day + seq)."""

    __tablename__ = "hall_case_sequence"

    implementation_code: Mapped[str] = mapped_column(String(31), primary_key=True)
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Case(Base):
    __tablename__ = "hall_case"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_number: Mapped[str] = mapped_column(String(43), unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("hall_item.id"))
    implementation_code: Mapped[str] = mapped_column(String(31))
    handling_item_code: Mapped[str | None] = mapped_column(String(33))
    applicant_sub: Mapped[str] = mapped_column(String(255), index=True)
    user_type: Mapped[str] = mapped_column(String(16))  # person | legal_person
    applicant_name: Mapped[str] = mapped_column(String(200))
    certificate_type: Mapped[str] = mapped_column(String(3))
    # The ID (or credit code) number, SM4-GCM encrypted at rest (等保 / GB/T 39786 personal
    # data); read and written in clear through ``certificate_number``.
    certificate_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    certificate_number_lookup: Mapped[str] = mapped_column(String(64), index=True)
    # The applicant's phone, SM4-GCM encrypted at rest; read and written through ``phone``.
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    channel: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(20), index=True)
    # Where a 补齐补正 or special procedure returns to when it ends.
    resume_state: Mapped[str | None] = mapped_column(String(20))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    promised_days: Mapped[int | None] = mapped_column(Integer)
    promised_unit: Mapped[str | None] = mapped_column(String(16))
    promise_date: Mapped[date | None] = mapped_column(Date, index=True)
    deadline_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    provisional_years: Mapped[list[int]] = mapped_column(JSON, default=list)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str | None] = mapped_column(String(20))
    # +1 per change (application, step, supplement); the version of the hub report.
    revision: Mapped[int] = mapped_column(Integer, default=1)

    item: Mapped[Item] = relationship(lazy="joined")
    steps: Mapped[list[CaseStep]] = relationship(
        order_by="CaseStep.seq", cascade="all, delete-orphan"
    )
    materials: Mapped[list[CaseMaterial]] = relationship(
        order_by="CaseMaterial.seq", cascade="all, delete-orphan"
    )
    evaluation: Mapped[Evaluation | None] = relationship(back_populates="case")

    @property
    def certificate_number(self) -> str:
        return field_protector().decrypt(self.certificate_number_enc, CERTIFICATE_NUMBER)

    @certificate_number.setter
    def certificate_number(self, number: str) -> None:
        protector = field_protector()
        self.certificate_number_enc = protector.encrypt(number, CERTIFICATE_NUMBER)
        self.certificate_number_lookup = certificate_lookup(number, protector)

    @property
    def phone(self) -> str | None:
        if self.phone_enc is None:
            return None
        return field_protector().decrypt(self.phone_enc, PHONE)

    @phone.setter
    def phone(self, number: str | None) -> None:
        self.phone_enc = None if number is None else field_protector().encrypt(number, PHONE)


class CaseStep(Base):
    __tablename__ = "hall_case_step"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("hall_case.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    nodetype: Mapped[int] = mapped_column(Integer)
    noderesult: Mapped[int] = mapped_column(Integer)
    node_name: Mapped[str] = mapped_column(String(100))
    handler_sub: Mapped[str] = mapped_column(String(255))
    handler_name: Mapped[str] = mapped_column(String(100))
    opinion: Mapped[str] = mapped_column(String(2000))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class CaseMaterial(Base):
    __tablename__ = "hall_case_material"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("hall_case.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    gettype: Mapped[int] = mapped_column(Integer)
    supplement: Mapped[bool] = mapped_column(Boolean, default=False)
    media_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    licence_id: Mapped[str | None] = mapped_column(String(128))
    licence_cause: Mapped[str | None] = mapped_column(String(500))
    # What the e-licence library returned for the annotated copy (no file bytes).
    licence_copy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Evaluation(Base):
    __tablename__ = "hall_evaluation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("hall_case.id"), unique=True)
    evaluator_sub: Mapped[str] = mapped_column(String(255))
    level: Mapped[int] = mapped_column(Integer)
    dimensions: Mapped[dict[str, int]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    follow_up_text: Mapped[str | None] = mapped_column(Text)
    follow_up_level: Mapped[int | None] = mapped_column(Integer)
    follow_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    case: Mapped[Case] = relationship(back_populates="evaluation")
    rectification: Mapped[Rectification | None] = relationship(back_populates="evaluation")


class Rectification(Base):
    __tablename__ = "hall_rectification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("hall_evaluation.id"), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | closed
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    working_days: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[date] = mapped_column(Date, index=True)
    deadline_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    response: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(255))

    evaluation: Mapped[Evaluation] = relationship(back_populates="rectification", lazy="joined")
