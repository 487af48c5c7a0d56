"""Cases (办件): application, materials (uploads and 免证办 licence references), legal steps,
promised deadline in working days, 补齐补正 supplements.

Applicants act with their own token (``sub``) and see only their own cases; staff act with
``hall:case:handle``. Every change is audited and reported to the hub through the outbox.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zwfw.codes import CodeError, build_case_number, parse_credit_code, parse_licence_id
from zwfw.codes.masking import mask_phone, mask_resident_id
from zwfw.codes.personal import parse_resident_id
from zwfw.crypto.keystore import KeyEncryptionKeyError
from zwfw.services.hall import reports
from zwfw.services.hall.elicense import LibraryUnavailable, LicenceRefused
from zwfw.services.hall.guide import Guide
from zwfw.services.hall.models import (
    Case,
    CaseMaterial,
    CaseSequence,
    CaseStep,
    as_utc,
    certificate_lookup,
    field_protector,
    utcnow,
)
from zwfw.services.hall.runtime import HallRuntime
from zwfw.services.hall.service.catalog import current_version
from zwfw.services.hall.steps import (
    RULES,
    CaseState,
    IllegalStep,
    apply_step,
    step_name,
)
from zwfw.services.kit import (
    Principal,
    Problem,
    audit,
    bad_request,
    conflict,
    forbidden,
    not_found,
)

log = logging.getLogger("zwfw.hall.cases")

CASE_HANDLE = "hall:case:handle"
ILLEGAL_STEP_TYPE = "urn:zwfw:problem:illegal-step"


def personal_data_keys() -> None:
    """Cases hold certificate numbers encrypted at rest; without the key the hall refuses
    them rather than store or show anything unprotected."""
    try:
        field_protector()
    except KeyEncryptionKeyError:
        log.error("no key-encryption key: set ZWFW_KEK or ZWFW_KEK_FILE for the hall")
        raise Problem(
            503,
            detail="cases are unavailable: the hall has no key to protect personal data",
        ) from None


# Certificate types of applicants: 10 居民身份证 (as in the 好差评 data set); for legal persons
# the unified social credit code, 001 (inference from provincial data sets).
CertificateType = Literal["10", "001"]
CERTIFICATE_FOR_USER_TYPE = {"person": "10", "legal_person": "001"}
ALLOWED_MEDIA_TYPES = frozenset(
    {"application/pdf", "application/ofd", "image/jpeg", "image/png", "application/xml"}
)
GETTYPES = {1: "paper", 2: "electronic", 3: "licence", 4: "data_sharing", 9: "other"}


class ApplicantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    certificate_type: CertificateType
    certificate_number: str = Field(min_length=1, max_length=18)
    phone: str | None = Field(default=None, pattern=r"^1[3-9]\d{9}$")

    @model_validator(mode="after")
    def _certificate(self) -> ApplicantIn:
        try:
            if self.certificate_type == "10":
                self.certificate_number = str(parse_resident_id(self.certificate_number))
            else:
                self.certificate_number = str(parse_credit_code(self.certificate_number))
        except CodeError as exc:
            raise ValueError(f"certificate_number: {exc}") from None
        return self


class MaterialIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    gettype: Literal[1, 2, 3, 4, 9] = Field(
        description="1 paper, 2 electronic upload, 3 e-licence reference (免证办), "
        "4 data sharing, 9 other"
    )
    content_base64: str | None = None
    media_type: str | None = None
    licence_id: str | None = None

    @field_validator("licence_id")
    @classmethod
    def _licence(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(parse_licence_id(value))
        except CodeError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _shape(self) -> MaterialIn:
        if self.gettype == 2:
            if not self.content_base64 or not self.media_type:
                raise ValueError(
                    "an electronic material (gettype 2) needs content_base64 and media_type"
                )
            if self.media_type not in ALLOWED_MEDIA_TYPES:
                raise ValueError(
                    f"media_type {self.media_type} is not accepted "
                    f"(accepted: {', '.join(sorted(ALLOWED_MEDIA_TYPES))})"
                )
        elif self.content_base64 is not None or self.media_type is not None:
            raise ValueError("only an electronic material (gettype 2) carries content")
        if (self.gettype == 3) != (self.licence_id is not None):
            raise ValueError("a licence reference (gettype 3) and only it carries licence_id")
        return self


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    implementation_code: str = Field(min_length=31, max_length=31)
    handling_item_code: str | None = Field(default=None, min_length=33, max_length=33)
    channel: Literal["online", "window", "mobile", "self_service", "mail"] = "online"
    applicant: ApplicantIn
    materials: list[MaterialIn] = Field(default_factory=list, max_length=100)


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    certificate_number: str = Field(
        min_length=1, max_length=18, description="resident ID number or unified credit code"
    )
    limit: int = Field(default=50, ge=1, le=200)


class SupplementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    materials: list[MaterialIn] = Field(min_length=1, max_length=100)


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    nodetype: int = Field(ge=1, le=4, description="1 start, 2 middle, 3 end, 4 start=end")
    noderesult: int = Field(ge=0, le=7)
    handler_name: str = Field(min_length=1, max_length=100, description="handling officer")
    opinion: str = Field(default="", max_length=2000)


class DeadlineOut(BaseModel):
    promised_days: int
    unit: str
    date: str
    provisional: bool
    provisional_years: list[int]


class StepOut(BaseModel):
    seq: int
    nodetype: int
    noderesult: int
    node_name: str
    handler_name: str
    opinion: str
    at: str


class MaterialOut(BaseModel):
    seq: int
    name: str
    gettype: int
    supplement: bool
    media_type: str | None
    size: int | None
    sha256: str | None
    licence_id: str | None
    licence_cause: str | None
    licence_copy: dict[str, Any] | None


class ApplicantOut(BaseModel):
    name: str
    user_type: str
    certificate_type: str
    certificate_number: str
    phone: str | None


class CaseOut(BaseModel):
    case_number: str
    implementation_code: str
    handling_item_code: str | None
    item_name: str
    item_version: int
    state: str
    result: str | None
    channel: str
    applicant: ApplicantOut
    applied_at: str
    accepted_at: str | None
    finished_at: str | None
    deadline: DeadlineOut | None
    overdue: bool
    missing_materials: list[str]
    steps: list[StepOut]
    materials: list[MaterialOut]
    revision: int


class CasePage(BaseModel):
    total: int
    cases: list[CaseOut]


def _iso(moment: datetime | None) -> str | None:
    value = as_utc(moment)
    return value.isoformat() if value is not None else None


def case_out(case: Case, today: Any) -> CaseOut:
    guide = Guide.model_validate(case.item.guide)
    given = {m.name for m in case.materials}
    deadline = None
    if case.promise_date is not None:
        deadline = DeadlineOut(
            promised_days=case.promised_days or 0,
            unit=case.promised_unit or "working_day",
            date=case.promise_date.isoformat(),
            provisional=case.deadline_provisional,
            provisional_years=list(case.provisional_years or []),
        )
    open_case = case.state not in (CaseState.FINISHED, CaseState.NOT_ACCEPTED)
    return CaseOut(
        case_number=case.case_number,
        implementation_code=case.implementation_code,
        handling_item_code=case.handling_item_code,
        item_name=case.item.name,
        item_version=case.item.version,
        state=case.state,
        result=case.result,
        channel=case.channel,
        applicant=ApplicantOut(
            name=case.applicant_name,
            user_type=case.user_type,
            certificate_type=case.certificate_type,
            # Personal data never leaves the hall unmasked.
            certificate_number=mask_resident_id(case.certificate_number)
            if case.certificate_type == "10"
            else case.certificate_number,
            phone=mask_phone(case.phone) if case.phone else None,
        ),
        applied_at=_iso(case.applied_at) or "",
        accepted_at=_iso(case.accepted_at),
        finished_at=_iso(case.finished_at),
        deadline=deadline,
        overdue=bool(open_case and case.promise_date is not None and today > case.promise_date),
        missing_materials=[m.name for m in guide.materials if m.required and m.name not in given],
        steps=[
            StepOut(
                seq=s.seq,
                nodetype=s.nodetype,
                noderesult=s.noderesult,
                node_name=s.node_name,
                handler_name=s.handler_name,
                opinion=s.opinion,
                at=_iso(s.at) or "",
            )
            for s in case.steps
        ],
        materials=[
            MaterialOut(
                seq=m.seq,
                name=m.name,
                gettype=m.gettype,
                supplement=m.supplement,
                media_type=m.media_type,
                size=m.size,
                sha256=m.sha256,
                licence_id=m.licence_id,
                licence_cause=m.licence_cause,
                licence_copy=m.licence_copy,
            )
            for m in case.materials
        ],
        revision=case.revision,
    )


def applicant_type(principal: Principal) -> str:
    user_type = principal.claims.get("user_type")
    if user_type not in CERTIFICATE_FOR_USER_TYPE:
        raise forbidden(
            "applications need a citizen's or legal person's token (claim user_type "
            "'person' or 'legal_person')"
        )
    return str(user_type)


def prepare_materials(
    hall: HallRuntime,
    guide: Guide,
    materials: list[MaterialIn],
    principal: Principal,
    *,
    cause: str,
    subject_token: str | None,
) -> list[dict[str, Any]]:
    """Validate materials against the guide, decode uploads and fetch licence copies (before
    any database write, so no lock is held across the library call)."""
    names = [m.name for m in materials]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad_request(f"materials given twice: {', '.join(duplicates)}")
    prepared: list[dict[str, Any]] = []
    for index, material in enumerate(materials):
        listed = guide.material(material.name)
        if listed is None:
            raise bad_request(
                f"materials[{index}]: {material.name!r} is not a material of this item's "
                "guide (a case may not ask for or add anything the guide does not list)"
            )
        row: dict[str, Any] = {"name": material.name, "gettype": material.gettype}
        if material.gettype == 2:
            if "electronic" not in listed.formats:
                raise bad_request(
                    f"materials[{index}]: {material.name!r} is accepted only on paper"
                )
            try:
                content = base64.b64decode(material.content_base64 or "", validate=True)
            except (binascii.Error, ValueError):
                raise bad_request(f"materials[{index}]: content_base64 is not base64") from None
            if not content:
                raise bad_request(f"materials[{index}]: the file is empty")
            if len(content) > hall.settings.max_material_bytes:
                raise bad_request(
                    f"materials[{index}]: the file has {len(content)} bytes, more than "
                    f"{hall.settings.max_material_bytes}"
                )
            row.update(
                content=content,
                media_type=material.media_type,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
            )
        elif material.gettype == 3:
            row.update(
                _licence_copy(hall, listed, material, index, principal, cause, subject_token)
            )
        prepared.append(row)
    return prepared


def _licence_copy(
    hall: HallRuntime,
    listed: Any,
    material: MaterialIn,
    index: int,
    principal: Principal,
    cause: str,
    subject_token: str | None,
) -> dict[str, Any]:
    identifier = parse_licence_id(material.licence_id or "")
    if listed.licence_type_code is None:
        raise bad_request(
            f"materials[{index}]: {material.name!r} cannot be replaced by an e-licence"
        )
    if identifier.type_code != listed.licence_type_code:
        raise bad_request(
            f"materials[{index}]: licence {identifier} is of type {identifier.type_code}; "
            f"{material.name!r} needs type {listed.licence_type_code}"
        )
    if hall.elicense is None:
        raise Problem(503, detail="the e-licence library is not configured on this hall")
    full_cause = f"{cause}；材料：{material.name}"
    expires = utcnow().replace(microsecond=0) + timedelta(
        days=hall.settings.elicense.copy_validity_days
    )
    try:
        copy = hall.elicense.annotated_copy(
            str(identifier),
            cause=full_cause,
            expires_at=expires,
            bearer=principal.token,
            # The applicant's national token: consent for a licence of another province.
            subject_token=subject_token,
        )
    except LicenceRefused as exc:
        raise Problem(422, detail=f"materials[{index}]: {exc}") from None
    except LibraryUnavailable as exc:
        raise Problem(503, detail=f"materials[{index}]: {exc}; try again later") from None
    return {
        "licence_id": str(identifier),
        "licence_cause": full_cause,
        "licence_copy": copy.record(),
    }


def _next_case_number(db: Session, implementation_code: str, day_text: str, day: Any) -> str:
    """The next case number of the item for the day; the counter row is locked (PostgreSQL)
    or the write lock held (SQLite) until the transaction ends, so numbers never repeat."""
    for _ in range(3):
        moved = db.execute(
            update(CaseSequence)
            .where(
                CaseSequence.implementation_code == implementation_code,
                CaseSequence.day == day_text,
            )
            .values(last=CaseSequence.last + 1)
            .returning(CaseSequence.last)
        ).scalar_one_or_none()
        if moved is not None:
            sequence = moved
            break
        try:
            with db.begin_nested():
                db.add(CaseSequence(implementation_code=implementation_code, day=day_text, last=1))
            sequence = 1
            break
        except IntegrityError:
            continue  # another request created the day's counter first; take the next number
    else:
        raise Problem(503, detail="cannot allocate a case number right now; try again")
    if sequence > 9999:
        raise conflict(f"item {implementation_code} has used all 9999 case numbers of the day")
    return str(build_case_number(implementation_code, day, sequence))


def _read_item_guide(sessions: Callable[[], Session], code: str) -> Guide:
    # A short read of its own: the request's session must not start (and on SQLite take the
    # write lock) before the e-licence library has answered.
    with sessions() as session:
        item = current_version(session, code)
        if item is None:
            raise not_found(f"item {code} is not in the published catalog")
        if item.state != "published":
            raise conflict(f"item {code} is {item.state}; it takes no new applications")
        return Guide.model_validate(item.guide)


def load_case(db: Session, number: str, *, lock: bool = False) -> Case | None:
    query = select(Case).where(Case.case_number == number)
    if lock:
        query = query.with_for_update(of=Case)
    return db.scalars(query).unique().first()


def visible_case(db: Session, number: str, principal: Principal, *, lock: bool = False) -> Case:
    """The case if the caller is its applicant or staff; 404 otherwise (whether it exists
    is nobody else's business)."""
    case = load_case(db, number, lock=lock)
    if case is None or not (
        case.applicant_sub == principal.subject or CASE_HANDLE in principal.scopes
    ):
        raise not_found(f"case {number} does not exist")
    return case


def _add_materials(case: Case, prepared: list[dict[str, Any]], *, supplement: bool) -> None:
    start = max((m.seq for m in case.materials), default=0)
    now = utcnow()
    for offset, row in enumerate(prepared, start=1):
        case.materials.append(
            CaseMaterial(seq=start + offset, supplement=supplement, added_at=now, **row)
        )


def _report(db: Session, hall: HallRuntime, case: Case) -> None:
    reports.enqueue_case_report(db, case, hall.settings.region_code)


def apply(
    db: Session,
    sessions: Callable[[], Session],
    hall: HallRuntime,
    body: CaseIn,
    principal: Principal,
    *,
    subject_token: str | None = None,
) -> CaseOut:
    """A new case of the applicant ``principal``. ``sessions`` gives the short read of the
    item before the library call; ``subject_token`` is the applicant's national token (consent
    for another province's licences)."""
    user_type = applicant_type(principal)
    if body.applicant.certificate_type != CERTIFICATE_FOR_USER_TYPE[user_type]:
        raise bad_request(
            f"a {user_type} applies with certificate type {CERTIFICATE_FOR_USER_TYPE[user_type]}"
        )
    guide = _read_item_guide(sessions, body.implementation_code)
    if user_type not in guide.server_type:
        raise bad_request(f"item {guide.implementation_code} does not serve {user_type}")
    if body.handling_item_code is not None and body.handling_item_code not in {
        h.code for h in guide.handling_items
    }:
        raise bad_request(
            f"handling item {body.handling_item_code} is not one of item "
            f"{guide.implementation_code}"
        )
    cause = f"办件申请：{guide.name}（事项 {guide.implementation_code}）"
    prepared = prepare_materials(
        hall, guide, body.materials, principal, cause=cause, subject_token=subject_token
    )

    item = current_version(db, body.implementation_code)
    if item is None or item.state != "published":
        raise conflict(f"item {body.implementation_code} was withdrawn meanwhile")
    now = utcnow()
    day = hall.local_date(now)
    number = _next_case_number(db, item.implementation_code, f"{day:%Y%m%d}", day)
    case = Case(
        case_number=number,
        item=item,
        implementation_code=item.implementation_code,
        handling_item_code=body.handling_item_code,
        applicant_sub=principal.subject,
        user_type=user_type,
        applicant_name=body.applicant.name,
        certificate_type=body.applicant.certificate_type,
        certificate_number=body.applicant.certificate_number,
        phone=body.applicant.phone,
        channel=body.channel,
        state=CaseState.SUBMITTED,
        applied_at=now,
        deadline_provisional=False,
        provisional_years=[],
        revision=1,
    )
    _add_materials(case, prepared, supplement=False)
    db.add(case)
    db.flush()
    audit.record(
        db,
        actor=principal.subject,
        action="case.apply",
        resource=f"case/{number}",
        result="success",
        detail={
            "item": item.implementation_code,
            "version": item.version,
            "materials": [{"name": r["name"], "gettype": r["gettype"]} for r in prepared],
            "licences": [
                {"licence_id": r["licence_id"], "cause": r["licence_cause"]}
                for r in prepared
                if r["gettype"] == 3
            ],
        },
    )
    _report(db, hall, case)
    return case_out(case, hall.today(now))


def list_cases(
    db: Session,
    hall: HallRuntime,
    principal: Principal,
    *,
    state: CaseState | None = None,
    overdue: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> CasePage:
    query = select(Case)
    if CASE_HANDLE not in principal.scopes:
        # Only applicants have cases of their own; a system client without the handling
        # scope is refused rather than shown an empty list (least privilege).
        applicant_type(principal)
        query = query.where(Case.applicant_sub == principal.subject)
    if state is not None:
        query = query.where(Case.state == state)
    today = hall.today(utcnow())
    if overdue:
        query = query.where(
            Case.promise_date < today,
            Case.state.not_in([CaseState.FINISHED, CaseState.NOT_ACCEPTED]),
        )
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(Case.id.desc()).limit(limit).offset(offset)).unique()
    return CasePage(total=total, cases=[case_out(c, today) for c in rows])


def lookup_cases(db: Session, hall: HallRuntime, certificate_number: str, limit: int) -> CasePage:
    """Cases of one applicant, matched by keyed hash: the number is stored only encrypted."""
    lookup = certificate_lookup(certificate_number)
    query = select(Case).where(Case.certificate_number_lookup == lookup)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(Case.id.desc()).limit(limit)).unique()
    today = hall.today(utcnow())
    return CasePage(total=total, cases=[case_out(c, today) for c in rows])


def get_case(db: Session, hall: HallRuntime, number: str, principal: Principal) -> CaseOut:
    case = visible_case(db, number, principal)
    return case_out(case, hall.today(utcnow()))


class StepRefused(Exception):
    """A step the case's state does not allow; the caller audits the refusal (on its own, so
    the record outlives the rolled-back transaction) and answers ``problem()``."""

    def __init__(self, state: CaseState, body: StepIn, refusal: IllegalStep) -> None:
        super().__init__(refusal.detail)
        self.state, self.body, self.refusal = state, body, refusal

    @property
    def detail(self) -> dict[str, Any]:
        return {
            "nodetype": self.body.nodetype,
            "noderesult": self.body.noderesult,
            "rule": self.refusal.rule,
        }

    def problem(self) -> Problem:
        return Problem(
            409,
            title="Illegal step",
            detail=self.refusal.detail,
            type=ILLEGAL_STEP_TYPE,
            rule=self.refusal.rule,
            rule_text=RULES[self.refusal.rule],
            state=self.state.value,
        )


def take_step(db: Session, hall: HallRuntime, number: str, body: StepIn, *, actor: str) -> CaseOut:
    case = load_case(db, number, lock=True)
    if case is None:
        raise not_found(f"case {number} does not exist")
    state = CaseState(case.state)
    middle = sum(1 for s in case.steps if s.nodetype == 2 and s.noderesult in (0, 1))
    try:
        outcome = apply_step(
            state,
            CaseState(case.resume_state) if case.resume_state else None,
            body.nodetype,
            body.noderesult,
            middle_steps_taken=middle,
        )
    except IllegalStep as exc:
        raise StepRefused(state, body, exc) from None
    now = utcnow()
    case.state, case.resume_state = outcome.state, outcome.resume_state
    if outcome.accepts:
        guide = case.item.guide
        deadline = hall.deadline(now, guide["promise_day"], guide["promise_day_unit"])
        case.accepted_at = now
        case.promised_days, case.promised_unit = guide["promise_day"], guide["promise_day_unit"]
        case.promise_date = deadline.date
        case.deadline_provisional = deadline.provisional
        case.provisional_years = list(deadline.provisional_years)
    if outcome.finishes:
        case.finished_at, case.result = now, outcome.result
    case.steps.append(
        CaseStep(
            seq=len(case.steps) + 1,
            nodetype=body.nodetype,
            noderesult=body.noderesult,
            node_name=step_name(body.nodetype, body.noderesult),
            handler_sub=actor,
            handler_name=body.handler_name,
            opinion=body.opinion,
            at=now,
        )
    )
    case.revision += 1
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="case.step",
        resource=f"case/{number}",
        result="success",
        detail={
            "nodetype": body.nodetype,
            "noderesult": body.noderesult,
            "from": state.value,
            "to": outcome.state.value,
        },
    )
    _report(db, hall, case)
    return case_out(case, hall.today(now))


def supplement(
    db: Session,
    sessions: Callable[[], Session],
    hall: HallRuntime,
    number: str,
    body: SupplementIn,
    principal: Principal,
    *,
    subject_token: str | None = None,
) -> CaseOut:
    # Read-only look first, in its own session (no lock across the library call).
    with sessions() as session:
        peek = visible_case(session, number, principal)
        if peek.applicant_sub != principal.subject:
            raise forbidden("only the applicant supplies materials")
        guide = Guide.model_validate(peek.item.guide)
        cause = f"办件补正：{guide.name}（办件 {number}）"
    prepared = prepare_materials(
        hall, guide, body.materials, principal, cause=cause, subject_token=subject_token
    )
    case = visible_case(db, number, principal, lock=True)
    if case.state != CaseState.CORRECTION:
        raise Problem(
            409,
            title="Illegal step",
            detail=f"case {number} is {case.state}; supplements are taken only while "
            "补齐补正 is pending",
            type=ILLEGAL_STEP_TYPE,
            rule="supplement-needs-correction",
            rule_text="materials are supplied only after a 补齐补正 (noderesult 5) step",
            state=case.state,
        )
    _add_materials(case, prepared, supplement=True)
    case.state, case.resume_state = case.resume_state or CaseState.SUBMITTED, None
    case.revision += 1
    db.flush()
    audit.record(
        db,
        actor=principal.subject,
        action="case.supplement",
        resource=f"case/{number}",
        result="success",
        detail={"materials": [{"name": r["name"], "gettype": r["gettype"]} for r in prepared]},
    )
    _report(db, hall, case)
    return case_out(case, hall.today(utcnow()))
