"""Licence exchange routes (``/exchange/*``): province A's signed request, verified here,
routed by ``zwfw.services.hub.service.exchange``; the record of routed exchanges for
supervisors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from zwfw.services.hub.inbound import RawBody, parse_body, verify_message
from zwfw.services.hub.models import Province
from zwfw.services.hub.service import exchange
from zwfw.services.hub.service.exchange import (
    SCOPE_EXCHANGE,
    SCOPE_SUPERVISE,
    ExchangeRequest,
    LicenceUseOut,
)
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import DbSession, Principal, kit_state, require_scopes

router = APIRouter(prefix="/exchange", tags=["licence exchange"])


def _verify_and_route(
    request: Request, body: bytes, principal: Principal
) -> tuple[str, ExchangeRequest, Province]:
    sessions = kit_state(request.app).sessions
    with sessions.begin() as db:
        province, _message = verify_message(request, body, db, principal)
        payload = parse_body(ExchangeRequest, body)
        return (
            province.region_code,
            payload,
            exchange.issuing_province(db, province.region_code, payload),
        )


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
    state = kit_state(request.app)
    settings: HubSettings = state.settings  # type: ignore[assignment]
    requester, payload, issuer = await run_in_threadpool(
        _verify_and_route, request, body, principal
    )
    answer = await exchange.exchange_licence(
        state.sessions,
        settings,
        request.app.state.hub_share_client,
        request.app.state.hub_subject_validator,
        request.app.state.hub_signer,
        requester=requester,
        payload=payload,
        issuer=issuer,
    )
    return JSONResponse(answer, status_code=201, headers={"Zwfw-Issuer-Region": issuer.region_code})


@router.get("/uses", summary="Routed licence exchanges (who asked whom, for what)")
def licence_uses(
    db: DbSession,
    principal: Annotated[Principal, Depends(require_scopes(SCOPE_SUPERVISE))],
    region: str | None = None,
    identifier: str | None = None,
) -> list[LicenceUseOut]:
    return exchange.licence_uses(db, region=region, identifier=identifier)
