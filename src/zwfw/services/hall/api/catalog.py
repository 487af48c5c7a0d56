"""Catalog routes (``/items``): public reads, edits with ``hall:catalog:write``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from zwfw.services.hall.guide import Guide
from zwfw.services.hall.service import catalog
from zwfw.services.hall.service.catalog import CATALOG_WRITE, CancelIn, ItemOut, ItemPage
from zwfw.services.kit import DbSession, Principal, public, require_scopes

router = APIRouter(prefix="/items", tags=["catalog"])
CatalogEditor = Annotated[Principal, Depends(require_scopes(CATALOG_WRITE))]


def _region_code(request: Request) -> str:
    return str(request.app.state.kit.settings.region_code)


@router.get("", summary="Published items (current versions)")
@public
def list_items(
    db: DbSession,
    dept_code: Annotated[str | None, Query(max_length=18)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ItemPage:
    return catalog.published_items(db, dept_code=dept_code, limit=limit, offset=offset)


@router.get("/{code}", summary="An item's current published version")
@public
def get_item(code: str, db: DbSession) -> ItemOut:
    return catalog.published_item(db, code)


@router.get("/{code}/versions", summary="Every published or cancelled version of an item")
@public
def list_versions(code: str, db: DbSession) -> list[ItemOut]:
    return catalog.published_versions(db, code)


@router.get("/{code}/draft", summary="The item's draft version")
def get_draft(code: str, db: DbSession, principal: CatalogEditor) -> ItemOut:
    return catalog.draft(db, code)


@router.post("", status_code=201, summary="Create an item (version 1, draft)")
def create_item(guide: Guide, db: DbSession, request: Request, principal: CatalogEditor) -> ItemOut:
    return catalog.create_item(
        db, guide, region_code=_region_code(request), actor=principal.subject
    )


@router.put("/{code}/draft", summary="Create or replace the item's draft")
def put_draft(
    code: str, guide: Guide, db: DbSession, request: Request, principal: CatalogEditor
) -> ItemOut:
    return catalog.put_draft(
        db, code, guide, region_code=_region_code(request), actor=principal.subject
    )


@router.post("/{code}/versions/{version}/publish", summary="Publish a draft version")
def publish(code: str, version: int, db: DbSession, principal: CatalogEditor) -> ItemOut:
    return catalog.publish(db, code, version, actor=principal.subject)


@router.post("/{code}/cancel", summary="Withdraw an item from the catalog")
def cancel(code: str, body: CancelIn, db: DbSession, principal: CatalogEditor) -> ItemOut:
    return catalog.cancel(db, code, body.reason, actor=principal.subject)
