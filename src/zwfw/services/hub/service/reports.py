"""Report intake: catalog (事项), cases (办件) and evaluations (好差评) from provinces, each a
signed channel message, each stored once per idempotency key.

A case or evaluation report carries the whole record so far with a ``version`` that grows with
every change; the hub keeps the newest version (an older one arriving late is taken but marked
``superseded``). The same report delivered twice (same sender and idempotency key, same body)
is answered with its first receipt; the same key with a different body is a 409.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from zwfw.codes import (
    CodeError,
    parse_case_number,
    parse_handling_item_code,
    parse_implementation_code,
)
from zwfw.codes.masking import mask_personal_data
from zwfw.formats.channel import VerifiedMessage
from zwfw.services.hub.models import (
    Case,
    CatalogItem,
    Evaluation,
    Province,
    Report,
    as_utc,
    utcnow,
)
from zwfw.services.kit import Problem, audit, conflict

SCOPE_REPORT = "hub:report"

CASE_REPORT_PATH = "/reports/cases"
EVALUATION_REPORT_PATH = "/reports/evaluations"
CATALOG_REPORT_PATH = "/reports/catalog"

# 办件 step types and the results each allows (national-aligned data set).
LEGAL_NODE_RESULTS: dict[int, frozenset[int]] = {
    1: frozenset({4, 5, 6}),
    2: frozenset({0, 1, 5, 6, 7}),
    3: frozenset({0, 1}),
    4: frozenset({1, 2, 3, 4}),
}

# 办事指南 fields an aggregated item must carry (one provincial schema, STANDARDS.md).
REQUIRED_GUIDE_FIELDS = (
    "accept_condition",
    "by_law",
    "anticipate_day",
    "promise_day",
    "dept_code",
    "dept_name",
    "is_fee",
    "handle_flow",
    "handle_type",
    "link_way",
    "supervise_way",
    "project_type",
    "server_type",
    "transact_addr",
    "transact_time",
    "materials",
)


# Dates of the data set (promise dates) are Beijing calendar days; a time without an offset is
# read as Beijing time when it is compared with them.
BEIJING = ZoneInfo("Asia/Shanghai")


class _Report(BaseModel):
    model_config = ConfigDict(extra="ignore")

    region_code: str = Field(pattern=r"^\d{6}$")
    version: int = Field(ge=1)


def _code(parser: Any, value: str) -> str:
    try:
        return str(parser(value))
    except CodeError as exc:
        raise ValueError(str(exc)) from None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=BEIJING)


def _not_before(later: datetime | None, earlier: datetime | None, what: str) -> None:
    if later is not None and earlier is not None and _aware(later) < _aware(earlier):
        raise ValueError(what)


class _CaseRecord(_Report):
    """A report about one case: its number and the implementation code of its item, each a
    well-formed code, the number one of that item's."""

    case_number: str
    implementation_code: str

    @field_validator("case_number")
    @classmethod
    def _case_number(cls, value: str) -> str:
        return _code(parse_case_number, value)

    @field_validator("implementation_code")
    @classmethod
    def _implementation(cls, value: str) -> str:
        return _code(parse_implementation_code, value)

    @model_validator(mode="after")
    def _same_item(self) -> _CaseRecord:
        if not self.case_number.startswith(self.implementation_code):
            raise ValueError("the case number does not start with the implementation code")
        return self


class Step(BaseModel):
    model_config = ConfigDict(extra="ignore")

    seq: int = Field(ge=1)
    nodetype: int
    noderesult: int
    node_name: str | None = None
    handler_name: str | None = None
    time: datetime

    @model_validator(mode="after")
    def _legal(self) -> Step:
        allowed = LEGAL_NODE_RESULTS.get(self.nodetype)
        if allowed is None:
            raise ValueError(f"nodetype {self.nodetype} is not one of 1, 2, 3, 4")
        if self.noderesult not in allowed:
            raise ValueError(
                f"noderesult {self.noderesult} is not allowed for nodetype {self.nodetype} "
                f"(allowed: {sorted(allowed)})"
            )
        return self


class Material(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    gettype: int = Field(description="1 paper, 2 electronic, 3 licence reference, 4 data, 9 other")
    licence_id: str | None = None

    @field_validator("gettype")
    @classmethod
    def _gettype(cls, value: int) -> int:
        if value not in (1, 2, 3, 4, 9):
            raise ValueError("gettype must be 1, 2, 3, 4 or 9")
        return value


class CaseReport(_CaseRecord):
    """A case report: the whole case so far."""

    report: Literal["case"] = "case"
    handling_item_code: str | None = None
    item_name: str = Field(min_length=1, max_length=300)
    dept_code: str = Field(min_length=1, max_length=18)
    dept_name: str = Field(min_length=1, max_length=200)
    user_type: Literal["0", "1"]
    channel: str | None = Field(default=None, max_length=20)
    state: str = Field(min_length=1, max_length=20)
    apply_time: datetime
    accept_time: datetime | None = None
    promised_days: int | None = Field(default=None, ge=0)
    promise_date: date | None = None
    finish_time: datetime | None = None
    result: str | None = Field(default=None, max_length=20)
    steps: list[Step] = Field(default_factory=list)
    materials: list[Material] = Field(default_factory=list)

    @field_validator("handling_item_code")
    @classmethod
    def _handling(cls, value: str | None) -> str | None:
        return None if value is None else _code(parse_handling_item_code, value)

    @model_validator(mode="after")
    def _consistent(self) -> CaseReport:
        if self.handling_item_code and not self.handling_item_code.startswith(
            self.implementation_code
        ):
            raise ValueError("the handling-item code does not extend the implementation code")
        if self.accept_time is not None and self.promise_date is None:
            raise ValueError("an accepted case needs its promise_date")
        _not_before(self.accept_time, self.apply_time, "accept_time is before apply_time")
        _not_before(self.finish_time, self.apply_time, "finish_time is before apply_time")
        _not_before(self.finish_time, self.accept_time, "finish_time is before accept_time")
        if (
            self.accept_time is not None
            and self.promise_date is not None
            and self.promise_date < _aware(self.accept_time).astimezone(BEIJING).date()
        ):
            raise ValueError("promise_date is before the day of acceptance (Beijing time)")
        seqs = [s.seq for s in self.steps]
        if seqs != sorted(set(seqs)):
            raise ValueError("step seq numbers must be unique and ascending")
        return self


class FollowUp(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str | None = None
    level: int | None = Field(default=None, ge=1, le=5)
    time: datetime


class Rectification(BaseModel):
    model_config = ConfigDict(extra="ignore")

    state: Literal["open", "closed"]
    deadline: date
    working_days: int | None = Field(default=None, ge=1)
    response: str | None = None
    closed_at: datetime | None = None

    @model_validator(mode="after")
    def _closed(self) -> Rectification:
        if self.state == "closed" and (self.closed_at is None or not self.response):
            raise ValueError("a closed rectification needs closed_at and a response")
        return self


class EvaluationReport(_CaseRecord):
    """An evaluation report (好差评, GB/T 39735 reported items)."""

    report: Literal["evaluation"] = "evaluation"
    item_name: str | None = None
    dept_code: str = Field(min_length=1, max_length=18)
    level: int = Field(ge=1, le=5)
    time: datetime
    text: str | None = Field(default=None, max_length=2000)
    follow_up: FollowUp | None = None
    rectification: Rectification | None = None

    @model_validator(mode="after")
    def _bad_needs_rectification(self) -> EvaluationReport:
        if self.level <= 2 and self.rectification is None:
            raise ValueError("a bad evaluation (level 1-2) must carry its rectification task")
        if self.follow_up is not None:
            _not_before(self.follow_up.time, self.time, "the follow-up is before the rating")
        return self


class CatalogReport(_Report):
    """A province's published items, all at once or a batch of them."""

    report: Literal["catalog"] = "catalog"
    items: list[dict[str, Any]] = Field(max_length=5000)


class Receipt(BaseModel):
    report_id: str
    idempotency_key: str
    kind: str
    subject: str
    version: int
    outcome: Literal["stored", "superseded"]
    duplicate: bool
    received_at: str


class ItemVerdict(BaseModel):
    code: str | None
    accepted: bool
    reasons: list[str]


class CatalogReceipt(Receipt):
    accepted: int
    rejected: int
    items: list[ItemVerdict]


def _digest_and_key(message: VerifiedMessage) -> str:
    if not message.idempotency_key:
        raise Problem(400, detail="reports need an Idempotency-Key header")
    return message.idempotency_key


def _receipt(report: Report, duplicate: bool) -> Receipt:
    return Receipt(
        report_id=report.id,
        idempotency_key=report.idempotency_key,
        kind=report.kind,
        subject=report.subject,
        version=report.version,
        outcome=report.outcome,  # type: ignore[arg-type]
        duplicate=duplicate,
        received_at=as_utc(report.received_at).isoformat(),  # type: ignore[union-attr]
    )


def _claim_report(
    db: Session,
    message: VerifiedMessage,
    *,
    kind: str,
    subject: str,
    version: int,
    signing_key_id: str | None = None,
) -> Report | None:
    """Insert the report row; None when (sender, key) was taken before (then the caller
    answers with the first receipt). Concurrent duplicates wait on the unique key instead of
    failing."""
    key = _digest_and_key(message)
    values = {
        "id": str(uuid.uuid4()),
        "sender": message.sender,
        "idempotency_key": key,
        "kind": kind,
        "digest": message.digest,
        "subject": subject,
        "version": version,
        "outcome": "stored",
        "received_at": utcnow(),
        "signing_key_id": signing_key_id,
    }
    table = Report.__table__
    assert isinstance(table, Table)  # a mapped class's table; the dialect inserts need a Table
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(values).on_conflict_do_nothing().returning(table.c.id)
    if db.execute(statement).first() is None:
        return None
    return db.get(Report, values["id"])


def _earlier(db: Session, message: VerifiedMessage, kind: str) -> Receipt:
    report = db.scalar(
        select(Report).where(
            Report.sender == message.sender, Report.idempotency_key == message.idempotency_key
        )
    )
    assert report is not None
    if report.digest != message.digest or report.kind != kind:
        raise conflict(
            f"Idempotency-Key {message.idempotency_key} was used for a different report",
            reason="idempotency-key-reused",
        )
    return _receipt(report, duplicate=True)


def _check_region(province: Province, report: _Report) -> None:
    if report.region_code != province.region_code:
        raise Problem(
            403,
            detail=f"province {province.region_code} cannot report for {report.region_code}",
        )
    implementation = getattr(report, "implementation_code", None)
    if implementation is not None and not _within(implementation, province.region_code):
        raise Problem(
            403,
            detail=f"the implementing body of {implementation} is outside province "
            f"{province.region_code}",
        )


def _within(implementation_code: str, region_code: str) -> bool:
    # Credit code characters 3-8 are the registering division; its first two, the province.
    return implementation_code[2:4] == region_code[:2]


def _record(db: Session, province: Province, receipt: Receipt, action: str) -> None:
    audit.record(
        db,
        actor=f"province/{province.region_code}",
        action=action,
        resource=f"{receipt.kind}/{receipt.subject}",
        result="duplicate" if receipt.duplicate else receipt.outcome,
        detail={"version": receipt.version, "idempotency_key": receipt.idempotency_key},
    )


def take_case_report(
    db: Session, province: Province, message: VerifiedMessage, payload: CaseReport
) -> Receipt:
    """Store a verified case report of ``province`` (or answer a duplicate's first receipt)."""
    _check_region(province, payload)
    report = _claim_report(
        db,
        message,
        kind="case",
        subject=payload.case_number,
        version=payload.version,
        signing_key_id=province.signing_key_id,
    )
    if report is None:
        return _earlier(db, message, "case")
    case = db.get(Case, payload.case_number, with_for_update=True)
    if case is not None and case.region_code != province.region_code:
        raise conflict(f"case {payload.case_number} belongs to another province")
    if case is not None and case.version >= payload.version:
        report.outcome = "superseded"
    else:
        case = case or Case(case_number=payload.case_number)
        _apply_case(case, payload, province.region_code)
        db.add(case)
    receipt = _receipt(report, duplicate=False)
    _record(db, province, receipt, "report.case")
    return receipt


def _apply_case(case: Case, report: CaseReport, region_code: str) -> None:
    case.region_code = region_code
    case.implementation_code = report.implementation_code
    case.handling_item_code = report.handling_item_code
    case.item_name = report.item_name
    case.dept_code = report.dept_code
    case.dept_name = report.dept_name
    case.user_type = report.user_type
    case.channel = report.channel
    case.state = report.state
    case.apply_time = report.apply_time
    case.accept_time = report.accept_time
    case.promised_days = report.promised_days
    case.promise_date = report.promise_date
    case.finish_time = report.finish_time
    case.result = report.result
    # Handler names are staff names, not applicants'; applicant identity is not kept here.
    case.steps = [s.model_dump(mode="json") for s in report.steps]
    case.licence_materials = sum(1 for m in report.materials if m.gettype == 3)
    case.version = report.version
    case.updated_at = utcnow()


def take_evaluation_report(
    db: Session, province: Province, message: VerifiedMessage, payload: EvaluationReport
) -> Receipt:
    """Store a verified evaluation report of ``province`` (or answer a duplicate's first
    receipt)."""
    _check_region(province, payload)
    report = _claim_report(
        db,
        message,
        kind="evaluation",
        subject=payload.case_number,
        version=payload.version,
        signing_key_id=province.signing_key_id,
    )
    if report is None:
        return _earlier(db, message, "evaluation")
    evaluation = db.get(Evaluation, payload.case_number, with_for_update=True)
    if evaluation is not None and evaluation.region_code != province.region_code:
        raise conflict(f"case {payload.case_number} belongs to another province")
    if evaluation is not None and evaluation.version >= payload.version:
        report.outcome = "superseded"
    else:
        evaluation = evaluation or Evaluation(case_number=payload.case_number)
        rect = payload.rectification
        evaluation.region_code = province.region_code
        evaluation.implementation_code = payload.implementation_code
        evaluation.dept_code = payload.dept_code
        evaluation.level = payload.level
        evaluation.rated_at = payload.time
        # Free text may name people; only its masked form is kept.
        evaluation.text = mask_personal_data(payload.text) if payload.text else None
        evaluation.followed_up = payload.follow_up is not None
        evaluation.rectification_state = rect.state if rect else None
        evaluation.rectification_deadline = rect.deadline if rect else None
        evaluation.rectification_closed_at = rect.closed_at if rect else None
        evaluation.rectification_response = (
            mask_personal_data(rect.response) if rect and rect.response else None
        )
        evaluation.version = payload.version
        evaluation.updated_at = utcnow()
        db.add(evaluation)
    receipt = _receipt(report, duplicate=False)
    _record(db, province, receipt, "report.evaluation")
    return receipt


def check_item(item: dict[str, Any], region_code: str) -> tuple[str | None, list[str]]:
    """The item's code and the reasons it cannot be aggregated (empty when it can)."""
    reasons: list[str] = []
    code = item.get("code")
    if not isinstance(code, str):
        return None, ["code is missing"]
    implementation: str | None = None
    try:
        if len(code) == 33:
            implementation = str(parse_handling_item_code(code).implementation_code)
        else:
            implementation = str(parse_implementation_code(code))
    except CodeError as exc:
        reasons.append(f"code: {exc}")
    if implementation is not None and not _within(implementation, region_code):
        reasons.append(
            f"code: the implementing body's division {implementation[2:8]} is outside "
            f"province {region_code}"
        )
    if not isinstance(item.get("name"), str) or not item["name"].strip():
        reasons.append("name is missing")
    if not isinstance(item.get("version"), int) or item["version"] < 1:
        reasons.append("version must be a positive integer")
    if item.get("state") not in ("published", "cancelled"):
        reasons.append("state must be published or cancelled")
    guide = item.get("guide")
    if not isinstance(guide, dict):
        reasons.append("guide is missing")
    elif item.get("state") == "published":
        missing = [f for f in REQUIRED_GUIDE_FIELDS if guide.get(f) in (None, "", [])]
        if missing:
            reasons.append(f"guide lacks {', '.join(missing)}")
        materials = guide.get("materials")
        if isinstance(materials, list):
            for n, material in enumerate(materials, start=1):
                if not isinstance(material, dict) or not material.get("name"):
                    reasons.append(f"guide.materials[{n}] has no name")
    return code, reasons


def take_catalog_report(
    db: Session, province: Province, message: VerifiedMessage, payload: CatalogReport
) -> CatalogReceipt:
    """Aggregate the acceptable items of a verified catalog report of ``province``, with a
    verdict on each item (or answer a duplicate's first receipt, with fresh verdicts)."""
    _check_region(province, payload)
    verdicts: list[ItemVerdict] = []
    accepted: list[tuple[str, dict[str, Any]]] = []
    for item in payload.items:
        code, reasons = check_item(item, province.region_code)
        verdicts.append(ItemVerdict(code=code, accepted=not reasons, reasons=reasons))
        if not reasons and code is not None:
            accepted.append((code, item))
    report = _claim_report(
        db,
        message,
        kind="catalog",
        subject=f"catalog:{province.region_code}",
        version=payload.version,
        signing_key_id=province.signing_key_id,
    )
    duplicate = report is None
    if report is None:
        receipt = _earlier(db, message, "catalog")
    else:
        now = utcnow()
        for code, item in accepted:
            implementation = code[:31]
            row = db.get(CatalogItem, (province.region_code, code))
            if row is not None and row.version > item["version"]:
                continue
            row = row or CatalogItem(region_code=province.region_code, code=code)
            row.implementation_code = implementation
            row.basic_code = implementation[19:31]
            row.name = item["name"]
            row.version = item["version"]
            row.state = item["state"]
            row.guide = item["guide"]
            row.received_at = now
            db.add(row)
        receipt = _receipt(report, duplicate=False)
        _record(db, province, receipt, "report.catalog")
    return CatalogReceipt(
        **receipt.model_dump() | {"duplicate": duplicate},
        accepted=sum(v.accepted for v in verdicts),
        rejected=sum(not v.accepted for v in verdicts),
        items=verdicts,
    )
