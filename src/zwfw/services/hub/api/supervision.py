"""E-supervision routes (``/supervision/*``, reported cases and evaluations, ``hub:supervise``)
and the public aggregated catalog (``/catalog/items``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from zwfw.services.hub.service import supervision
from zwfw.services.hub.service.supervision import (
    SCOPE_SUPERVISE,
    CaseOut,
    CatalogItemOut,
    EvaluationOut,
    ReportOut,
)
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import DbSession, Principal, kit_state, public, require_scopes

router = APIRouter(tags=["e-supervision"])
SuperviseScope = Annotated[Principal, Depends(require_scopes(SCOPE_SUPERVISE))]
RegionFilter = Annotated[str | None, Query(pattern=r"^\d{6}$")]


def _settings(request: Request) -> HubSettings:
    return kit_state(request.app).settings  # type: ignore[return-value]


@router.get("/supervision/overdue-cases", summary="Open cases past their promised date")
def overdue_cases(
    request: Request, db: DbSession, principal: SuperviseScope, region: RegionFilter = None
) -> list[CaseOut]:
    return supervision.overdue_cases(db, _settings(request), region)


@router.get(
    "/supervision/overdue-rectifications",
    summary="Bad evaluations whose rectification is past its deadline",
)
def overdue_rectifications(
    request: Request, db: DbSession, principal: SuperviseScope, region: RegionFilter = None
) -> list[EvaluationOut]:
    return supervision.overdue_rectifications(db, _settings(request), region)


@router.get("/cases/{case_number}", summary="A case as reported to the hub")
def get_case(
    request: Request, case_number: str, db: DbSession, principal: SuperviseScope
) -> CaseOut:
    return supervision.reported_case(db, _settings(request), case_number)


@router.get(
    "/cases/{case_number}/reports",
    summary="Every report taken about a case (case and evaluation), oldest first",
)
def case_reports(case_number: str, db: DbSession, principal: SuperviseScope) -> list[ReportOut]:
    return supervision.case_reports(db, case_number)


@router.get("/evaluations/{case_number}", summary="A case's evaluation as reported to the hub")
def get_evaluation(case_number: str, db: DbSession, principal: SuperviseScope) -> EvaluationOut:
    return supervision.reported_evaluation(db, case_number)


@router.get("/catalog/items", summary="The aggregated catalog of published items (public)")
@public
def catalog_items(
    db: DbSession,
    region: RegionFilter = None,
    basic_code: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{12}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[CatalogItemOut]:
    return supervision.catalog_items(
        db, region=region, basic_code=basic_code, limit=limit, offset=offset
    )
