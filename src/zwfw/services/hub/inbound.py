"""Taking signed channel messages from provinces: who sent it, is it intact, fresh and new."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from zwfw.crypto.x509 import SM2Certificate
from zwfw.formats.channel import (
    MAX_BODY_BYTES,
    ChannelVerifier,
    RegisteredSender,
    VerifiedMessage,
    read_sender,
)
from zwfw.services.hub.models import Province
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import Principal, Problem, kit_state
from zwfw.services.kit.channel import client_certificate_fingerprint, remember_nonce


async def raw_body(request: Request) -> bytes:
    """The request body exactly as signed (read before any parsing)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise Problem(413, detail="the message body is too large")
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def registered_sender(province: Province | None) -> RegisteredSender | None:
    if province is None:
        return None
    certificate = SM2Certificate.load(province.signing_certificate.encode())
    return RegisteredSender(
        sender=province.region_code,
        signing_key=certificate.public_key,
        key_id=province.signing_key_id,
        oauth_client_id=province.oauth_client_id,
        tls_fingerprint=province.tls_fingerprint,
        active=province.status == "active",
    )


def verify_message(
    request: Request, body: bytes, db: Session, principal: Principal
) -> tuple[Province, VerifiedMessage]:
    """Check a province's signed message and store its nonce in ``db``'s transaction."""
    settings: HubSettings = kit_state(request.app).settings  # type: ignore[assignment]
    verifier = ChannelVerifier(
        settings.channel_id,
        window_seconds=settings.channel_window_seconds,
        require_client_certificate=settings.require_client_certificate,
    )
    province = db.get(Province, read_sender(request.headers))
    fingerprint = client_certificate_fingerprint(
        request.scope, request.headers, frozenset(settings.trusted_proxies)
    )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    message = verifier.verify(
        request.method,
        target,
        request.headers,
        body,
        sender=registered_sender(province),
        client_id=principal.client_id,
        tls_fingerprint=fingerprint,
    )
    assert province is not None  # verify() refuses unknown senders
    remember_nonce(db, message)
    return province, message


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], body: bytes) -> M:
    """``body`` as ``model``, or a 422 problem listing the invalid fields (values left out:
    they may be personal data)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ())),
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        fields = ", ".join(e["field"] or "(body)" for e in errors)
        raise Problem(
            422, detail=f"the report has invalid fields: {fields}", errors=errors
        ) from None


__all__ = ["RawBody", "parse_body", "raw_body", "verify_message"]
