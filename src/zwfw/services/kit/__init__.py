"""The service kit: what the five product services (identity, hall, elicense, eseal, hub) share.

One service built on the kit, condensed into one file (a real service splits it as described
below)::

    # src/zwfw/services/hall/__init__.py
    from pathlib import Path
    from typing import Annotated

    from fastapi import APIRouter, Depends, FastAPI
    from sqlalchemy import String, select
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    from zwfw.services.kit import (
        DbSession, Principal, ServiceDefinition, ServiceSettings, audit, create_app,
        naming_metadata, not_found, public, require_scopes,
    )


    class HallSettings(ServiceSettings):
        service: str = "hall"
        bad_rating_deadline_days: int = 15       # provincial practice, configurable


    class Base(DeclarativeBase):
        metadata = naming_metadata()


    class Item(Base):
        __tablename__ = "hall_item"
        code: Mapped[str] = mapped_column(String(31), primary_key=True)
        name: Mapped[str]


    router = APIRouter(prefix="/items")


    @router.get("/{code}")
    @public                                   # no token needed; every other route needs one
    def get_item(code: str, db: DbSession) -> dict[str, str]:
        item = db.get(Item, code)
        if item is None:
            raise not_found(f"item {code} does not exist")
        return {"code": item.code, "name": item.name}


    @router.post("", status_code=201)
    def add_item(
        body: dict[str, str],
        db: DbSession,
        principal: Annotated[Principal, Depends(require_scopes("hall:items:write"))],
    ) -> dict[str, str]:
        db.add(Item(code=body["code"], name=body["name"]))
        audit.record(db, actor=principal.subject, action="item.create",
                     resource=f"item/{body['code']}", result="success")
        return body                            # the session commits after the endpoint returns


    def build(settings: HallSettings) -> FastAPI:
        return create_app(settings, title="hall", version="1.0",
                          routers=[router], migrations=Path(__file__).parent / "migrations")


    SERVICE = ServiceDefinition(name="hall", settings_class=HallSettings, factory=build)
    # and in zwfw/services/__init__.py: SERVICES["hall"] = "zwfw.services.hall:SERVICE"

    # then:  zwfw migrate hall --config hall.yaml ; zwfw serve hall --config hall.yaml

Every service has the same layout:

- ``__init__.py``: ``build(settings)`` (the app, from ``create_app``) and ``SERVICE``;
- ``api.py``, or an ``api`` (``routes``) package with a module per concern: the routes, thin:
  they read the request (principal, headers, the app's state) and call the domain;
- ``service.py``, or a ``service`` package (or domain modules) with a module per concern: the
  domain logic, functions of plain arguments and a database session, never a ``Request``;
  refusals are ``Problem`` (or a domain error the routes turn into one);
- ``models.py`` (ORM), ``settings.py``, ``migrations/``; ``openapi.py`` exports the service's
  committed OpenAPI document, ``cli.py`` its commands.

Endpoints that check their callers themselves (a token endpoint authenticating clients, a
sign-in form with its session and anti-forgery token) are marked
``@authenticates_itself("how")`` instead of ``@public``, so that ``kit.auth.route_access(app)``
tells the truly open routes from those.

Service migrations live in the service's own Alembic version directory, on their own branch:
the first revision there has ``down_revision = None`` and ``branch_labels = ("hall",)``. The kit
adds its own branch (``kit``: the audit log) to every database; ``migrate`` upgrades all heads.
Endpoints that use ``DbSession`` should be plain ``def`` (SQLAlchemy sessions are synchronous;
FastAPI runs them in its thread pool).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zwfw.services import SERVICES
    from zwfw.services.kit import audit, channel, outbox
    from zwfw.services.kit.app import KitState, ServiceDefinition, create_app, kit_state
    from zwfw.services.kit.auth import (
        Principal,
        TokenValidator,
        authenticates_itself,
        current_principal,
        public,
        require_scopes,
    )
    from zwfw.services.kit.db import (
        DbSession,
        UTCDateTime,
        get_session,
        make_engine,
        naming_metadata,
        session_factory,
    )
    from zwfw.services.kit.logs import JsonFormatter, configure_logging, current_request_id
    from zwfw.services.kit.migrations import MigrationStatus, migrate, migration_status
    from zwfw.services.kit.problems import (
        Problem,
        bad_request,
        conflict,
        forbidden,
        not_found,
        unauthorized,
    )
    from zwfw.services.kit.registry import UnknownServiceError, resolve_service
    from zwfw.services.kit.settings import (
        AuditSettings,
        AuthSettings,
        ServiceSettings,
        SettingsError,
        TLSSettings,
        load_settings,
    )

# Names are imported on first use (PEP 562): a command or module that needs one part of the kit
# (the token helpers, the settings) does not pay for FastAPI and SQLAlchemy at import.
_ORIGINS: dict[str, str] = {
    "SERVICES": "zwfw.services",
    "audit": "zwfw.services.kit.audit",
    "channel": "zwfw.services.kit.channel",
    "outbox": "zwfw.services.kit.outbox",
    "KitState": "zwfw.services.kit.app",
    "ServiceDefinition": "zwfw.services.kit.app",
    "create_app": "zwfw.services.kit.app",
    "kit_state": "zwfw.services.kit.app",
    "Principal": "zwfw.services.kit.auth",
    "TokenValidator": "zwfw.services.kit.auth",
    "authenticates_itself": "zwfw.services.kit.auth",
    "current_principal": "zwfw.services.kit.auth",
    "public": "zwfw.services.kit.auth",
    "require_scopes": "zwfw.services.kit.auth",
    "DbSession": "zwfw.services.kit.db",
    "UTCDateTime": "zwfw.services.kit.db",
    "get_session": "zwfw.services.kit.db",
    "make_engine": "zwfw.services.kit.db",
    "naming_metadata": "zwfw.services.kit.db",
    "session_factory": "zwfw.services.kit.db",
    "JsonFormatter": "zwfw.services.kit.logs",
    "configure_logging": "zwfw.services.kit.logs",
    "current_request_id": "zwfw.services.kit.logs",
    "MigrationStatus": "zwfw.services.kit.migrations",
    "migrate": "zwfw.services.kit.migrations",
    "migration_status": "zwfw.services.kit.migrations",
    "Problem": "zwfw.services.kit.problems",
    "bad_request": "zwfw.services.kit.problems",
    "conflict": "zwfw.services.kit.problems",
    "forbidden": "zwfw.services.kit.problems",
    "not_found": "zwfw.services.kit.problems",
    "unauthorized": "zwfw.services.kit.problems",
    "UnknownServiceError": "zwfw.services.kit.registry",
    "resolve_service": "zwfw.services.kit.registry",
    "AuditSettings": "zwfw.services.kit.settings",
    "AuthSettings": "zwfw.services.kit.settings",
    "ServiceSettings": "zwfw.services.kit.settings",
    "SettingsError": "zwfw.services.kit.settings",
    "TLSSettings": "zwfw.services.kit.settings",
    "load_settings": "zwfw.services.kit.settings",
}


def __getattr__(name: str) -> Any:
    origin = _ORIGINS.get(name)
    if origin is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(origin)
    value = module if origin.endswith(f".{name}") else getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "UTCDateTime",
    "SERVICES",
    "AuditSettings",
    "AuthSettings",
    "DbSession",
    "JsonFormatter",
    "KitState",
    "MigrationStatus",
    "Principal",
    "Problem",
    "ServiceDefinition",
    "ServiceSettings",
    "SettingsError",
    "TLSSettings",
    "TokenValidator",
    "UnknownServiceError",
    "audit",
    "authenticates_itself",
    "channel",
    "outbox",
    "bad_request",
    "configure_logging",
    "conflict",
    "create_app",
    "current_principal",
    "current_request_id",
    "forbidden",
    "get_session",
    "kit_state",
    "load_settings",
    "make_engine",
    "migrate",
    "migration_status",
    "naming_metadata",
    "not_found",
    "public",
    "require_scopes",
    "resolve_service",
    "session_factory",
    "unauthorized",
]
