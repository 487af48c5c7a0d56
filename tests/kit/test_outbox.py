"""The durable outbox: messages commit with the business change and are delivered, signed, until
the receiver takes them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from joserfc.jwk import ECKey
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from zwfw.crypto.fields import FieldProtector
from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.formats.channel import ChannelSigner, ChannelVerifier, RegisteredSender
from zwfw.services.kit import make_engine, migrate, outbox, session_factory
from zwfw.services.kit.outbox import (
    ChannelTransport,
    Delivery,
    Dispatcher,
    OutboxMessage,
    outbox_message,
)
from zwfw.services.kit.tokens import AsyncClientCredentials


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


class ScriptedTransport:
    """Answers each attempt from a script; records what it was asked to send."""

    def __init__(self, *answers: Delivery) -> None:
        self.answers = list(answers)
        self.sent: list[OutboxMessage] = []

    async def send(self, message: OutboxMessage) -> Delivery:
        self.sent.append(message)
        return self.answers.pop(0) if self.answers else Delivery(200, receipt={"ok": True})


def _due_now(sessions: sessionmaker[Session]) -> None:
    """Let time pass: every pending message becomes due."""
    with sessions.begin() as session:
        session.execute(
            update(outbox_message).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def _enqueue(sessions: sessionmaker[Session], **payload: object) -> str:
    with sessions.begin() as session:
        return outbox.enqueue(session, kind="case", path="/reports/cases", payload=payload)


def test_a_message_rolled_back_with_its_business_change_is_never_sent(sessions) -> None:
    session = sessions()
    with session.begin():
        outbox.enqueue(session, kind="case", path="/reports/cases", payload={"n": 1})
        session.rollback()
    transport = ScriptedTransport()
    stats = asyncio.run(Dispatcher(sessions, transport).dispatch_once())
    assert stats.delivered == 0
    assert transport.sent == []


def test_a_message_survives_a_hub_outage_and_is_delivered_once(sessions) -> None:
    message_id = _enqueue(sessions, case_no="A")
    transport = ScriptedTransport(
        Delivery(None, error="ConnectError: connection refused"),
        Delivery(503, error="HTTP 503: unavailable"),
        Delivery(201, receipt={"stored": True}),
    )
    dispatcher = Dispatcher(sessions, transport, base_delay=1.0, max_delay=60.0)

    assert asyncio.run(dispatcher.dispatch_once()).retried == 1
    with sessions() as session:
        after_first = outbox.get(session, message_id)
    assert after_first is not None
    assert after_first.state == "pending"
    assert after_first.attempts == 1
    assert after_first.next_attempt_at > datetime.now(UTC)
    assert "connection refused" in (after_first.last_error or "")

    # Not due yet: nothing is sent.
    assert asyncio.run(dispatcher.dispatch_once()).retried == 0
    assert len(transport.sent) == 1

    _due_now(sessions)
    assert asyncio.run(dispatcher.dispatch_once()).retried == 1
    _due_now(sessions)
    assert asyncio.run(dispatcher.dispatch_once()).delivered == 1
    _due_now(sessions)
    assert asyncio.run(dispatcher.dispatch_once()).delivered == 0

    with sessions() as session:
        done = outbox.get(session, message_id)
    assert done is not None
    assert done.state == "delivered"
    assert done.attempts == 3
    assert done.receipt == {"stored": True}
    assert len(transport.sent) == 3
    assert {m.idempotency_key for m in transport.sent} == {message_id}
    assert {m.body for m in transport.sent} == {b'{"case_no":"A"}'}


def test_a_permanent_refusal_is_kept_and_can_be_requeued(sessions) -> None:
    message_id = _enqueue(sessions, case_no="B")
    transport = ScriptedTransport(
        Delivery(422, receipt={"detail": "bad code"}, error="HTTP 422: bad code")
    )
    dispatcher = Dispatcher(sessions, transport)
    assert asyncio.run(dispatcher.dispatch_once()).rejected == 1
    with sessions() as session:
        rejected = outbox.get(session, message_id)
        assert outbox.counts(session) == {"pending": 0, "delivered": 0, "rejected": 1}
    assert rejected is not None
    assert rejected.state == "rejected"
    assert rejected.response_status == 422
    assert asyncio.run(dispatcher.dispatch_once()).rejected == 0

    with sessions.begin() as session:
        assert outbox.requeue(session, message_id) is True
        assert outbox.requeue(session, message_id) is False
    assert asyncio.run(dispatcher.dispatch_once()).delivered == 1


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 504])
def test_transient_statuses_are_retried(sessions, status) -> None:
    _enqueue(sessions, case_no="C")
    dispatcher = Dispatcher(sessions, ScriptedTransport(Delivery(status, error="busy")))
    assert asyncio.run(dispatcher.dispatch_once()).retried == 1


def test_a_dispatcher_with_max_attempts_gives_a_message_up_after_them(sessions) -> None:
    message_id = _enqueue(sessions, case_no="G")
    down = Delivery(None, error="ConnectTimeout: hub unreachable")
    dispatcher = Dispatcher(sessions, ScriptedTransport(down, down), max_attempts=2)
    assert asyncio.run(dispatcher.dispatch_once()).retried == 1
    _due_now(sessions)
    assert asyncio.run(dispatcher.dispatch_once()).rejected == 1
    with sessions() as session:
        message = outbox.get(session, message_id)
    assert message is not None
    assert message.state == "rejected"
    assert message.last_error == "gave up after 2 attempts: ConnectTimeout: hub unreachable"
    _due_now(sessions)
    assert asyncio.run(dispatcher.dispatch_once()) == outbox.DispatchStats()


def test_retry_after_is_honoured(sessions) -> None:
    message_id = _enqueue(sessions, case_no="D")
    transport = ScriptedTransport(Delivery(429, error="slow down", retry_after=120))
    dispatcher = Dispatcher(sessions, transport, base_delay=1.0, max_delay=300.0)
    asyncio.run(dispatcher.dispatch_once())
    with sessions() as session:
        message = outbox.get(session, message_id)
    assert message is not None
    assert message.next_attempt_at > datetime.now(UTC) + timedelta(seconds=110)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    dispatcher = Dispatcher(
        sessionmaker(), ScriptedTransport(), base_delay=2.0, max_delay=60.0, rng=random.Random(7)
    )
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (30, 60.0)]:
        delays = {dispatcher.backoff(attempts) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, not lockstep


def test_a_claimed_message_is_not_sent_by_a_second_dispatcher(sessions) -> None:
    _enqueue(sessions, case_no="E")
    first = Dispatcher(sessions, ScriptedTransport())
    second = Dispatcher(sessions, ScriptedTransport())
    claimed = first._claim()
    assert len(claimed) == 1
    assert second._claim() == []


def test_an_expired_lease_is_claimed_again(sessions) -> None:
    _enqueue(sessions, case_no="F")
    assert len(Dispatcher(sessions, ScriptedTransport(), lease_seconds=-1)._claim()) == 1
    assert len(Dispatcher(sessions, ScriptedTransport())._claim()) == 1


def test_a_transport_that_raises_does_not_lose_the_message(sessions) -> None:
    class Broken:
        async def send(self, message: OutboxMessage) -> Delivery:
            raise RuntimeError("bug")

    message_id = _enqueue(sessions, case_no="G")
    assert asyncio.run(Dispatcher(sessions, Broken()).dispatch_once()).retried == 1
    with sessions() as session:
        message = outbox.get(session, message_id)
    assert message is not None
    assert message.state == "pending"


def test_enqueue_refuses_a_relative_path(sessions) -> None:
    with sessions.begin() as session, pytest.raises(ValueError, match="absolute"):
        outbox.enqueue(session, kind="case", path="reports/cases", payload={})


def test_the_same_idempotency_key_cannot_be_enqueued_twice(sessions) -> None:
    from sqlalchemy.exc import IntegrityError

    with sessions.begin() as session:
        outbox.enqueue(session, kind="case", path="/r", payload={}, idempotency_key="case:1:v1")
    with pytest.raises(IntegrityError), sessions.begin() as session:
        outbox.enqueue(session, kind="case", path="/r", payload={}, idempotency_key="case:1:v1")


# --- over HTTP, signed ------------------------------------------------------------------------


def _receiver(signer: ChannelSigner, seen: list[dict[str, str]], outage: list[int]) -> FastAPI:
    """A stand-in hub: down for the first ``outage[0]`` calls, then verifies and stores."""
    app = FastAPI()
    verifier = ChannelVerifier("hub")
    registered = RegisteredSender(
        sender=signer.sender,
        signing_key=signer.key.public_key,
        key_id=signer.key_id,
        oauth_client_id="province-340000",
        tls_fingerprint=None,
    )
    stored: dict[str, bytes] = {}

    @app.post("/reports/cases")
    async def report(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        if outage[0] > 0:
            outage[0] -= 1
            return JSONResponse({"detail": "maintenance"}, status_code=503)
        body = await request.body()
        assert request.headers["authorization"] == "Bearer tok-1"
        message = verifier.verify(
            "POST",
            "/reports/cases",
            request.headers,
            body,
            sender=registered,
            client_id="province-340000",
        )
        created = message.idempotency_key not in stored
        stored.setdefault(message.idempotency_key or "", body)
        return JSONResponse({"stored": len(stored)}, status_code=201 if created else 200)

    return app


def test_channel_transport_signs_every_attempt_afresh(sessions) -> None:
    signer = ChannelSigner("340000", SM2PrivateKey.generate(), key_id="k1")
    seen: list[dict[str, str]] = []
    app = _receiver(signer, seen, outage=[1])

    async def token() -> str:
        return "tok-1"

    async def scenario() -> list[outbox.DispatchStats]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            transport = ChannelTransport(
                base_url="http://hub.test",
                signer=signer,
                recipient="hub",
                token=token,
                client=client,
            )
            dispatcher = Dispatcher(sessions, transport)
            first = await dispatcher.dispatch_once()
            _due_now(sessions)
            second = await dispatcher.dispatch_once()
            return [first, second]

    message_id = _enqueue(sessions, case_no="H", level=1)
    first, second = asyncio.run(scenario())
    assert (first.retried, second.delivered) == (1, 1)
    assert len(seen) == 2
    assert {h["idempotency-key"] for h in seen} == {message_id}
    assert seen[0]["zwfw-nonce"] != seen[1]["zwfw-nonce"]
    with sessions() as session:
        message = outbox.get(session, message_id)
    assert message is not None
    assert message.receipt == {"stored": 1}
    assert message.response_status == 201
    assert message.attempts == 2


def test_the_transport_gets_its_token_from_the_kit_client_and_renews_a_refused_one(
    sessions,
) -> None:
    """An IdP outage is a retry, never a rejection; a 401 from the hub drops the cached token."""
    signer = ChannelSigner("340000", SM2PrivateKey.generate(), key_id="k1")
    client_key = ECKey.generate_key("P-256", parameters={"kid": "hall-1"}, private=True)
    issued: list[str] = []
    idp_down = [True]

    def idp(request: httpx.Request) -> httpx.Response:
        if idp_down[0]:
            return httpx.Response(503, text="maintenance")
        issued.append(f"tok-{len(issued) + 1}")
        return httpx.Response(200, json={"access_token": issued[-1], "expires_in": 300})

    hub = FastAPI()
    bearers: list[str] = []

    @hub.post("/reports/cases")
    async def report(request: Request) -> JSONResponse:
        bearers.append(request.headers["authorization"])
        if len(bearers) == 1:
            return JSONResponse({"detail": "token revoked"}, status_code=401)
        return JSONResponse({"stored": 1}, status_code=201)

    def last_error(message_id: str) -> str | None:
        with sessions() as session:
            message = outbox.get(session, message_id)
        assert message is not None
        return message.last_error

    def requeue(message_id: str) -> bool:
        with sessions.begin() as session:
            return outbox.requeue(session, message_id)

    async def scenario(message_id: str) -> list[outbox.DispatchStats]:
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(idp)) as idp_http,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=hub)) as hub_http,
        ):
            tokens = AsyncClientCredentials(
                "https://idp.test/token", "province-340000", client_key, "hub:report",
                http=idp_http,
            )  # fmt: skip
            transport = ChannelTransport(
                base_url="http://hub.test", signer=signer, recipient="hub", token=tokens,
                client=hub_http,
            )  # fmt: skip
            dispatcher = Dispatcher(sessions, transport)
            down = await dispatcher.dispatch_once()
            assert "cannot obtain an access token" in (last_error(message_id) or "")
            idp_down[0] = False
            _due_now(sessions)
            refused = await dispatcher.dispatch_once()
            assert requeue(message_id)  # 401 is final for this attempt; an operator requeues
            delivered = await dispatcher.dispatch_once()
            return [down, refused, delivered]

    message_id = _enqueue(sessions, case_no="J")
    down, refused, delivered = asyncio.run(scenario(message_id))
    assert (down.retried, down.rejected) == (1, 0)
    assert refused.rejected == 1
    assert delivered.delivered == 1
    # The refused token was dropped: the next attempt fetched a new one.
    assert bearers == ["Bearer tok-1", "Bearer tok-2"]


def test_the_running_dispatcher_delivers_and_stops_cleanly(sessions) -> None:
    transport = ScriptedTransport()

    async def scenario() -> None:
        dispatcher = Dispatcher(sessions, transport, poll_interval=0.05)
        dispatcher.start()
        _enqueue(sessions, case_no="I")
        dispatcher.wake()
        for _ in range(100):
            if transport.sent:
                break
            await asyncio.sleep(0.02)
        await dispatcher.stop()

    asyncio.run(scenario())
    assert len(transport.sent) == 1
    with sessions() as session:
        assert outbox.counts(session)["delivered"] == 1


def _protector() -> FieldProtector:
    return FieldProtector.from_kek(KeyEncryptionKey.generate(), "test.outbox")


def test_an_encrypted_body_is_stored_sealed_and_sent_in_clear(sessions, engine) -> None:
    protector = _protector()
    with sessions.begin() as session:
        message_id = outbox.enqueue(
            session, kind="case", path="/reports/cases",
            payload={"certificate_number": "110101199003074578"}, protector=protector,
        )  # fmt: skip
    with engine.connect() as connection:
        stored = connection.execute(select(outbox_message.c.body)).scalar_one()
    assert bytes(stored).startswith(outbox.ENCRYPTED_BODY)
    assert b"110101199003074578" not in bytes(stored)

    transport = ScriptedTransport()
    dispatcher = Dispatcher(sessions, transport, protector=protector)
    assert asyncio.run(dispatcher.dispatch_once()).delivered == 1
    (sent,) = transport.sent
    assert sent.payload() == {"certificate_number": "110101199003074578"}
    with sessions() as session:
        with pytest.raises(outbox.OutboxBodyError, match="its key is needed"):
            outbox.get(session, message_id)
        again = outbox.get(session, message_id, protector)
    assert again is not None
    assert again.state == "delivered"


def test_a_body_sealed_under_another_key_is_set_aside_not_retried(sessions) -> None:
    with sessions.begin() as session:
        message_id = outbox.enqueue(
            session, kind="case", path="/reports/cases", payload={"n": 1}, protector=_protector()
        )
    transport = ScriptedTransport()
    stats = asyncio.run(Dispatcher(sessions, transport, protector=_protector()).dispatch_once())
    assert stats.delivered == 0
    assert transport.sent == []
    with sessions() as session:
        state, error = session.execute(
            select(outbox_message.c.state, outbox_message.c.last_error).where(
                outbox_message.c.id == message_id
            )
        ).one()
    assert state == "rejected"
    assert "failed authentication" in error


def test_a_report_refused_as_stale_is_signed_anew_and_delivered_once_the_clock_is_right(
    sessions,
) -> None:
    signer = ChannelSigner("340000", SM2PrivateKey.generate(), key_id="k1")
    offset = [900.0]  # the sender's clock, 900 s ahead of the receiver's 300 s window
    hub = FastAPI()
    stamps: list[int] = []

    @hub.post("/reports/cases")
    async def report(request: Request) -> JSONResponse:
        stamps.append(int(request.headers["zwfw-timestamp"]))
        if abs(stamps[-1] - time.time()) > 300:
            return JSONResponse(
                {"type": "urn:zwfw:problem:channel:stale", "title": "Unauthorized",
                 "status": 401, "detail": "the message timestamp is outside the 300 s window"},
                status_code=401, media_type="application/problem+json",
            )  # fmt: skip
        return JSONResponse({"stored": 1}, status_code=201)

    async def bad_signature(request: Request) -> JSONResponse:
        return JSONResponse({"type": "urn:zwfw:problem:channel:bad-signature"}, status_code=401)

    async def token() -> str:
        return "tok"

    async def scenario() -> list[outbox.DispatchStats]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub)) as hub_http:
            transport = ChannelTransport(
                base_url="http://hub.test", signer=signer, recipient="hub", token=token,
                client=hub_http, clock=lambda: time.time() + offset[0],
            )  # fmt: skip
            dispatcher = Dispatcher(sessions, transport)
            refused = await dispatcher.dispatch_once()
            offset[0] = 0.0
            _due_now(sessions)
            delivered = await dispatcher.dispatch_once()
            hub.router.routes.clear()
            hub.add_api_route("/reports/cases", bad_signature, methods=["POST"])
            _enqueue(sessions, case_no="L")
            rejected = await dispatcher.dispatch_once()
            return [refused, delivered, rejected]

    message_id = _enqueue(sessions, case_no="K")
    refused, delivered, rejected = asyncio.run(scenario())
    assert (refused.retried, refused.rejected, delivered.delivered) == (1, 0, 1)
    assert stamps[0] - stamps[1] >= 890  # each attempt signed with the clock of its time
    with sessions() as session:
        message = outbox.get(session, message_id)
    assert message is not None
    assert (message.state, message.attempts) == ("delivered", 2)
    # Any other refusal of the channel stays final.
    assert rejected.rejected == 1
