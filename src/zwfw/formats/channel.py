"""The signed province↔hub channel: message integrity, freshness, replay protection and sender
binding for every report a province sends to the national hub (and back).

Why SM2-with-SM3 and not JWS ES256: GB/T 39786-2021 (密评) level 3 expects the SM algorithms
for integrity of data in transit and for non-repudiation, and the national CA issues SM2
certificates (``zwfw.crypto.x509``). JOSE has no registered SM2 algorithm, so an "SM2 JWS"
would interoperate with nothing; a small detached signature over a fixed signature base keeps
the body as plain JSON and the signature verifiable with any GB/T 32918 implementation
(OpenSSL 3: ``openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678``).

What a signed request carries (HTTP headers; the body is sent byte-for-byte as signed)::

    Zwfw-Sender:     340000                       who sends (region code, or "hub")
    Zwfw-Recipient:  hub                          who it is for (a message is valid only there)
    Zwfw-Timestamp:  1767225600                   Unix seconds when it was signed
    Zwfw-Nonce:      3Jm0...                      128 random bits, base64url, never reused
    Content-Digest:  sm3=:base64(SM3(body)):      RFC 9530 structure, SM3 digest
    Idempotency-Key: 0f3a...                      the outbox message id (same on every retry)
    Zwfw-Signature:  keyid="<SM3 cert fingerprint hex>", alg="sm2-sm3", sig="<base64 DER>"

The signature base is ``zwfw-channel/1`` followed by method, request target (path and query),
sender, recipient, timestamp, nonce, Content-Digest and Idempotency-Key, one per line (see
``signature_base``). Binding method and path means a signed case report cannot be replayed at
the evaluation endpoint; binding the recipient means a message for the hub cannot be replayed
at another province.

The receiver (``ChannelVerifier``) rejects, in this order: malformed headers (400); a timestamp
outside the window (401 ``stale``); a body whose digest differs (401 ``altered``); an unknown,
suspended or mismatched sender (401/403); a bad signature (401 ``bad-signature``). Only then is
the nonce stored, and a nonce the sender used before is refused (409 ``replayed``): the
receiver keeps nonces for the window, across restarts (a service does it with
``zwfw.services.kit.channel.remember_nonce``). Each refusal is a ``ChannelError`` whose status
and reason are part of this format: a receiver answers them as RFC 9457 problems of type
``urn:zwfw:problem:channel:<reason>``.

Sender binding: the registered sender record names its SM2 signing certificate, its OAuth client
at the national IdP and the SHA-256 fingerprint of its mutual-TLS client certificate. The bearer
token's ``client_id`` must be the sender's, and when the TLS client certificate is visible
(ASGI TLS extension, or RFC 9440 ``Client-Cert`` from a trusted gateway) its fingerprint must
match too; ``require_client_certificate`` refuses messages whose certificate is not visible.

Sender side::

    signer = ChannelSigner(sender="340000", key=sm2_key, certificate=signing_cert)
    headers = signer.headers("POST", "/reports/cases", body, recipient="hub",
                             idempotency_key=message_id)

Receiver side (in an endpoint; see ``zwfw.services.hub.inbound`` for a complete use)::

    message = verifier.verify(method, target, request.headers, body, sender=registered,
                              client_id=principal.client_id, tls_fingerprint=fingerprint)
    remember_nonce(db, message)            # same transaction as the stored report

This module is the format every party shares (provinces, the hub, the conformance suites, the
self-test); the service machinery around it is in ``zwfw.services.kit.channel``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import SM2PrivateKey, SM2PublicKey
from zwfw.crypto.x509 import SM2Certificate

CHANNEL_VERSION = "zwfw-channel/1"
SIGNATURE_ALGORITHM = "sm2-sm3"

HEADER_SENDER = "Zwfw-Sender"
HEADER_RECIPIENT = "Zwfw-Recipient"
HEADER_TIMESTAMP = "Zwfw-Timestamp"
HEADER_NONCE = "Zwfw-Nonce"
HEADER_SIGNATURE = "Zwfw-Signature"
HEADER_DIGEST = "Content-Digest"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"

DEFAULT_WINDOW_SECONDS = 300
MAX_BODY_BYTES = 4 * 1024 * 1024

PROBLEM_TYPE_BASE = "urn:zwfw:problem:channel:"
_SENDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_DIGEST = re.compile(r"^sm3=:([A-Za-z0-9+/=]+):$")
_SIGNATURE_PARAM = re.compile(r'\s*([a-z]+)="([^"]*)"\s*')


class ChannelError(Exception):
    """A channel message was refused. ``reason`` is a stable code (``malformed``, ``stale``,
    ``altered``, ``unknown-sender``, ``sender-suspended``, ``sender-mismatch``,
    ``wrong-recipient``, ``bad-signature``, ``replayed``), ``status`` the HTTP status a receiver
    answers with and ``problem_type`` the RFC 9457 problem type it names."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail

    @property
    def problem_type(self) -> str:
        return PROBLEM_TYPE_BASE + self.reason


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` value for ``body``: ``sm3=:<base64 SM3>:``."""
    return f"sm3=:{_b64(sm3(body))}:"


def certificate_key_id(certificate: SM2Certificate) -> str:
    """The key id a signer announces: the SM3 fingerprint of its certificate, hex."""
    return certificate.fingerprint.hex()


def tls_fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint (lowercase hex) of a DER TLS client certificate; TLS certificates
    are ECDSA/RSA in practice, and SHA-256 is what gateways and operators quote."""
    return hashlib.sha256(der).hexdigest()


def signature_base(
    *,
    method: str,
    target: str,
    sender: str,
    recipient: str,
    timestamp: int,
    nonce: str,
    digest: str,
    idempotency_key: str | None,
) -> bytes:
    """The exact bytes that are signed."""
    lines = [
        CHANNEL_VERSION,
        method.upper(),
        target,
        sender,
        recipient,
        str(timestamp),
        nonce,
        digest,
        idempotency_key or "",
    ]
    return "\n".join(lines).encode("utf-8")


class ChannelSigner:
    """Signs outgoing channel messages with the sender's SM2 key.

    ``certificate`` is the sender's SM2 signing certificate from the national CA; its SM3
    fingerprint is the announced key id. Without one, ``key_id`` must be given.
    """

    def __init__(
        self,
        sender: str,
        key: SM2PrivateKey,
        certificate: SM2Certificate | None = None,
        *,
        key_id: str | None = None,
    ) -> None:
        if not _SENDER.match(sender):
            raise ValueError(f"sender {sender!r} is not a valid channel sender id")
        if certificate is not None and certificate.public_key != key.public_key:
            raise ValueError("the signing key does not match the signing certificate")
        if certificate is None and key_id is None:
            raise ValueError("give the signing certificate or a key id")
        self.sender = sender
        self.key = key
        self.certificate = certificate
        self.key_id = key_id or certificate_key_id(certificate)  # type: ignore[arg-type]

    def headers(
        self,
        method: str,
        target: str,
        body: bytes,
        *,
        recipient: str,
        idempotency_key: str | None = None,
        now: float | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """Headers that make this request a signed channel message. A fresh nonce and
        timestamp are drawn on every call, so a retry is a new message with the same
        idempotency key."""
        timestamp = int(time.time() if now is None else now)
        nonce = nonce or secrets.token_urlsafe(16)
        digest = content_digest(body)
        base = signature_base(
            method=method,
            target=target,
            sender=self.sender,
            recipient=recipient,
            timestamp=timestamp,
            nonce=nonce,
            digest=digest,
            idempotency_key=idempotency_key,
        )
        signature = self.key.sign(base)
        headers = {
            HEADER_SENDER: self.sender,
            HEADER_RECIPIENT: recipient,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_NONCE: nonce,
            HEADER_DIGEST: digest,
            HEADER_SIGNATURE: (
                f'keyid="{self.key_id}", alg="{SIGNATURE_ALGORITHM}", sig="{_b64(signature)}"'
            ),
        }
        if idempotency_key is not None:
            headers[HEADER_IDEMPOTENCY_KEY] = idempotency_key
        return headers


@dataclass(frozen=True)
class RegisteredSender:
    """What the receiver knows about a sender (the hub reads it from its province registry)."""

    sender: str
    signing_key: SM2PublicKey
    key_id: str
    oauth_client_id: str | None
    tls_fingerprint: str | None
    active: bool = True


@dataclass(frozen=True)
class VerifiedMessage:
    """A message whose signature, digest, freshness and sender checked out (its nonce is not
    yet stored: call ``remember_nonce`` in the transaction that stores its effect)."""

    sender: str
    recipient: str
    timestamp: int
    nonce: str
    digest: str
    idempotency_key: str | None
    signature: bytes
    expires_at: datetime


def _optional(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return headers.get(name.lower()) if value is None else value


def _required(headers: Mapping[str, str], name: str) -> str:
    value = _optional(headers, name)
    if value is None:
        raise ChannelError(400, "malformed", f"the {name} header is required")
    return value


def _parse_signature(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in value.split(","):
        match = _SIGNATURE_PARAM.fullmatch(part)
        if match is None:
            raise ChannelError(400, "malformed", "the Zwfw-Signature header is malformed")
        params[match.group(1)] = match.group(2)
    if {"keyid", "alg", "sig"} - params.keys():
        raise ChannelError(400, "malformed", "Zwfw-Signature needs keyid, alg and sig")
    if params["alg"] != SIGNATURE_ALGORITHM:
        raise ChannelError(
            400, "malformed", f"signature algorithm {params['alg']!r} is not {SIGNATURE_ALGORITHM}"
        )
    return params


def read_sender(headers: Mapping[str, str]) -> str:
    """The claimed sender of a message (not yet verified), to look its record up."""
    sender = _required(headers, HEADER_SENDER)
    if not _SENDER.match(sender):
        raise ChannelError(400, "malformed", "the Zwfw-Sender header is malformed")
    return sender


class ChannelVerifier:
    """Checks incoming channel messages for one recipient (e.g. ``"hub"``).

    ``window_seconds`` is how far a message's timestamp may lie from the receiver's clock in
    either direction; ``require_client_certificate`` refuses messages whose TLS client
    certificate is not visible to the application.
    """

    def __init__(
        self,
        recipient: str,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        require_client_certificate: bool = False,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("the timestamp window must be positive")
        self.recipient = recipient
        self.window_seconds = window_seconds
        self.require_client_certificate = require_client_certificate

    def verify(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        sender: RegisteredSender | None,
        client_id: str | None,
        tls_fingerprint: str | None = None,
        now: float | None = None,
    ) -> VerifiedMessage:
        """The verified message, or ``ChannelError`` naming the first check that failed."""
        claimed = read_sender(headers)
        recipient = _required(headers, HEADER_RECIPIENT)
        raw_timestamp = _required(headers, HEADER_TIMESTAMP)
        nonce = _required(headers, HEADER_NONCE)
        digest = _required(headers, HEADER_DIGEST)
        params = _parse_signature(_required(headers, HEADER_SIGNATURE))
        idempotency_key = _optional(headers, HEADER_IDEMPOTENCY_KEY)
        if not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
            raise ChannelError(400, "malformed", "Zwfw-Timestamp must be Unix seconds")
        if not _NONCE.match(nonce):
            raise ChannelError(400, "malformed", "Zwfw-Nonce must be 16-128 base64url characters")
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise ChannelError(400, "malformed", "Idempotency-Key is malformed")
        if _DIGEST.match(digest) is None:
            raise ChannelError(400, "malformed", "Content-Digest must be sm3=:<base64>:")
        try:
            signature = base64.b64decode(params["sig"], validate=True)
        except binascii.Error as exc:
            raise ChannelError(400, "malformed", "the signature is not base64") from exc

        if recipient != self.recipient:
            raise ChannelError(
                401, "wrong-recipient", f"the message is addressed to {recipient!r}, not here"
            )
        timestamp = int(raw_timestamp)
        clock = time.time() if now is None else now
        if abs(clock - timestamp) > self.window_seconds:
            raise ChannelError(
                401,
                "stale",
                f"the message timestamp is outside the {self.window_seconds} s window",
            )
        if len(body) > MAX_BODY_BYTES:
            raise ChannelError(400, "malformed", "the message body is too large")
        if not secrets.compare_digest(digest, content_digest(body)):
            raise ChannelError(401, "altered", "the body does not match its Content-Digest")

        if sender is None or sender.sender != claimed:
            raise ChannelError(401, "unknown-sender", f"sender {claimed!r} is not registered")
        if not sender.active:
            raise ChannelError(403, "sender-suspended", f"sender {claimed!r} is suspended")
        if sender.oauth_client_id is not None and client_id != sender.oauth_client_id:
            raise ChannelError(
                403, "sender-mismatch", "the bearer token's client is not the message's sender"
            )
        if tls_fingerprint is None and self.require_client_certificate:
            raise ChannelError(
                401, "sender-mismatch", "no TLS client certificate is visible for this message"
            )
        if (
            tls_fingerprint is not None
            and sender.tls_fingerprint is not None
            and not secrets.compare_digest(tls_fingerprint.lower(), sender.tls_fingerprint.lower())
        ):
            raise ChannelError(
                403, "sender-mismatch", "the TLS client certificate is not the sender's"
            )
        if params["keyid"] != sender.key_id:
            raise ChannelError(
                401, "bad-signature", "the message is signed with a key not registered for it"
            )
        base = signature_base(
            method=method,
            target=target,
            sender=claimed,
            recipient=recipient,
            timestamp=timestamp,
            nonce=nonce,
            digest=digest,
            idempotency_key=idempotency_key,
        )
        if not sender.signing_key.verify(signature, base):
            raise ChannelError(401, "bad-signature", "the message signature does not verify")
        expires = datetime.fromtimestamp(timestamp + self.window_seconds + 1, tz=UTC)
        return VerifiedMessage(
            sender=claimed,
            recipient=recipient,
            timestamp=timestamp,
            nonce=nonce,
            digest=digest,
            idempotency_key=idempotency_key,
            signature=signature,
            expires_at=expires,
        )
