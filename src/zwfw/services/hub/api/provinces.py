"""Province registry routes (``/provinces``): ``hub:provinces:read`` and
``hub:provinces:write``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from zwfw.services.hub.service import provinces
from zwfw.services.hub.service.provinces import (
    SCOPE_PROVINCES_READ,
    SCOPE_PROVINCES_WRITE,
    ProvinceChange,
    ProvinceIn,
    ProvinceOut,
)
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import DbSession, Principal, kit_state, require_scopes

router = APIRouter(prefix="/provinces", tags=["province registry"])
WriteScope = Annotated[Principal, Depends(require_scopes(SCOPE_PROVINCES_WRITE))]
ReadScope = Annotated[Principal, Depends(require_scopes(SCOPE_PROVINCES_READ))]


def _settings(request: Request) -> HubSettings:
    return kit_state(request.app).settings  # type: ignore[return-value]


@router.post("", status_code=201, summary="Register a province")
def register_province(
    body: ProvinceIn, request: Request, db: DbSession, principal: WriteScope
) -> ProvinceOut:
    return provinces.register(db, _settings(request), body, actor=principal.subject)


@router.get("", summary="List registered provinces")
def list_provinces(db: DbSession, principal: ReadScope) -> list[ProvinceOut]:
    return provinces.registered(db)


@router.get("/{region_code}", summary="One registered province")
def get_province(region_code: str, db: DbSession, principal: ReadScope) -> ProvinceOut:
    return provinces.registration(db, region_code)


@router.patch("/{region_code}", summary="Change a registration (e.g. suspend a province)")
def change_province(
    region_code: str,
    body: ProvinceChange,
    request: Request,
    db: DbSession,
    principal: WriteScope,
) -> ProvinceOut:
    return provinces.change(db, _settings(request), region_code, body, actor=principal.subject)
