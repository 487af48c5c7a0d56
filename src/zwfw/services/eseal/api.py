"""HTTP interface of the e-seal service.

Scopes: ``eseal:admin`` makes seals and changes their status, ``eseal:read`` reads the registry,
``eseal:sign`` signs (and the token's subject must be on the seal's signer list; a licence seal
signs only for the configured e-licence client). Verification, seal status and the trust
anchors are public.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from zwfw.codes import CodeError, parse_credit_code
from zwfw.crypto.x509 import SM2Certificate
from zwfw.services.eseal.models import Seal
from zwfw.services.eseal.service import (
    SEAL_CATEGORIES,
    SealRequest,
    SealService,
    SealServiceError,
    SignerRequest,
    b64,
    status_record,
)
from zwfw.services.kit import (
    DbSession,
    Principal,
    Problem,
    audit,
    bad_request,
    public,
    require_scopes,
)

SCOPE_ADMIN = "eseal:admin"
SCOPE_READ = "eseal:read"
SCOPE_SIGN = "eseal:sign"

SealCategory = Literal["legal_name", "finance", "contract", "invoice", "business", "licence"]


def service(request: Request) -> SealService:
    return request.app.state.eseal


def decode_base64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{field} is not valid base64") from None


def decode_digest(value: str) -> bytes:
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        raise bad_request("digest must be hexadecimal") from None
    if len(digest) != 32:
        raise bad_request("digest must be a 32-byte SM3 digest (64 hex digits)")
    return digest


def problem(error: SealServiceError) -> Problem:
    return Problem(error.status, detail=error.detail)


# --- schemas -------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignerIn(_In):
    subject: str = Field(
        min_length=1, max_length=200, description="Token subject (sub) allowed to sign."
    )
    name: str = Field(min_length=1, max_length=200, description="Signer name for its certificate.")


class PictureIn(_In):
    png: str = Field(description="The seal image, PNG, base64.")
    width_mm: int = Field(default=40, ge=10, le=100)
    height_mm: int = Field(default=40, ge=10, le=100)


class SealIn(_In):
    credit_code: str = Field(description="Unified social credit code of the organisation.")
    organisation: str = Field(min_length=1, max_length=200)
    category: SealCategory
    name: str = Field(min_length=1, max_length=200, description="Seal name as engraved.")
    picture: PictureIn
    valid_start: datetime | None = Field(default=None, description="Default: now.")
    valid_end: datetime
    signers: list[SignerIn] = Field(min_length=1, max_length=20)

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str) -> str:
        try:
            return str(parse_credit_code(value))
        except CodeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("valid_start", "valid_end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. +08:00 or Z)")
        return value


class SignerOut(BaseModel):
    subject: str
    name: str
    certificate: str = Field(description="Signer certificate, PEM.")
    sm3_fingerprint: str


class SealStatusOut(BaseModel):
    es_id: str
    status: Literal["valid", "suspended", "revoked"]
    reason: str | None
    changed_at: str | None
    valid_start: str
    valid_end: str
    within_validity: bool


class SealOut(BaseModel):
    es_id: str
    credit_code: str
    organisation: str
    category: SealCategory
    category_name: str
    name: str
    valid_start: datetime
    valid_end: datetime
    status: SealStatusOut
    signers: list[SignerOut]
    seal: str = Field(description="The SESeal, DER, base64 (GB/T 38540).")


class StatusChangeIn(_In):
    reason: str = Field(min_length=1, max_length=500)


class SignIn(_In):
    digest: str | None = Field(default=None, description="SM3 digest of the document, hex.")
    content: str | None = Field(default=None, description="The document itself, base64.")
    property_info: str = Field(
        default="", max_length=256, description="Where the signature sits (IA5String)."
    )

    @field_validator("property_info")
    @classmethod
    def _ascii(cls, value: str) -> str:
        if not value.isascii():
            raise ValueError("property_info must be ASCII (IA5String)")
        return value


class SignOut(BaseModel):
    es_id: str
    signer: str
    time_info: datetime
    data_hash: str
    signature: str = Field(description="SES_Signature, DER, base64.")


class VerifyIn(_In):
    signature: str = Field(description="SES_Signature, DER, base64.")
    content: str | None = Field(default=None, description="The signed content, base64.")
    digest: str | None = Field(default=None, description="SM3 digest of the content, hex.")


class StepOut(BaseModel):
    step: int
    name: Literal["signature", "signer_in_seal", "seal", "signer_certificate", "data_hash"]
    status: Literal["passed", "failed", "skipped"]
    reason: str
    code: str | None


class VerifyOut(BaseModel):
    valid: bool
    steps: list[StepOut]
    es_id: str | None
    seal_name: str | None
    signer: str | None
    time_info: str | None
    property_info: str | None
    seal_status: SealStatusOut | None


class TrustOut(BaseModel):
    root_certificate: str
    maker_certificate: str


# --- routes --------------------------------------------------------------------------------

router = APIRouter(tags=["eseal"])


# First in the table: it is the most frequent request and routes are matched in order.
@router.post(
    "/verify",
    summary="Verify a seal signature: the five GB/T 38540 steps and the seal's current status",
    response_model=VerifyOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": VerifyIn.model_json_schema()}},
        }
    },
)
@public
async def verify(request: Request) -> Response:
    svc = service(request)
    # The body is validated with the model directly rather than through FastAPI's parameter
    # machinery: on this route that machinery cost more than any step but SM2 itself.
    raw = await request.body()
    if len(raw) > 2 * svc.settings.max_content_bytes:
        raise Problem(413, detail="the request is too large; send the SM3 digest instead")
    try:
        body = VerifyIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None
    signature = decode_base64(body.signature, "signature")
    if body.content is not None and body.digest is not None:
        raise bad_request("give content or digest, not both")
    content = decode_base64(body.content, "content") if body.content is not None else None
    digest = decode_digest(body.digest) if body.digest is not None else None
    # SM2 verification is CPU-bound C code of well under a millisecond, and seal statuses are
    # cached: a thread hop would cost more than it frees the event loop for.
    verification = svc.verify(signature, content, digest)
    return Response(
        json.dumps(
            verification.as_dict(svc.now()), ensure_ascii=False, separators=(",", ":")
        ).encode(),
        media_type="application/json",
    )


def seal_out(svc: SealService, seal: Seal) -> dict[str, Any]:
    return {
        "es_id": seal.es_id,
        "credit_code": seal.credit_code,
        "organisation": seal.organisation,
        "category": seal.category,
        "category_name": SEAL_CATEGORIES[seal.category],
        "name": seal.name,
        "valid_start": seal.valid_start,
        "valid_end": seal.valid_end,
        "status": status_record(seal).as_dict(svc.now()),
        "signers": [
            {
                "subject": s.subject,
                "name": s.name,
                "certificate": SM2Certificate.from_der(s.cert_der).to_pem().decode(),
                "sm3_fingerprint": SM2Certificate.from_der(s.cert_der).fingerprint.hex(),
            }
            for s in seal.signers
        ],
        "seal": b64(seal.seal_der),
    }


@router.get("/trust", summary="Root and seal-maker certificates (PEM) to verify seals offline")
@public
def trust(request: Request) -> TrustOut:
    authority = service(request).authority
    return TrustOut(
        root_certificate=authority.root.to_pem().decode(),
        maker_certificate=authority.maker.to_pem().decode(),
    )


@router.post("/seals", status_code=201, summary="Make and register a seal")
def make_seal(
    body: SealIn,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_ADMIN))],
) -> SealOut:
    svc = service(request)
    picture = decode_base64(body.picture.png, "picture.png")
    if len(picture) > svc.settings.max_picture_bytes:
        raise bad_request(f"the seal picture exceeds {svc.settings.max_picture_bytes} bytes")
    seal_request = SealRequest(
        credit_code=body.credit_code,
        organisation=body.organisation,
        category=body.category,
        name=body.name,
        picture=picture,
        width_mm=body.picture.width_mm,
        height_mm=body.picture.height_mm,
        valid_start=body.valid_start or svc.now(),
        valid_end=body.valid_end,
        signers=tuple(SignerRequest(s.subject, s.name) for s in body.signers),
    )
    try:
        seal = svc.make_seal(db, seal_request, actor=principal.subject)
    except SealServiceError as exc:
        raise problem(exc) from None
    audit.record(
        db,
        actor=principal.subject,
        action="seal.make",
        resource=f"seal/{seal.es_id}",
        result="success",
        detail={
            "credit_code": seal.credit_code,
            "category": seal.category,
            "signers": [s.subject for s in seal.signers],
        },
    )
    return SealOut.model_validate(seal_out(svc, seal))


@router.get("/seals", summary="List seals, optionally of one organisation")
def list_seals(
    db: DbSession,
    request: Request,
    _: Annotated[Principal, Depends(require_scopes(SCOPE_READ))],
    credit_code: Annotated[str | None, Query(max_length=18)] = None,
) -> list[SealOut]:
    svc = service(request)
    return [SealOut.model_validate(seal_out(svc, s)) for s in svc.list_seals(db, credit_code)]


@router.get("/seals/{es_id}", summary="One seal of the registry")
def get_seal(
    es_id: str,
    db: DbSession,
    request: Request,
    _: Annotated[Principal, Depends(require_scopes(SCOPE_READ))],
) -> SealOut:
    svc = service(request)
    try:
        return SealOut.model_validate(seal_out(svc, svc.get_seal(db, es_id)))
    except SealServiceError as exc:
        raise problem(exc) from None


@router.get("/seals/{es_id}/status", summary="Current status of a seal (public)")
@public
async def seal_status(es_id: str, request: Request) -> SealStatusOut:
    svc = service(request)
    record = await run_in_threadpool(svc.seal_status, es_id)
    if record is None:
        raise Problem(404, detail=f"seal {es_id} does not exist")
    return SealStatusOut.model_validate(record.as_dict(svc.now()))


def _status_change(action: str):  # noqa: ANN202 - a route factory
    def change(
        es_id: str,
        body: StatusChangeIn,
        db: DbSession,
        request: Request,
        principal: Annotated[Principal, Depends(require_scopes(SCOPE_ADMIN))],
    ) -> SealStatusOut:
        svc = service(request)
        try:
            seal = svc.change_status(db, es_id, action, body.reason)
        except SealServiceError as exc:
            audit.record(
                request,
                action=f"seal.{action}",
                resource=f"seal/{es_id}",
                result=f"refused:{exc.status}",
                detail={"reason": exc.detail},
            )
            raise problem(exc) from None
        audit.record(
            db,
            actor=principal.subject,
            action=f"seal.{action}",
            resource=f"seal/{es_id}",
            result="success",
            detail={"reason": body.reason, "status": seal.status},
        )
        return SealStatusOut.model_validate(status_record(seal).as_dict(svc.now()))

    change.__name__ = f"{action}_seal"
    return change


for _action, _summary in (
    ("suspend", "Suspend a seal (it can be resumed)"),
    ("resume", "Resume a suspended seal"),
    ("revoke", "Revoke a seal for good, with a reason"),
):
    router.add_api_route(
        f"/seals/{{es_id}}/{_action}",
        _status_change(_action),
        methods=["POST"],
        summary=_summary,
    )


@router.post("/seals/{es_id}/sign", summary="Sign a document or its SM3 digest with a seal")
def sign(
    es_id: str,
    body: SignIn,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_SIGN))],
) -> SignOut:
    from zwfw.crypto.hashing import sm3

    svc = service(request)
    if (body.digest is None) == (body.content is None):
        raise bad_request("give exactly one of digest or content")
    if body.content is not None:
        content = decode_base64(body.content, "content")
        if len(content) > svc.settings.max_content_bytes:
            raise Problem(413, detail="the content is too large; send its SM3 digest instead")
        data_hash = sm3(content)
    else:
        data_hash = decode_digest(body.digest or "")
    try:
        der, time_info, signer = svc.sign(
            db, es_id, principal.subject, data_hash, body.property_info
        )
    except SealServiceError as exc:
        audit.record(
            request,
            action="seal.sign",
            resource=f"seal/{es_id}",
            result=f"refused:{exc.status}",
            detail={"reason": exc.detail, "data_hash": data_hash.hex()},
        )
        raise problem(exc) from None
    audit.record(
        db,
        actor=principal.subject,
        action="seal.sign",
        resource=f"seal/{es_id}",
        result="success",
        detail={"data_hash": data_hash.hex(), "signer": signer.name, "client": principal.client_id},
    )
    return SignOut(
        es_id=es_id,
        signer=signer.name,
        time_info=time_info,
        data_hash=data_hash.hex(),
        signature=b64(der),
    )
