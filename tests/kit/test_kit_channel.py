"""The service side of the signed channel: the persisted replay cache, where the TLS client
certificate comes from, and how a kit app answers a refused message."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from zwfw.formats.channel import ChannelError, VerifiedMessage, tls_fingerprint
from zwfw.services.kit import DbSession, make_engine, migrate, public, session_factory
from zwfw.services.kit.channel import (
    HEADER_CLIENT_CERT,
    channel_nonce,
    client_certificate_fingerprint,
    purge_nonces,
    remember_nonce,
)

NONCE = "bm9uY2Utbm9uY2Utbm9uY2U"


def _message(nonce: str = NONCE, *, signed_at: float | None = None) -> VerifiedMessage:
    timestamp = int(time.time() if signed_at is None else signed_at)
    return VerifiedMessage(
        sender="340000",
        recipient="hub",
        timestamp=timestamp,
        nonce=nonce,
        digest="sm3=:AA==:",
        idempotency_key=None,
        signature=b"\x30\x00",
        expires_at=datetime.fromtimestamp(timestamp + 301, tz=UTC),
    )


def _refusal(excinfo: pytest.ExceptionInfo[ChannelError]) -> tuple[int, str]:
    return excinfo.value.status, excinfo.value.reason


# --- the persisted replay cache ------------------------------------------------------------


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_a_replayed_nonce_is_refused_even_after_a_restart(engine, database_url) -> None:
    with session_factory(engine).begin() as session:
        remember_nonce(session, _message())
    with session_factory(engine).begin() as session, pytest.raises(ChannelError) as excinfo:
        remember_nonce(session, _message())
    assert _refusal(excinfo) == (409, "replayed")

    restarted = make_engine(database_url)
    try:
        with session_factory(restarted).begin() as session, pytest.raises(ChannelError):
            remember_nonce(session, _message())
        # The same nonce from another sender is that sender's own.
        other = VerifiedMessage(**{**_message().__dict__, "sender": "330000"})
        with session_factory(restarted).begin() as session:
            remember_nonce(session, other)
    finally:
        restarted.dispose()


def test_a_nonce_of_a_rolled_back_request_can_be_used_again(engine) -> None:
    session = session_factory(engine)()
    with session.begin():
        remember_nonce(session, _message())
        session.rollback()
    with session_factory(engine).begin() as session:
        remember_nonce(session, _message())


def test_expired_nonces_are_purged(engine) -> None:
    now = time.time()
    old = _message("b2xkLW9sZC1vbGQtb2xkLW9sZA", signed_at=now - 200)
    fresh = _message("ZnJlc2gtZnJlc2gtZnJlc2g", signed_at=now)
    with session_factory(engine).begin() as session:
        remember_nonce(session, old)
        remember_nonce(session, fresh)
    between = datetime.fromtimestamp(int(now) - 100 + 301, tz=UTC)
    with session_factory(engine).begin() as session:
        assert purge_nonces(session, now=between) == 1
        assert session.scalar(select(func.count()).select_from(channel_nonce)) == 1
    # The purged nonce's window has closed; the kept one is still refused when replayed.
    with session_factory(engine).begin() as session, pytest.raises(ChannelError):
        remember_nonce(session, fresh)


# --- a refusal answered by a kit app -----------------------------------------------------


def test_a_refused_message_is_a_problem_and_its_transaction_rolls_back(app: FastAPI) -> None:
    @public
    def receive(replay: bool, db: DbSession) -> dict[str, str]:
        remember_nonce(db, _message())
        if replay:
            remember_nonce(db, _message())
        return {"stored": "yes"}

    app.add_api_route("/channel-probe", receive, methods=["POST"])
    with TestClient(app) as client:
        refused = client.post("/channel-probe?replay=true", headers={"X-Request-ID": "req-9"})
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json() == {
            "type": "urn:zwfw:problem:channel:replayed",
            "title": "Conflict",
            "status": 409,
            "detail": "the message nonce was already used",
            "reason": "replayed",
            "request_id": "req-9",
        }
        # Nothing of the refused request was kept: the nonce is still free.
        assert client.post("/channel-probe?replay=false").json() == {"stored": "yes"}
        assert client.post("/channel-probe?replay=false").status_code == 409


# --- where the TLS client certificate comes from ----------------------------------------------


def test_client_certificate_from_the_asgi_tls_extension() -> None:
    der = b"\x30\x03\x02\x01\x01"
    pem = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(der).decode()
        + "\n-----END CERTIFICATE-----\n"
    )
    scope = {"extensions": {"tls": {"client_cert_chain": [pem]}}, "client": ("10.0.0.9", 1)}
    assert client_certificate_fingerprint(scope, {}, frozenset()) == tls_fingerprint(der)


def test_client_cert_header_is_trusted_only_from_a_trusted_gateway() -> None:
    der = b"\x30\x03\x02\x01\x02"
    headers = {HEADER_CLIENT_CERT: f":{base64.b64encode(der).decode()}:"}
    gateway = {"client": ("10.0.0.1", 4431)}
    stranger = {"client": ("203.0.113.7", 4431)}
    trusted = frozenset({"10.0.0.1"})
    assert client_certificate_fingerprint(gateway, headers, trusted) == tls_fingerprint(der)
    assert client_certificate_fingerprint(stranger, headers, trusted) is None
    assert client_certificate_fingerprint(gateway, {HEADER_CLIENT_CERT: "bogus"}, trusted) is None
