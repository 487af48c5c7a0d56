"""The FastAPI app factory every service uses."""

from __future__ import annotations

import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zwfw.codes.masking import mask_personal_data
from zwfw.formats.channel import ChannelError
from zwfw.services.kit import channel
from zwfw.services.kit.auth import TokenValidator, enforce_authentication, public
from zwfw.services.kit.db import make_engine, session_factory
from zwfw.services.kit.logs import reset_request_id, set_request_id
from zwfw.services.kit.metrics import UNMATCHED_ROUTE, Metrics
from zwfw.services.kit.migrations import Location, _status, code_heads, resolve_location
from zwfw.services.kit.problems import Problem, install_problem_handlers
from zwfw.services.kit.settings import ServiceSettings

log = logging.getLogger("zwfw.app")
access_log = logging.getLogger("zwfw.access")

# A client-supplied request id is kept only if it is short and plain (it ends up in logs,
# headers and the audit log).
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

# Probe and scrape traffic is logged at DEBUG so it does not drown real requests.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

Hook = Callable[[FastAPI], Any]


@dataclass
class KitState:
    """What the kit keeps on ``app.state.kit``."""

    settings: ServiceSettings
    version: str
    engine: Engine
    sessions: sessionmaker[Session]
    migrations: Path | None
    heads: frozenset[str]
    metrics: Metrics
    validator: TokenValidator | None
    owns_engine: bool


def kit_state(app: FastAPI) -> KitState:
    """The kit's state of an app built by ``create_app``."""
    state: KitState = app.state.kit
    return state


@dataclass(frozen=True)
class ServiceDefinition:
    """How ``zwfw serve``/``zwfw migrate`` build one service: its name, its settings class, and
    a factory turning loaded settings into the app (which must come from ``create_app``)."""

    name: str
    settings_class: type[ServiceSettings]
    factory: Callable[[Any], FastAPI]


def _security_headers(settings: ServiceSettings) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        (b"cross-origin-resource-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    ]
    if settings.tls.enabled or settings.public_base_url.startswith("https://"):
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return headers


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            # An id that looks like personal data is replaced rather than spread around.
            if _SANE_REQUEST_ID.match(candidate) and mask_personal_data(candidate) == candidate:
                return candidate
            break
    return uuid.uuid4().hex


# What a request that met an unavailable database is told to wait before retrying.
DATABASE_RETRY_AFTER_SECONDS = 1


class KitMiddleware:
    """Request id, security headers, metrics, access log and the last-resort 500 problem, in
    one pass (pure ASGI: it does not buffer bodies)."""

    def __init__(self, app: ASGIApp, *, state: KitState) -> None:
        self.app = app
        self.state = state
        self.extra_headers = _security_headers(state.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = set_request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False
        extra = [*self.extra_headers, (b"x-request-id", request_id.encode())]

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    key = name.decode()
                    if key not in headers or key == "x-request-id":
                        headers[key] = value.decode()
            await send(message)

        metrics = self.state.metrics
        metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except (OperationalError, InterfaceError, PoolTimeout) as error:
            # The database went away (restarted, failed over), refused for now, or answered
            # slower than the settings' database_wait_seconds (statement cancelled, or no
            # pooled connection free in time): the transaction was rolled back, so the client
            # may retry shortly (with its Idempotency-Key).
            cause = getattr(error, "orig", None) or error
            log.error(
                "database unavailable",
                extra={"path": scope.get("path", ""), "error": type(cause).__name__},
            )
            if response_started:
                raise
            problem = Problem(
                503,
                detail="the database is unavailable for the moment; retry shortly",
                headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
            )
            await problem.to_response(request_id)(scope, receive, send_wrapper)
        except DataError as error:
            # A value the database cannot hold (an identifier beyond its integer column, a
            # string it cannot encode): the request's fault, refused like any invalid value;
            # the transaction was rolled back, so nothing of it is stored.
            log.warning(
                "value refused by the database",
                extra={"path": scope.get("path", ""), "error": type(error.orig).__name__},
            )
            if response_started:
                raise
            problem = Problem(
                422, detail="a value of the request is out of the range the service accepts"
            )
            await problem.to_response(request_id)(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path", "")})
            if response_started:
                raise
            # Nothing internal leaves the service: only the request id to quote.
            problem = Problem(
                500,
                detail="an internal error occurred; quote the request id when reporting it",
            )
            await problem.to_response(request_id)(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            metrics.in_progress.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope.get("method", "")
            metrics.observe(method, template, status, elapsed)
            path = scope.get("path", "")
            access_log.log(
                logging.DEBUG if path in _QUIET_PATHS else logging.INFO,
                "%s %s %s",
                method,
                path,
                status,
                extra={
                    "method": method,
                    "path": path,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
            reset_request_id(token)


def _kit_router(state: KitState) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is up")
    @public
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": state.settings.service, "version": state.version}

    @router.get("/readyz", summary="The database is reachable and its schema is current")
    @public
    async def readyz() -> Response:
        status = await run_in_threadpool(_status, state.engine, state.heads)
        if status.up_to_date:
            return JSONResponse({"status": "ready", "revisions": sorted(status.current)})
        if not status.reachable:
            log.error("readiness: database unreachable", extra={"error": status.error})
            raise Problem(503, detail="the database is unreachable")
        raise Problem(
            503,
            detail=status.describe(),
            current_revisions=sorted(status.current),
            expected_revisions=sorted(status.heads),
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    @public
    async def metrics() -> Response:
        return Response(
            state.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return router


async def _call(hook: Hook, app: FastAPI) -> None:
    outcome = hook(app)
    if inspect.isawaitable(outcome):
        await outcome


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str,
    routers: Sequence[APIRouter] = (),
    migrations: Location | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    engine: Engine | None = None,
    description: str = "",
) -> FastAPI:
    """A FastAPI app with everything the kit provides already wired.

    - problem+json (RFC 9457) for every failure: validation (422, listing the invalid fields),
      401/403 (with ``WWW-Authenticate``), 404, 405, 409, and 500 without internals;
    - ``X-Request-ID`` (accepted if sane, else generated; echoed back) and security headers;
    - bearer-token authentication on every route whose endpoint is not ``@public``;
    - ``/healthz``, ``/readyz`` (database reachable and at the code's migration heads),
      ``/metrics`` (per-app registry; labels use route templates);
    - ``app.state.kit`` (``KitState``): settings, engine, session factory, metrics.

    ``migrations`` is the service's Alembic version directory (path or ``"package:dir"``);
    ``engine`` overrides the one built from ``settings.database_url`` (the kit then leaves its
    disposal to the caller). ``on_startup``/``on_shutdown`` hooks get the app, may be async.
    """
    location = resolve_location(migrations) if migrations is not None else None
    owns_engine = engine is None
    engine = (
        engine
        if engine is not None
        else make_engine(settings.database_url, wait_seconds=settings.database_wait_seconds)
    )
    state = KitState(
        settings=settings,
        version=version,
        engine=engine,
        sessions=session_factory(engine),
        migrations=location,
        heads=code_heads(location),
        metrics=Metrics(
            service=settings.service, version=version, region_code=settings.region_code
        ),
        validator=TokenValidator(settings.auth) if settings.auth.configured else None,
        owns_engine=owns_engine,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await _call(hook, app)
        try:
            yield
        finally:
            for hook in on_shutdown:
                await _call(hook, app)
            if state.owns_engine:
                state.engine.dispose()

    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(enforce_authentication)],
    )
    app.state.kit = state
    install_problem_handlers(app)
    app.add_exception_handler(ChannelError, channel.on_refusal)
    app.add_middleware(KitMiddleware, state=state)
    app.include_router(_kit_router(state))
    for router in routers:
        app.include_router(router)
    return app
