"""Cross-province licence exchange (跨省通办).

Province A asks the hub, in a signed channel message with A's client token, for a licence
issued in province B, for a stated cause, carrying the citizen's federated token. The hub
checks A (channel, client, registration), checks the citizen's token (national IdP, the hub
among its audiences), routes the request to B's e-licence library with the citizen's token,
returns B's sealed annotated copy (加注件) unchanged and records the use: who asked, whom, for
which licence and cause, the copy's id and digest. It never stores the copy, and it holds no
credential of its own at any library: without a citizen's token it cannot fetch anything.

B's share interface follows GB/T 36906-2018 (identifier + cause + expiry → sealed annotated
copy)::

    POST {B.elicense}/licences/{identifier}/annotated-copies
    {"cause": "...", "expires_at": "..."}   Authorization: Bearer <citizen token>
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from zwfw.codes import CodeError, parse_licence_id
from zwfw.services.hub.inbound import RawBody, parse_body, verify_message
from zwfw.services.hub.models import LicenceUse, Province, as_utc, utcnow
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import (
    DbSession,
    Principal,
    Problem,
    TokenValidator,
    audit,
    kit_state,
    require_scopes,
)
from zwfw.services.kit.channel import ChannelSigner
from zwfw.services.kit.logs import mask

log = logging.getLogger("zwfw.hub.exchange")

SCOPE_EXCHANGE = "hub:exchange"
SCOPE_SUPERVISE = "hub:supervise"
EXCHANGE_PATH = "/exchange/licences"

router = APIRouter(prefix="/exchange", tags=["licence exchange"])


class ExchangeRequest(BaseModel):
    """Province A's request for a licence issued in province B."""

    model_config = ConfigDict(extra="forbid")

    issuer_region: str = Field(pattern=r"^\d{2}0000$", examples=["330000"])
    identifier: str = Field(description="GB/T 36904 licence identifier")
    cause: str = Field(min_length=2, max_length=500, description="事由: why the licence is used")
    expires_at: datetime = Field(description="When the annotated copy stops being usable")
    subject_token: str = Field(
        min_length=20, max_length=16384, description="The citizen's federated access token"
    )
    case_number: str | None = Field(default=None, max_length=43)

    @field_validator("identifier")
    @classmethod
    def _identifier(cls, value: str) -> str:
        try:
            return str(parse_licence_id(value))
        except CodeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expires_at needs a time zone")
        return value


class ElicenseShareClient:
    """Asks one province's e-licence library for an annotated copy, with the holder's token.
    The only credential it ever sends is the one it is handed for that request."""

    def __init__(self, http: httpx.AsyncClient, *, timeout: float = 15.0) -> None:
        self.http = http
        self.timeout = timeout

    async def annotated_copy(
        self,
        base_url: str,
        identifier: str,
        *,
        cause: str,
        expires_at: datetime,
        bearer: str,
        signer: ChannelSigner | None = None,
        recipient: str | None = None,
    ) -> httpx.Response:
        path = f"/licences/{quote(identifier, safe='')}/annotated-copies"
        body = httpx.Request(
            "POST", "http://x", json={"cause": cause, "expires_at": expires_at.isoformat()}
        ).content
        headers = {
            "Authorization": f"Bearer {bearer}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if signer is not None and recipient is not None:
            # The library can see the request came through the hub, untouched.
            prefix = httpx.URL(base_url).path.rstrip("/")
            headers |= signer.headers("POST", prefix + path, body, recipient=recipient)
        return await self.http.post(
            base_url.rstrip("/") + path, content=body, headers=headers, timeout=self.timeout
        )


def _record_use(
    request: Request,
    *,
    requester: str,
    payload: ExchangeRequest,
    subject: str,
    outcome: str,
    status: int | None,
    copy: dict[str, Any] | None,
) -> None:
    sessions = kit_state(request.app).sessions
    with sessions.begin() as db:
        use = LicenceUse(
            id=str(uuid.uuid4()),
            at=utcnow(),
            requester_region=requester,
            issuer_region=payload.issuer_region,
            identifier=payload.identifier,
            cause=payload.cause,
            copy_expires_at=payload.expires_at,
            subject=subject,
            case_number=payload.case_number,
            outcome=outcome,
            issuer_status=status,
            copy_id=str(copy.get("id"))[:100] if copy and copy.get("id") else None,
            copy_sha256=str(copy.get("sha256"))[:64] if copy and copy.get("sha256") else None,
        )
        db.add(use)
        audit.record(
            db,
            actor=f"province/{requester}",
            action="licence.exchange",
            resource=f"licence/{payload.identifier}",
            result=outcome,
            detail={
                "issuer_region": payload.issuer_region,
                "cause": payload.cause,
                "subject": subject,
                "issuer_status": status,
            },
        )


def _verify_and_route(
    request: Request, body: bytes, principal: Principal
) -> tuple[str, ExchangeRequest, Province]:
    sessions = kit_state(request.app).sessions
    with sessions.begin() as db:
        province, _message = verify_message(request, body, db, principal)
        payload = parse_body(ExchangeRequest, body)
        if payload.issuer_region == province.region_code:
            raise Problem(422, detail="the licence is issued in your own province; ask its library")
        issuer = db.get(Province, payload.issuer_region)
        if issuer is None:
            raise Problem(404, detail=f"province {payload.issuer_region} is not registered")
        if issuer.status != "active":
            raise Problem(409, detail=f"province {payload.issuer_region} is suspended")
        if not issuer.endpoints.get("elicense"):
            raise Problem(
                409, detail=f"province {payload.issuer_region} has no e-licence library endpoint"
            )
        db.expunge(issuer)
        return province.region_code, payload, issuer


@router.post(
    "/licences",
    status_code=201,
    summary="Route a request for a licence issued in another province (跨省通办)",
    responses={201: {"description": "The issuing library's sealed annotated copy, unchanged"}},
)
async def exchange_licence(
    request: Request,
    body: RawBody,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_EXCHANGE))],
) -> JSONResponse:
    settings: HubSettings = kit_state(request.app).settings  # type: ignore[assignment]
    requester, payload, issuer = await run_in_threadpool(
        _verify_and_route, request, body, principal
    )
    now = datetime.now(UTC)
    if payload.expires_at <= now:
        raise Problem(422, detail="expires_at is in the past")
    if payload.expires_at > now + timedelta(days=settings.exchange_max_copy_days):
        raise Problem(
            422,
            detail=f"an annotated copy may last at most {settings.exchange_max_copy_days} days",
        )
    validator: TokenValidator | None = request.app.state.hub_subject_validator
    if validator is None:
        raise Problem(503, detail="citizen tokens are not configured on the hub")
    try:
        citizen = await validator.validate(payload.subject_token)
    except Problem as problem:
        raise Problem(
            403, detail=f"the citizen's token is not accepted: {problem.detail}"
        ) from None

    client: ElicenseShareClient = request.app.state.hub_share_client
    try:
        response = await client.annotated_copy(
            issuer.endpoints["elicense"],
            payload.identifier,
            cause=payload.cause,
            expires_at=payload.expires_at,
            bearer=payload.subject_token,
            signer=request.app.state.hub_signer,
            recipient=issuer.region_code,
        )
    except httpx.HTTPError as exc:
        log.warning(
            "issuing province unreachable",
            extra={"issuer_region": issuer.region_code, "error": mask(str(exc))},
        )
        await run_in_threadpool(
            _record_use,
            request,
            requester=requester,
            payload=payload,
            subject=citizen.subject,
            outcome="unavailable",
            status=None,
            copy=None,
        )
        raise Problem(
            502, detail=f"the e-licence library of {issuer.region_code} is unreachable"
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    delivered = 200 <= response.status_code < 300 and isinstance(answer, dict)
    copy = answer.get("copy") if delivered and isinstance(answer.get("copy"), dict) else None
    delivered = delivered and copy is not None
    outcome = (
        "delivered" if delivered else "unavailable" if response.status_code >= 500 else "refused"
    )
    await run_in_threadpool(
        _record_use,
        request,
        requester=requester,
        payload=payload,
        subject=citizen.subject,
        outcome=outcome,
        status=response.status_code,
        copy=copy,
    )
    if delivered:
        return JSONResponse(
            answer,
            status_code=201,
            headers={"Zwfw-Issuer-Region": issuer.region_code},
        )
    detail = answer.get("detail") if isinstance(answer, dict) else None
    if response.status_code >= 500 or not (400 <= response.status_code < 500):
        raise Problem(
            502,
            detail=f"the e-licence library of {issuer.region_code} failed ({response.status_code})",
        )
    raise Problem(
        response.status_code if response.status_code in (401, 403, 404, 409, 422) else 403,
        detail=f"the e-licence library of {issuer.region_code} refused: "
        f"{detail or response.reason_phrase}",
        issuer_status=response.status_code,
    )


class LicenceUseOut(BaseModel):
    id: str
    at: str
    requester_region: str
    issuer_region: str
    identifier: str
    cause: str
    copy_expires_at: str
    subject: str
    case_number: str | None
    outcome: str
    issuer_status: int | None
    copy_id: str | None
    copy_sha256: str | None


@router.get("/uses", summary="Routed licence exchanges (who asked whom, for what)")
def licence_uses(
    db: DbSession,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_SUPERVISE))],
    region: str | None = None,
    identifier: str | None = None,
) -> list[LicenceUseOut]:
    query = select(LicenceUse).order_by(LicenceUse.at.desc()).limit(500)
    if region:
        query = query.where(
            (LicenceUse.requester_region == region) | (LicenceUse.issuer_region == region)
        )
    if identifier:
        query = query.where(LicenceUse.identifier == identifier)
    return [
        LicenceUseOut(
            id=u.id,
            at=as_utc(u.at).isoformat(),  # type: ignore[union-attr]
            requester_region=u.requester_region,
            issuer_region=u.issuer_region,
            identifier=u.identifier,
            cause=u.cause,
            copy_expires_at=as_utc(u.copy_expires_at).isoformat(),  # type: ignore[union-attr]
            subject=u.subject,
            case_number=u.case_number,
            outcome=u.outcome,
            issuer_status=u.issuer_status,
            copy_id=u.copy_id,
            copy_sha256=u.copy_sha256,
        )
        for u in db.scalars(query)
    ]
