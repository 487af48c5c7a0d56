"""HTTP interface of the e-licence service.

Scopes: ``elicense:admin`` registers licence types; ``elicense:issue`` issues licences,
reads them as their issuer and changes their status; ``elicense:read`` lets a holder list and
fetch their own licences (matched by the token's ``sub``); ``elicense:share`` lets an
organisation obtain an annotated copy (加注件), which also needs the holder's consent: a token
of the holder carrying ``elicense:consent``. Verification is public, and so are the inputs of
``zwfw licence verify``: the issuer seal register (``GET /issuers``) and, per licence, its
status and registry digest (``GET /verify/{identifier}``).

Annotated-copy request (GB/T 36906 share shape: identifier + cause of use + expiry)::

    POST /licences/{identifier}/copies
    Authorization: Bearer <organisation token, scope elicense:share>
    {"cause": "办理 XX 事项", "expires_at": "2025-07-01T00:00:00+08:00",
     "holder_token": "<the holder's token, scope elicense:consent>"}
    → 201 {"copy_id", "identifier", "cause", "expires_at", "made_at", "made_by",
           "document": <base64 canonical copy>, "signature": <base64 SES_Signature>, ...}
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from zwfw.codes import CodeError, parse_credit_code, parse_division, parse_implementation_code
from zwfw.codes.personal import parse_resident_id
from zwfw.services.elicense.document import STATUS_NAMES, digest
from zwfw.services.elicense.face import render_face
from zwfw.services.elicense.models import Licence, LicenceType, UsageRecord, utc
from zwfw.services.elicense.sealing import SealServiceUnavailable
from zwfw.services.elicense.service import (
    Holder,
    Issuance,
    LicenceError,
    LicenceService,
)
from zwfw.services.kit import (
    DbSession,
    Principal,
    Problem,
    audit,
    bad_request,
    conflict,
    forbidden,
    kit_state,
    not_found,
    public,
    require_scopes,
    unauthorized,
)

SCOPE_ADMIN = "elicense:admin"
SCOPE_ISSUE = "elicense:issue"
SCOPE_READ = "elicense:read"
SCOPE_SHARE = "elicense:share"
SCOPE_CONSENT = "elicense:consent"

StatusCode = Literal["01", "02", "03", "04", "07"]


def service(request: Request) -> LicenceService:
    return request.app.state.elicense


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{field} is not valid base64") from None


def problem(error: LicenceError | SealServiceUnavailable) -> Problem:
    if isinstance(error, SealServiceUnavailable):
        return Problem(503, detail=f"the licence cannot be sealed right now: {error}")
    return Problem(error.status, detail=error.detail)


RESIDENT_ID_CODE_TYPE = "111"


def _code(parser: Any, value: str) -> str:
    try:
        return str(parser(value))
    except CodeError as exc:
        raise ValueError(str(exc)) from None


# --- schemas -------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TypeIn(_In):
    type_code: str = Field(description="Defining authority's credit code + 3 digits (21).")
    name: str = Field(min_length=1, max_length=200, description="证照类型名称")
    defining_authority_name: str = Field(min_length=1, max_length=200)
    data_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema (2020-12) of the type-specific licence data.",
    )

    @field_validator("type_code")
    @classmethod
    def _type_code(cls, value: str) -> str:
        if len(value) != 21 or not value[18:].isdigit():
            raise ValueError("type code is 21 characters: a credit code and 3 digits")
        return _code(parse_credit_code, value[:18]) + value[18:]

    @field_validator("data_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value


class TypeOut(BaseModel):
    type_code: str
    name: str
    defining_authority_name: str
    defining_authority_code: str
    data_schema: dict[str, Any]


class HolderIn(_In):
    name: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=64, description="Holder's ID or credit code.")
    code_type: str = Field(default="111", pattern=r"^\d{3}$", description="GB/T 36903 Annex A")
    sub: str = Field(min_length=1, max_length=200, description="Holder's identity subject.")

    @model_validator(mode="after")
    def _resident_id(self) -> HolderIn:
        # Code type 111 (GB/T 36903 Annex A) says the code is a resident ID number: a licence
        # is never issued to one that is not (GB 11643, check character included).
        if self.code_type == RESIDENT_ID_CODE_TYPE:
            _code(parse_resident_id, self.code)
        return self


class IssueIn(_In):
    type_code: str
    issuer_code: str
    licence_number: str = Field(min_length=1, max_length=100)
    serial: str | None = Field(default=None, pattern=r"^[0-9A-Za-z]{1,32}$")
    version: int = Field(default=1, ge=1, le=999)
    issue_date: date | None = None
    valid_from: date | None = None
    valid_until: date | None = Field(default=None, description="null = 长期 (no end)")
    jurisdiction: str = Field(description="6-digit administrative division code.")
    holder: HolderIn
    related_item: str | None = Field(default=None, description="Item implementation code.")
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("issuer_code")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _code(parse_credit_code, value)

    @field_validator("jurisdiction")
    @classmethod
    def _jurisdiction(cls, value: str) -> str:
        if len(value) != 6:
            raise ValueError("jurisdiction is a 6-digit division code")
        return _code(parse_division, value)

    @field_validator("related_item")
    @classmethod
    def _item(cls, value: str | None) -> str | None:
        return None if value is None else _code(parse_implementation_code, value)


class StatusOut(BaseModel):
    code: str
    name: str
    reason: str | None = None
    changed_at: datetime | None = None


class LicenceOut(BaseModel):
    identifier: str
    type_code: str
    licence_number: str
    issuer_code: str
    es_id: str
    valid_from: date
    valid_until: date | None
    status: StatusOut
    document: str = Field(description="The sealed licence document (RFC 8785 JSON), base64.")
    metadata: dict[str, Any] = Field(description="The same document, decoded.")
    signature: str = Field(description="SES_Signature over the document, DER, base64.")
    verify_url: str


class LicenceSummary(BaseModel):
    identifier: str
    type_name: str
    licence_number: str
    issuer_name: str
    valid_until: date | None
    status: StatusOut


class StatusIn(_In):
    status: StatusCode
    reason: str = Field(min_length=1, max_length=500)


class CopyIn(_In):
    cause: str = Field(min_length=1, max_length=500, description="事由: why the copy is needed.")
    expires_at: datetime = Field(description="When the copy stops being valid.")
    holder_token: str = Field(
        min_length=1, max_length=16384, description="The holder's bearer token (consent)."
    )

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. +08:00 or Z)")
        return value


class CopyOut(BaseModel):
    copy_id: str
    identifier: str
    cause: str
    made_at: datetime
    made_by: str
    expires_at: datetime
    es_id: str
    document: str = Field(description="The sealed copy document (RFC 8785 JSON), base64.")
    signature: str = Field(description="SES_Signature over the document, DER, base64.")
    verify_url: str


class UsageOut(BaseModel):
    identifier: str
    at: datetime
    actor: str
    actor_kind: Literal["holder", "organisation", "issuer"]
    client_id: str | None
    action: str
    cause: str
    copy_id: str | None


class IssuerOut(BaseModel):
    issuer_code: str = Field(description="Credit code of the issuing authority.")
    name: str
    es_id: str = Field(description="The seal its licences and copies carry.")
    seal_status: Literal["valid", "suspended", "revoked"] | None = Field(
        description="The seal's status at the e-seal service now (null: unknown there)."
    )


class IssuerRegisterOut(BaseModel):
    as_of: datetime = Field(description="When the register and seal statuses were read.")
    issuers: list[IssuerOut]


class VerifyIn(_In):
    document: str = Field(description="The sealed document bytes, base64.")
    signature: str = Field(description="SES_Signature, DER, base64.")


class CheckOut(BaseModel):
    name: str
    status: Literal["passed", "failed", "skipped"]
    reason: str
    code: str | None


class VerifyOut(BaseModel):
    valid: bool
    kind: Literal["licence", "copy"] | None
    identifier: str | None
    checks: list[CheckOut]
    seal: dict[str, Any] | None = Field(description="The five GB/T 38540 steps.")
    status: dict[str, str] | None
    cause: str | None
    expires_at: str | None
    licence: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Public facts of the licence (by-identifier verification): type, issuer, validity, "
            "status, es_id, document_sm3 (the registry's SM3 digest of the document issued "
            "under the identifier) and as_of (when they were read)."
        ),
    )


# --- helpers -------------------------------------------------------------------------------


def status_out(svc: LicenceService, licence: Licence) -> dict[str, Any]:
    code = svc.effective_status(licence)
    changed = licence.status_changed_at
    return {
        "code": code,
        "name": STATUS_NAMES[code],
        "reason": licence.status_reason,
        "changed_at": utc(changed) if changed else None,
    }


def licence_out(svc: LicenceService, licence: Licence) -> LicenceOut:
    return LicenceOut(
        identifier=licence.identifier,
        type_code=licence.type_code,
        licence_number=licence.licence_number,
        issuer_code=licence.issuer_code,
        es_id=licence.es_id,
        valid_from=licence.valid_from,
        valid_until=licence.valid_until,
        status=StatusOut(**status_out(svc, licence)),
        document=b64(licence.document),
        metadata=json.loads(licence.document),
        signature=b64(licence.signature),
        verify_url=svc.verify_url(licence.identifier),
    )


def summary_out(svc: LicenceService, licence: Licence) -> LicenceSummary:
    doc = json.loads(licence.document)
    return LicenceSummary(
        identifier=licence.identifier,
        type_name=doc["type_name"],
        licence_number=licence.licence_number,
        issuer_name=doc["issuer_name"],
        valid_until=licence.valid_until,
        status=StatusOut(**status_out(svc, licence)),
    )


def usage_out(record: UsageRecord) -> UsageOut:
    return UsageOut(
        identifier=record.identifier,
        at=utc(record.at),
        actor=record.actor,
        actor_kind=record.actor_kind,  # type: ignore[arg-type]
        client_id=record.client_id,
        action=record.action,
        cause=record.cause,
        copy_id=record.copy_id,
    )


# --- routes: types -------------------------------------------------------------------------

router = APIRouter(tags=["elicense"])


def type_out(row: LicenceType) -> TypeOut:
    return TypeOut(
        type_code=row.type_code,
        name=row.name,
        defining_authority_name=row.defining_authority_name,
        defining_authority_code=row.type_code[:18],
        data_schema=row.data_schema,
    )


@router.post("/types", status_code=201, summary="Register a licence type")
def register_type(
    body: TypeIn,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_ADMIN))],
) -> TypeOut:
    if db.get(LicenceType, body.type_code) is not None:
        raise conflict(f"licence type {body.type_code} is already registered")
    row = LicenceType(
        type_code=body.type_code,
        name=body.name,
        defining_authority_name=body.defining_authority_name,
        data_schema=body.data_schema,
        created_at=service(request).now(),
    )
    db.add(row)
    db.flush()
    audit.record(
        db, actor=principal.subject, action="licence_type.register",
        resource=f"type/{body.type_code}", result="success",
    )  # fmt: skip
    return type_out(row)


@router.get("/types", summary="Licence types (public catalogue)")
@public
def list_types(db: DbSession) -> list[TypeOut]:
    return [type_out(t) for t in db.scalars(select(LicenceType).order_by(LicenceType.type_code))]


@router.get("/types/{type_code}", summary="One licence type (public)")
@public
def get_type(type_code: str, db: DbSession) -> TypeOut:
    row = db.get(LicenceType, type_code)
    if row is None:
        raise not_found(f"licence type {type_code} is not registered")
    return type_out(row)


# --- routes: issuer ------------------------------------------------------------------------


@router.post("/licences", status_code=201, summary="Issue a licence, sealed by its issuer")
def issue(
    body: IssueIn,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_ISSUE))],
) -> LicenceOut:
    svc = service(request)
    issuance = Issuance(
        type_code=body.type_code,
        issuer_code=body.issuer_code,
        licence_number=body.licence_number,
        serial=body.serial,
        version=body.version,
        issue_date=body.issue_date,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        jurisdiction=body.jurisdiction,
        holder=Holder(body.holder.name, body.holder.code, body.holder.code_type, body.holder.sub),
        related_item=body.related_item,
        data=body.data,
    )
    try:
        licence = svc.issue(db, issuance, actor=principal.subject)
    except (LicenceError, SealServiceUnavailable) as exc:
        raise problem(exc) from None
    audit.record(
        db, actor=principal.subject, action="licence.issue",
        resource=f"licence/{licence.identifier}", result="success",
        detail={"type_code": licence.type_code, "es_id": licence.es_id},
    )  # fmt: skip
    return licence_out(svc, licence)


@router.get("/licences/{identifier}", summary="A licence as its issuer sees it")
def get_licence(
    identifier: str,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_ISSUE))],
) -> LicenceOut:
    svc = service(request)
    try:
        licence = svc.licence(db, identifier)
    except LicenceError as exc:
        raise problem(exc) from None
    svc.record_use(
        db, licence, actor=principal.subject, actor_kind="issuer", action="view",
        cause="颁证机构查阅", client_id=principal.client_id,
    )  # fmt: skip
    return licence_out(svc, licence)


@router.post(
    "/licences/{identifier}/status", summary="Suspend, revoke, cancel, withdraw, reinstate"
)
def change_status(
    identifier: str,
    body: StatusIn,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_ISSUE))],
) -> StatusOut:
    svc = service(request)
    try:
        licence = svc.change_status(db, identifier, body.status, body.reason)
    except LicenceError as exc:
        raise problem(exc) from None
    svc.record_use(
        db, licence, actor=principal.subject, actor_kind="issuer", action="status",
        cause=f"状态变更为 {body.status}: {body.reason}", client_id=principal.client_id,
    )  # fmt: skip
    audit.record(
        db, actor=principal.subject, action="licence.status",
        resource=f"licence/{identifier}", result="success",
        detail={"status": body.status, "reason": body.reason},
    )  # fmt: skip
    return StatusOut(**status_out(svc, licence))


# --- routes: holder ------------------------------------------------------------------------


@router.get("/me/licences", summary="The caller's own licences")
def my_licences(
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_READ))],
) -> list[LicenceSummary]:
    svc = service(request)
    rows = db.scalars(
        select(Licence)
        .where(Licence.holder_sub == principal.subject)
        .order_by(Licence.issued_at, Licence.identifier)
    )
    return [summary_out(svc, licence) for licence in rows]


def _holder_licence(
    svc: LicenceService, db: DbSession, identifier: str, principal: Principal
) -> Licence:
    try:
        return svc.holder_licence(db, identifier, principal.subject)
    except LicenceError as exc:
        raise problem(exc) from None


@router.get("/me/licences/{identifier}", summary="One of the caller's licences, sealed")
def my_licence(
    identifier: str,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_READ))],
) -> LicenceOut:
    svc = service(request)
    licence = _holder_licence(svc, db, identifier, principal)
    svc.record_use(
        db, licence, actor=principal.subject, actor_kind="holder", action="view",
        cause="持证人查看", client_id=principal.client_id,
    )  # fmt: skip
    return licence_out(svc, licence)


@router.get(
    "/me/licences/{identifier}/face.pdf",
    summary="The licence face as PDF, with a QR code to its verification",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def my_licence_face(
    identifier: str,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_READ))],
) -> Response:
    svc = service(request)
    licence = _holder_licence(svc, db, identifier, principal)
    pdf = render_face(json.loads(licence.document), svc.verify_url(licence.identifier))
    svc.record_use(
        db, licence, actor=principal.subject, actor_kind="holder", action="download",
        cause="持证人下载照面", client_id=principal.client_id,
    )  # fmt: skip
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{licence.identifier}.pdf"'},
    )


@router.get("/me/licences/{identifier}/usage", summary="用证记录: who used the licence, why, when")
def my_licence_usage(
    identifier: str,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_READ))],
) -> list[UsageOut]:
    svc = service(request)
    licence = _holder_licence(svc, db, identifier, principal)
    return [usage_out(r) for r in svc.usage(db, licence.identifier)]


# --- routes: annotated copies --------------------------------------------------------------


async def holder_consent(request: Request, body: CopyIn) -> Principal:
    """The holder behind ``holder_token``: a valid token for this service with the consent
    scope (401/403 problems name the field)."""
    validator = kit_state(request.app).validator
    if validator is None:
        raise Problem(503, detail="authentication is not configured on this service")
    try:
        holder = await validator.validate(body.holder_token)
    except Problem as exc:
        raise unauthorized(f"holder_token: {exc.detail}") from None
    if SCOPE_CONSENT not in holder.scopes:
        raise forbidden(f"holder_token lacks the scope {SCOPE_CONSENT}")
    return holder


@router.post(
    "/licences/{identifier}/copies",
    status_code=201,
    summary="Annotated copy (加注件) for a cause and expiry, with the holder's consent",
)
def make_copy(
    identifier: str,
    body: CopyIn,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_SHARE))],
    holder: Annotated[Principal, Depends(holder_consent)],
) -> CopyOut:
    svc = service(request)
    try:
        licence = svc.holder_licence(db, identifier, holder.subject)
        copy = svc.make_copy(
            db, licence, made_by=principal.subject, cause=body.cause, expires_at=body.expires_at
        )
    except (LicenceError, SealServiceUnavailable) as exc:
        audit.record(
            request, action="licence.copy", resource=f"licence/{identifier}",
            result=f"refused:{problem(exc).status}", detail={"cause": body.cause},
        )  # fmt: skip
        raise problem(exc) from None
    svc.record_use(
        db, licence, actor=principal.subject, actor_kind="organisation", action="copy",
        cause=body.cause, client_id=principal.client_id, copy_id=copy.copy_id,
    )  # fmt: skip
    audit.record(
        db, actor=principal.subject, action="licence.copy",
        resource=f"licence/{identifier}", result="success",
        detail={"cause": body.cause, "copy_id": copy.copy_id, "holder": holder.subject},
    )  # fmt: skip
    return CopyOut(
        copy_id=copy.copy_id,
        identifier=licence.identifier,
        cause=copy.cause,
        made_at=utc(copy.made_at),
        made_by=copy.made_by,
        expires_at=utc(copy.expires_at),
        es_id=licence.es_id,
        document=b64(copy.document),
        signature=b64(copy.signature),
        verify_url=svc.verify_url(licence.identifier),
    )


# --- routes: verification ------------------------------------------------------------------


@router.get("/issuers", summary="The issuer seal register: each issuing authority's seal")
@public
def issuer_register(request: Request) -> IssuerRegisterOut:
    svc = service(request)
    try:
        issuers = [
            IssuerOut(
                issuer_code=code,
                name=issuer.name,
                es_id=issuer.es_id,
                seal_status=_seal_status(svc, issuer.es_id),
            )
            for code, issuer in sorted(svc.settings.issuers.items())
        ]
    except SealServiceUnavailable as exc:
        raise Problem(503, detail=str(exc)) from None
    return IssuerRegisterOut(as_of=svc.now(), issuers=issuers)


def _seal_status(svc: LicenceService, es_id: str) -> Any:
    status = svc.seals.status(es_id)
    return status.value if status is not None else None


@router.post("/verify", summary="Verify a presented licence or annotated copy")
@public
def verify(body: VerifyIn, db: DbSession, request: Request) -> VerifyOut:
    svc = service(request)
    data, signature = unb64(body.document, "document"), unb64(body.signature, "signature")
    try:
        result = svc.verify(db, data, signature)
    except SealServiceUnavailable as exc:
        raise Problem(503, detail=str(exc)) from None
    return VerifyOut.model_validate(result.as_dict())


@router.get("/verify/{identifier}", summary="Verify a licence by identifier (the QR code's target)")
@public
def verify_identifier(identifier: str, db: DbSession, request: Request) -> VerifyOut:
    from zwfw.codes import parse_licence_id

    svc = service(request)
    try:
        canonical_id = str(parse_licence_id(identifier))
    except CodeError as exc:
        raise bad_request(f"not a licence identifier: {exc}") from None
    licence = db.get(Licence, canonical_id)
    if licence is None:
        raise not_found(f"licence {canonical_id} does not exist")
    try:
        result = svc.verify(db, licence.document, licence.signature)
    except SealServiceUnavailable as exc:
        raise Problem(503, detail=str(exc)) from None
    doc = json.loads(licence.document)
    out = result.as_dict()
    out["licence"] = {
        "es_id": licence.es_id,
        "document_sm3": digest(licence.document).hex(),
        "as_of": svc.now().isoformat(),
        "type_name": doc["type_name"],
        "issuer_name": doc["issuer_name"],
        "issuer_code": doc["issuer_code"],
        "valid_from": doc["valid_from"],
        "valid_until": doc["valid_until"],
        "status": {
            "code": svc.effective_status(licence),
            "reason": licence.status_reason,
            "changed_at": (
                utc(licence.status_changed_at).isoformat() if licence.status_changed_at else None
            ),
        },
    }
    return VerifyOut.model_validate(out)
