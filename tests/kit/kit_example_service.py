"""A tiny service built on the kit, used only by the kit's own tests."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from pydantic import BaseModel, Field
from sqlalchemy import String
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from zwfw.services.kit import (
    DbSession,
    Principal,
    Problem,
    ServiceDefinition,
    ServiceSettings,
    audit,
    authenticates_itself,
    conflict,
    create_app,
    current_principal,
    naming_metadata,
    not_found,
    public,
    require_scopes,
)

MIGRATIONS = Path(__file__).resolve().parent / "example_migrations"


class ExampleSettings(ServiceSettings):
    service: str = "example"
    greeting: str = "你好"
    # Shared with the one sender of /callback, which cannot obtain bearer tokens.
    callback_secret: str = "example-callback-secret"


class Base(DeclarativeBase):
    metadata = naming_metadata()


class Note(Base):
    __tablename__ = "example_note"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    text: Mapped[str] = mapped_column(String(500))


class NoteIn(BaseModel):
    code: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=500)
    copies: int = Field(default=1, ge=1, le=10)


router = APIRouter()


@router.get("/greeting")
@public
def greeting(request: Request) -> dict[str, str]:
    return {"greeting": request.app.state.kit.settings.greeting}


@router.get("/notes/{code}")
@public
def get_note(code: str, db: DbSession) -> dict[str, str]:
    note = db.get(Note, code)
    if note is None:
        raise not_found(f"note {code} does not exist")
    return {"code": note.code, "text": note.text}


@router.post("/notes", status_code=201)
def add_note(
    body: NoteIn,
    db: DbSession,
    request: Request,
    principal: Annotated[Principal, Depends(require_scopes("notes:write"))],
) -> dict[str, str]:
    if db.get(Note, body.code) is not None:
        audit.record(request, action="note.create", resource=f"note/{body.code}", result="conflict")
        raise conflict(f"note {body.code} already exists")
    db.add(Note(code=body.code, text=body.text))
    try:
        db.flush()
    except IntegrityError:
        raise conflict(f"note {body.code} already exists") from None
    audit.record(
        db,
        actor=principal.subject,
        action="note.create",
        resource=f"note/{body.code}",
        result="success",
        detail={"text": body.text},
    )
    return {"code": body.code, "text": body.text}


@router.get("/whoami")
async def whoami(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, object]:
    return {
        "subject": principal.subject,
        "client_id": principal.client_id,
        "scopes": sorted(principal.scopes),
    }


@router.get("/protected")
def protected() -> dict[str, str]:
    return {"secret": "only with a token"}


@router.post("/callback")
@authenticates_itself("shared secret in X-Callback-Secret")
def callback(
    request: Request, secret: Annotated[str, Header(alias="X-Callback-Secret")] = ""
) -> dict[str, str]:
    expected = request.app.state.kit.settings.callback_secret
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        raise Problem(401, detail="the callback secret is wrong")
    return {"status": "accepted"}


@router.get("/boom")
@public
def boom() -> None:
    raise RuntimeError("database password is hunter2")


@router.get("/database-gone")
@public
def database_gone() -> None:
    # What SQLAlchemy raises when the server closed the connection (a restart).
    raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))


@router.get("/out-of-range/{number}")
@public
def out_of_range(number: int) -> None:
    # What SQLAlchemy raises when PostgreSQL finds a value outside its column's type (an
    # identifier beyond a 32-bit integer column).
    raise DataError(
        "SELECT * FROM notes WHERE id = %(id)s", {"id": number},
        ValueError("integer out of range"),
    )  # fmt: skip


def build(settings: ExampleSettings) -> FastAPI:
    return create_app(
        settings, title="example", version="0.0.1", routers=[router], migrations=MIGRATIONS
    )


SERVICE = ServiceDefinition(name="example", settings_class=ExampleSettings, factory=build)
