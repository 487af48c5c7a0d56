"""The item catalog (事项目录): published items, versions and drafts.

An item is identified by its implementation code and has numbered versions, each ``draft``,
``published`` or ``cancelled``. Edits go to the draft (a new version when the latest one is
published); publishing makes the draft the item's current version; cancelling withdraws the
item (no new cases). Every edit is audited with its actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zwfw.services.hall.guide import Guide
from zwfw.services.hall.models import Item, as_utc, utcnow
from zwfw.services.kit import audit, bad_request, conflict, not_found

CATALOG_WRITE = "hall:catalog:write"


class ItemOut(BaseModel):
    implementation_code: str
    basic_code: str
    version: int
    state: str
    current: bool
    name: str
    created_at: str
    updated_at: str
    published_at: str | None
    cancelled_at: str | None
    cancel_reason: str | None
    guide: Guide


class ItemPage(BaseModel):
    total: int
    items: list[ItemOut]


class CancelIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


def _iso(moment: Any) -> str | None:
    value = as_utc(moment)
    return value.isoformat() if value is not None else None


def item_out(item: Item, current: bool) -> ItemOut:
    return ItemOut(
        implementation_code=item.implementation_code,
        basic_code=item.implementation_code[19:],
        version=item.version,
        state=item.state,
        current=current,
        name=item.name,
        created_at=_iso(item.created_at) or "",
        updated_at=_iso(item.updated_at) or "",
        published_at=_iso(item.published_at),
        cancelled_at=_iso(item.cancelled_at),
        cancel_reason=item.cancel_reason,
        guide=Guide.model_validate(item.guide),
    )


def versions(db: Session, code: str, *, lock: bool = False) -> list[Item]:
    query = select(Item).where(Item.implementation_code == code).order_by(Item.version)
    if lock:
        query = query.with_for_update()
    return list(db.scalars(query))


def current_version(db: Session, code: str) -> Item | None:
    """The item's latest published version, or None (never published, or cancelled)."""
    return db.scalars(
        select(Item)
        .where(Item.implementation_code == code, Item.state != "draft")
        .order_by(Item.version.desc())
        .limit(1)
    ).first()


def check_region(region_code: str, guide: Guide) -> None:
    """A hall edits only its own province's items."""
    if guide.region_code[:2] != region_code[:2]:
        raise bad_request(
            f"region_code {guide.region_code} is outside this province ({region_code})"
        )


def _draft(code: str, version: int, guide: Guide, now: datetime) -> Item:
    return Item(
        implementation_code=code,
        version=version,
        state="draft",
        name=guide.name,
        dept_code=guide.dept_code,
        guide=guide.model_dump(mode="json"),
        created_at=now,
        updated_at=now,
    )


def published_items(
    db: Session, *, dept_code: str | None = None, limit: int = 100, offset: int = 0
) -> ItemPage:
    latest = (
        select(Item.implementation_code, func.max(Item.version).label("version"))
        .where(Item.state != "draft")
        .group_by(Item.implementation_code)
        .subquery()
    )
    query = (
        select(Item)
        .join(
            latest,
            (Item.implementation_code == latest.c.implementation_code)
            & (Item.version == latest.c.version),
        )
        .where(Item.state == "published")
    )
    if dept_code is not None:
        query = query.where(Item.dept_code == dept_code)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(Item.implementation_code).limit(limit).offset(offset))
    return ItemPage(total=total, items=[item_out(item, True) for item in rows])


def published_item(db: Session, code: str) -> ItemOut:
    item = current_version(db, code)
    if item is None or item.state != "published":
        raise not_found(f"item {code} is not in the published catalog")
    return item_out(item, True)


def published_versions(db: Session, code: str) -> list[ItemOut]:
    current = current_version(db, code)
    shown = [item_out(i, i is current) for i in versions(db, code) if i.state != "draft"]
    if not shown:
        raise not_found(f"item {code} is not in the published catalog")
    return shown


def draft(db: Session, code: str) -> ItemOut:
    rows = versions(db, code)
    if not rows or rows[-1].state != "draft":
        raise not_found(f"item {code} has no draft")
    return item_out(rows[-1], False)


def create_item(db: Session, guide: Guide, *, region_code: str, actor: str) -> ItemOut:
    check_region(region_code, guide)
    code = guide.implementation_code
    if versions(db, code, lock=True):
        raise conflict(f"item {code} exists already; edit its draft instead")
    item = _draft(code, 1, guide, utcnow())
    db.add(item)
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="item.create",
        resource=f"item/{code}/1",
        result="success",
        detail={"name": guide.name},
    )
    return item_out(item, False)


def put_draft(db: Session, code: str, guide: Guide, *, region_code: str, actor: str) -> ItemOut:
    if guide.implementation_code != code:
        raise bad_request(
            f"the guide's implementation_code {guide.implementation_code} is not {code}"
        )
    check_region(region_code, guide)
    rows = versions(db, code, lock=True)
    if not rows:
        raise not_found(f"item {code} does not exist; create it with POST /items")
    now = utcnow()
    latest = rows[-1]
    if latest.state == "draft":
        item = latest
        item.name, item.dept_code, item.guide, item.updated_at = (
            guide.name,
            guide.dept_code,
            guide.model_dump(mode="json"),
            now,
        )
    else:
        item = _draft(code, latest.version + 1, guide, now)
        db.add(item)
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="item.draft",
        resource=f"item/{code}/{item.version}",
        result="success",
        detail={"name": guide.name},
    )
    return item_out(item, False)


def publish(db: Session, code: str, version: int, *, actor: str) -> ItemOut:
    rows = versions(db, code, lock=True)
    item = next((i for i in rows if i.version == version), None)
    if item is None:
        raise not_found(f"item {code} has no version {version}")
    if item.state != "draft":
        raise conflict(f"item {code} version {version} is {item.state}; only a draft is published")
    now = utcnow()
    item.state, item.published_at, item.updated_at = "published", now, now
    audit.record(
        db,
        actor=actor,
        action="item.publish",
        resource=f"item/{code}/{version}",
        result="success",
    )
    return item_out(item, True)


def cancel(db: Session, code: str, reason: str, *, actor: str) -> ItemOut:
    versions(db, code, lock=True)
    item = current_version(db, code)
    if item is None:
        raise not_found(f"item {code} has no published version")
    if item.state == "cancelled":
        raise conflict(f"item {code} is cancelled already")
    now = utcnow()
    item.state, item.cancelled_at, item.cancel_reason, item.updated_at = (
        "cancelled",
        now,
        reason,
        now,
    )
    audit.record(
        db,
        actor=actor,
        action="item.cancel",
        resource=f"item/{code}/{item.version}",
        result="success",
        detail={"reason": reason},
    )
    return item_out(item, False)
