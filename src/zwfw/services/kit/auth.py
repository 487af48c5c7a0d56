"""Bearer-token authentication: JWTs checked against the issuer's JWKS, with audience and scope
checks. Every route needs a valid token unless its endpoint is marked ``@public`` (open to
anyone) or ``@authenticates_itself(reason)`` (checks its caller its own way: client
authentication at a token endpoint, a sign-in session with its anti-forgery token, …)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key, KeySet
from starlette.concurrency import run_in_threadpool

from zwfw.services.kit.problems import Problem, forbidden, unauthorized
from zwfw.services.kit.settings import AuthSettings

log = logging.getLogger("zwfw.auth")

F = TypeVar("F", bound=Callable[..., Any])

_PUBLIC_MARK = "__zwfw_public__"
_SELF_AUTHENTICATING_MARK = "__zwfw_authenticates_itself__"
MAX_TOKEN_LENGTH = 16_384


def public(endpoint: F) -> F:
    """Mark an endpoint as needing no bearer token (put it below the route decorator)."""
    if authenticates_itself_because(endpoint) is not None:
        raise ValueError(f"{endpoint.__name__} is marked as authenticating itself, not public")
    setattr(endpoint, _PUBLIC_MARK, True)
    return endpoint


def is_public(endpoint: Any) -> bool:
    """The endpoint is open to anyone (``@public``)."""
    return bool(getattr(endpoint, _PUBLIC_MARK, False))


def authenticates_itself(reason: str) -> Callable[[F], F]:
    """Mark an endpoint that authenticates its caller itself, so the kit's bearer check leaves
    it alone (put it below the route decorator)::

        @router.post("/token")
        @authenticates_itself("private_key_jwt or mutual-TLS client authentication")
        def token(...): ...

    Unlike ``@public`` the endpoint is not open to anyone; ``reason`` says how it checks its
    callers, for reviewers and for the route listing of ``route_access``.
    """
    if not reason.strip():
        raise ValueError("say how the endpoint authenticates its callers")

    def mark(endpoint: F) -> F:
        if is_public(endpoint):
            raise ValueError(f"{endpoint.__name__} is public; it cannot authenticate itself")
        setattr(endpoint, _SELF_AUTHENTICATING_MARK, reason.strip())
        return endpoint

    return mark


def authenticates_itself_because(endpoint: Any) -> str | None:
    """Why the endpoint needs no bearer token from the kit (``@authenticates_itself``), or
    ``None`` when it is not marked so."""
    reason = getattr(endpoint, _SELF_AUTHENTICATING_MARK, None)
    return reason if isinstance(reason, str) else None


@dataclass(frozen=True)
class RouteAccess:
    """How one route of an app is protected: ``"public"``, ``"authenticates itself"`` (with
    the endpoint's reason) or ``"bearer token"`` (the kit's check)."""

    methods: tuple[str, ...]
    path: str
    access: str
    reason: str | None = None


def route_access(app: FastAPI) -> list[RouteAccess]:
    """Every API route of ``app`` with how it is protected, in registration order; what a
    reviewer or a security test reads to find the routes that are truly open."""
    listing = []
    # Included routers are resolved lazily by FastAPI; this walks them with their prefixes.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or route.path is None:
            continue
        methods = tuple(sorted(route.methods or ()))
        reason = authenticates_itself_because(route.endpoint)
        if is_public(route.endpoint):
            listing.append(RouteAccess(methods, route.path, "public"))
        elif reason is not None:
            listing.append(RouteAccess(methods, route.path, "authenticates itself", reason))
        else:
            listing.append(RouteAccess(methods, route.path, "bearer token"))
    return listing


@dataclass(frozen=True)
class Principal:
    """Who is calling: the validated token's subject, client and scopes."""

    subject: str
    client_id: str | None
    scopes: frozenset[str]
    claims: dict[str, Any] = field(repr=False)
    token: str = field(repr=False)

    def has_scopes(self, *required: str) -> bool:
        return set(required) <= self.scopes


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("scope")
    if raw is None:
        raw = claims.get("scp")
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(s for s in raw if isinstance(s, str))
    return frozenset()


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read before the signature is checked only to pick the key."""
    try:
        encoded = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise unauthorized("the token is not a well-formed JWT") from exc
    if not isinstance(header, dict):
        raise unauthorized("the token is not a well-formed JWT")
    return header


class TokenValidator:
    """Validates bearer tokens for one service.

    Keys come from ``settings.jwks`` (static) or ``settings.jwks_url``; a fetched JWKS is
    cached for ``jwks_cache_seconds`` and refetched once when a token names an unknown key id
    (key rotation), at most every ``jwks_min_refetch_seconds``.
    """

    def __init__(self, settings: AuthSettings, *, http: httpx.AsyncClient | None = None) -> None:
        # Without both, the claims registry would accept any issuer or audience.
        if not settings.issuer or not settings.audience:
            raise ValueError("a token validator needs auth.issuer and auth.audience")
        self.settings = settings
        self._issuer: str = settings.issuer
        self._audience: str = settings.audience
        self._http = http
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        if settings.jwks is not None:
            self._keys = self._import(settings.jwks, "auth.jwks")

    @staticmethod
    def _import(document: Any, origin: str) -> KeySet:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError(f"{origin} is not a JWKS document")
        # Private parts, if someone published them, are never needed to verify.
        keys = [
            {k: v for k, v in key.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
            for key in document["keys"]
            if isinstance(key, dict) and key.get("use", "sig") == "sig"
        ]
        return KeySet.import_key_set({"keys": keys})

    async def _fetch(self) -> KeySet:
        url = self.settings.jwks_url
        assert url is not None
        client = self._http or httpx.AsyncClient()
        try:
            response = await client.get(
                url, timeout=self.settings.jwks_timeout_seconds, follow_redirects=False
            )
            response.raise_for_status()
            keys = self._import(response.json(), url)
        except (httpx.HTTPError, ValueError) as exc:
            log.error("cannot fetch JWKS", extra={"jwks_url": url, "error": str(exc)})
            raise Problem(
                503, detail="the token issuer's keys cannot be fetched right now"
            ) from exc
        finally:
            if self._http is None:
                await client.aclose()
        self._keys = keys
        self._fetched_at = time.monotonic()
        return keys

    async def _key_for(self, kid: str | None) -> Key:
        if self.settings.jwks is None:
            async with self._lock:
                age = time.monotonic() - self._fetched_at
                if self._keys is None or age > self.settings.jwks_cache_seconds:
                    await self._fetch()
        assert self._keys is not None
        try:
            return self._keys.get_by_kid(kid)
        except (InvalidKeyIdError, ValueError):
            pass
        if self.settings.jwks is None:
            async with self._lock:
                if time.monotonic() - self._fetched_at >= self.settings.jwks_min_refetch_seconds:
                    await self._fetch()
                    try:
                        return self._keys.get_by_kid(kid)
                    except (InvalidKeyIdError, ValueError):
                        pass
        raise unauthorized(f"the token is signed with an unknown key (kid {kid!r})")

    async def validate(self, token: str) -> Principal:
        """A ``Principal`` for ``token``, or ``Problem`` 401 saying what is wrong with it."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise unauthorized("the token is too long")
        header = _header(token)
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise unauthorized(f"the token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key = await self._key_for(kid if isinstance(kid, str) else None)
        try:
            decoded = jwt.decode(token, key, algorithms=self.settings.algorithms)
        except BadSignatureError as exc:
            raise unauthorized("the token signature is invalid") from exc
        except JoseError as exc:
            raise unauthorized("the token cannot be decoded") from exc
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=self.settings.leeway_seconds,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise unauthorized("the token has expired") from exc
        except MissingClaimError as exc:
            raise unauthorized(f"the token lacks required claims: {exc.claim}") from exc
        except InvalidClaimError as exc:
            raise unauthorized(_invalid_claim(exc.claim)) from exc
        except JoseError as exc:
            raise unauthorized(f"the token is not valid: {exc.description}") from exc
        client_id = claims.get("client_id", claims.get("azp"))
        return Principal(
            subject=str(claims["sub"]),
            client_id=str(client_id) if client_id is not None else None,
            scopes=_scopes(claims),
            claims=claims,
            token=token,
        )


def _invalid_claim(claim: str) -> str:
    if claim == "nbf":
        return "the token is not valid yet (nbf)"
    names = {"iss": "issuer (iss)", "aud": "audience (aud)", "sub": "subject (sub)"}
    return f"the token's {names.get(claim, claim)} is not accepted"


def _bearer(request: Request) -> str:
    value = request.headers.get("authorization")
    if not value:
        raise Problem(
            401, detail="a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("use the Authorization: Bearer scheme", error="invalid_request")
    return token.strip()


async def _audit_denied(request: Request, problem: Problem, actor: str | None) -> None:
    state = request.app.state.kit
    if not state.settings.audit.record_denied:
        return
    from zwfw.services.kit import audit

    try:
        await run_in_threadpool(
            audit.record,
            request,
            actor=actor or "anonymous",
            action="auth.denied",
            resource=f"{request.method} {request.url.path}",
            result=f"denied:{problem.status}",
            detail={"reason": problem.detail or problem.title},
        )
    except Exception:
        # A broken audit store must not turn a refusal into a success or a 500.
        log.exception("cannot record a denied request in the audit log")


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the validated caller of this request (401 problem if none)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    state = request.app.state.kit
    validator: TokenValidator | None = state.validator
    if validator is None:
        log.error(
            "a protected route was called but auth.issuer, auth.audience and "
            "auth.jwks_url/auth.jwks are not all configured"
        )
        raise Problem(503, detail="authentication is not configured on this service")
    try:
        principal = await validator.validate(_bearer(request))
    except Problem as problem:
        if problem.status == 401:
            await _audit_denied(request, problem, None)
        raise
    request.state.principal = principal
    return principal


def require_scopes(*scopes: str) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency factory: the caller, who must hold every one of ``scopes``
    (403 ``insufficient_scope`` problem otherwise)."""
    required = sorted(set(scopes))

    async def dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        missing = [s for s in required if s not in principal.scopes]
        if missing:
            problem = forbidden(
                f"the token lacks the scopes {' '.join(missing)}", required_scopes=required
            )
            await _audit_denied(request, problem, principal.subject)
            raise problem
        return principal

    dependency.__name__ = f"require_scopes({', '.join(required)})"
    return dependency


async def enforce_authentication(request: Request) -> None:
    """App-wide dependency: every route's endpoint needs a valid token unless it is
    ``@public`` or ``@authenticates_itself``."""
    endpoint = request.scope.get("endpoint")
    if is_public(endpoint) or authenticates_itself_because(endpoint) is not None:
        return
    await current_principal(request)
