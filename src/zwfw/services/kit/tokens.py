"""The OAuth 2.0 client side every service and tool shares: ``private_key_jwt`` client
authentication (RFC 7523, ES256) and client-credentials tokens cached until shortly before
they expire, in a blocking (``ClientCredentials``) and an asyncio (``AsyncClientCredentials``)
flavour. Other grants (RFC 8693 token exchange) go through ``request`` with the same client
authentication and no caching.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

# An assertion is single-use (the IdP keeps its jti); a minute covers any clock skew we accept.
ASSERTION_LIFETIME_SECONDS = 60


class TokenRequestError(Exception):
    """The token endpoint could not be reached or refused the request.

    ``status`` is the HTTP status (``None`` when no answer came), ``error`` and
    ``description`` the OAuth ``error`` and ``error_description`` when the endpoint gave them.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.description = description

    @property
    def refused(self) -> bool:
        """The endpoint answered and said no (as opposed to being unavailable)."""
        return self.status is not None and 400 <= self.status < 500


def load_client_key(path: Path) -> ECKey:
    """A client's private key from a JWK (JSON) or PEM file."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        return ECKey.import_key(json.loads(text))
    return ECKey.import_key(text)


def client_assertion(
    client_id: str, key: ECKey, audience: str, *, lifetime: int = ASSERTION_LIFETIME_SECONDS
) -> str:
    """A signed ``private_key_jwt`` assertion for the token endpoint ``audience``."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + lifetime,
    }
    header = {"alg": "ES256"}
    if key.kid:
        header["kid"] = key.kid
    return jwt.encode(header, claims, key)


def _answer(token_url: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        error = body.get("error") if isinstance(body, dict) else None
        described = body.get("error_description") if isinstance(body, dict) else None
        reason = described or error or f"HTTP {response.status_code}"
        raise TokenRequestError(
            f"{token_url} refused the token request: {reason}",
            status=response.status_code,
            error=str(error) if error else None,
            description=str(described) if described else None,
        )
    return body


def _unreachable(token_url: str, exc: httpx.HTTPError) -> TokenRequestError:
    return TokenRequestError(f"cannot reach {token_url}: {exc}")


_Http = TypeVar("_Http", httpx.Client, httpx.AsyncClient)


class _Base(Generic[_Http]):
    def __init__(
        self,
        token_url: str,
        client_id: str,
        key: ECKey,
        scope: str,
        *,
        http: _Http | None = None,
        audience: str | None = None,
        assertion_audience: str | None = None,
        timeout: float = 10.0,
        refresh_margin: float = 30.0,
    ) -> None:
        self.token_url = token_url
        # The IdP's own name for its token endpoint, when it is called at another address
        # (inside a cluster); its client assertions must name that.
        self.assertion_audience = assertion_audience or token_url
        self.client_id = client_id
        self.key = key
        self.scope = scope
        self.http: _Http | None = http
        self.audience = audience
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self._token: tuple[str, float] | None = None
        self._lock = self._new_lock()

    def _new_lock(self) -> Any:
        raise NotImplementedError

    def _form(self, form: dict[str, str]) -> dict[str, str]:
        return {
            **form,
            "client_id": self.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client_assertion(self.client_id, self.key, self.assertion_audience),
        }

    def _grant(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials", "scope": self.scope}
        if self.audience:
            form["audience"] = self.audience
        return form

    def _cached(self) -> str | None:
        if self._token is not None and time.monotonic() < self._token[1]:
            return self._token[0]
        return None

    def _keep(self, body: dict[str, Any]) -> str:
        token = str(body["access_token"])
        ttl = float(body.get("expires_in", 300))
        # Renewed early so that a token never expires in flight.
        self._token = (token, time.monotonic() + max(ttl - self.refresh_margin, ttl / 2))
        return token

    def invalidate(self) -> None:
        """Forget the cached token (e.g. after the resource server refused it)."""
        self._token = None


class ClientCredentials(_Base[httpx.Client]):
    """Client-credentials tokens for blocking code; thread-safe. ``http`` is borrowed; without
    one each request uses a short-lived connection."""

    def _new_lock(self) -> threading.Lock:
        return threading.Lock()

    def request(self, form: dict[str, str]) -> dict[str, Any]:
        """POST ``form`` to the token endpoint with this client's authentication."""
        post = self.http.post if self.http is not None else httpx.post
        try:
            response = post(self.token_url, data=self._form(form), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise _unreachable(self.token_url, exc) from exc
        return _answer(self.token_url, response)

    def __call__(self) -> str:
        with self._lock:
            return self._cached() or self._keep(self.request(self._grant()))


class AsyncClientCredentials(_Base[httpx.AsyncClient]):
    """Client-credentials tokens for asyncio code; concurrent callers share one request.
    ``http`` is borrowed; without one each request opens its own client."""

    def _new_lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    async def request(self, form: dict[str, str]) -> dict[str, Any]:
        """POST ``form`` to the token endpoint with this client's authentication."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                http = self.http
                if http is None:
                    http = await stack.enter_async_context(httpx.AsyncClient())
                response = await http.post(
                    self.token_url, data=self._form(form), timeout=self.timeout
                )
        except httpx.HTTPError as exc:
            raise _unreachable(self.token_url, exc) from exc
        return _answer(self.token_url, response)

    async def __call__(self) -> str:
        async with self._lock:
            return self._cached() or self._keep(await self.request(self._grant()))
