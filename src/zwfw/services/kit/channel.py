"""The service side of the signed channel (``zwfw.formats.channel``): the replay cache every
kit database carries, the TLS client certificate as the application can see it, and the
problem+json answer to a refused message.

Nonces are stored (``remember_nonce``) in the database of the request's own transaction, after
every other check passed: the cache survives restarts, so a restart never reopens the window,
and a forged message cannot burn nonces. Nonces expire with the window (``purge_nonces``).
A ``ChannelError`` raised while handling a request is answered by every kit app as a problem of
type ``urn:zwfw:problem:channel:<reason>`` with a ``reason`` member (``on_refusal``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from starlette.responses import Response

from zwfw.formats.channel import ChannelError, VerifiedMessage, tls_fingerprint
from zwfw.services.kit.logs import current_request_id
from zwfw.services.kit.problems import Problem

HEADER_CLIENT_CERT = "Client-Cert"  # RFC 9440, set by a trusted TLS-terminating gateway

# The replay cache; created by the kit's migration kit_0002 in every kit database.
channel_metadata = MetaData()
channel_nonce = Table(
    "channel_nonce",
    channel_metadata,
    Column("sender", String(64), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)


def remember_nonce(session: Session, message: VerifiedMessage) -> None:
    """Store the message's nonce in ``session``'s transaction; ``ChannelError`` 409
    ``replayed`` when the sender used it before (within the window or after a restart)."""
    dialect = session.get_bind().dialect.name
    values = {
        "sender": message.sender,
        "nonce": message.nonce,
        "expires_at": message.expires_at,
    }
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(channel_nonce).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(channel_nonce).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - the kit supports SQLite and PostgreSQL only
        statement = insert(channel_nonce).values(values)
    # RETURNING tells whether the row went in; rowcount is not reliable for this on psycopg.
    inserted = session.execute(statement.returning(channel_nonce.c.nonce)).first()
    if inserted is None:
        raise ChannelError(409, "replayed", "the message nonce was already used")


def purge_nonces(session: Session, *, now: datetime | None = None) -> int:
    """Delete nonces whose window has closed (a message that old is refused as stale anyway);
    returns how many were deleted."""
    moment = now or datetime.now(UTC)
    result = session.execute(delete(channel_nonce).where(channel_nonce.c.expires_at < moment))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def client_certificate_fingerprint(
    scope: Mapping[str, Any], headers: Mapping[str, str], trusted_proxies: frozenset[str]
) -> str | None:
    """SHA-256 fingerprint of the caller's TLS client certificate, when the application can
    see it: from the ASGI TLS extension (``client_cert_chain``, PEM), or from the RFC 9440
    ``Client-Cert`` header (``:base64 DER:``) when the direct peer is a trusted gateway.
    A ``Client-Cert`` header from anyone else is ignored (it could be forged)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if chain:
        first = chain[0]
        pem = first.decode() if isinstance(first, bytes) else str(first)
        body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
        try:
            return tls_fingerprint(base64.b64decode(body, validate=True))
        except binascii.Error:
            return None
    client = scope.get("client") or ("", 0)
    value = headers.get(HEADER_CLIENT_CERT) or headers.get(HEADER_CLIENT_CERT.lower())
    if value and client[0] in trusted_proxies:
        value = value.strip()
        if value.startswith(":") and value.endswith(":") and len(value) > 2:
            try:
                return tls_fingerprint(base64.b64decode(value[1:-1], validate=True))
            except binascii.Error:
                return None
    return None


async def on_refusal(request: Request, exc: Exception) -> Response:
    """Exception handler the kit installs in every app: a refused message is a problem."""
    assert isinstance(exc, ChannelError)
    refusal = Problem(exc.status, detail=exc.detail, type=exc.problem_type, reason=exc.reason)
    return refusal.to_response(current_request_id())
