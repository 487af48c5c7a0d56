"""A durable outbox: reports to another party (a province's cases and evaluations to the hub)
are written in the same transaction as the business change, and a dispatcher delivers them,
signed, until the receiver has taken them.

Why: a report sent directly from the request handler is lost whenever the hub is briefly down;
one sent after commit is lost if the process dies in between. Here the message row commits or
rolls back with the case itself, and delivery is retried until it succeeds.

Use it from a service::

    from zwfw.services.kit import outbox

    @router.post("/cases/{number}/finish")
    def finish(number: str, db: DbSession, ...):
        case.finish(...)
        outbox.enqueue(db, kind="case", path="/reports/cases", payload=case.report())
        # the session commits both, or neither

    # mutual TLS to the hub, and the national CA bundle
    client = httpx.AsyncClient(cert=("tls.crt", "tls.key"), verify="national-ca.pem")
    dispatcher = outbox.Dispatcher(
        sessions,                                  # app.state.kit.sessions
        outbox.ChannelTransport(
            base_url="https://hub.example.gov.cn",
            signer=ChannelSigner("340000", key, certificate),
            recipient="hub",
            # zwfw.services.kit.tokens: cached client-credentials tokens (private_key_jwt)
            token=AsyncClientCredentials(token_url, client_id, client_key, "hub:report",
                                         http=client),
            client=client,
        ),
        registry=app.state.kit.metrics.registry,   # zwfw_outbox_* gauges on /metrics
    )
    create_app(..., on_startup=[lambda app: dispatcher.start()],
               on_shutdown=[lambda app: dispatcher.stop()])

Delivery rules:
- every message has an idempotency key (its id unless given), sent as ``Idempotency-Key`` on
  every attempt, so the receiver stores a report once however often it arrives;
- network errors, timeouts, 408, 425, 429 and 5xx are retried with exponential backoff and
  jitter (``base_delay * 2**attempts``, capped at ``max_delay``, then a random point in its
  upper half so many provinces do not retry in lockstep); ``Retry-After`` is honoured;
  a dispatcher given ``max_attempts`` stops after that many and marks the message
  ``rejected`` (the default retries until delivered: what the outbox is for; a limit of 1 is
  a service without an outbox, whose reports are lost while the receiver is unreachable);
- a 401 ``stale`` channel refusal (the sender's clock is off by more than the receiver's
  freshness window) is retried too: every attempt is signed anew, so the message goes through
  once the clock is set right, without an operator;
- any other 4xx means the receiver will never take this message as it is: it is marked
  ``rejected`` with the receiver's answer and kept (never deleted) for operators, who can
  ``requeue`` it after fixing the cause;
- a message is claimed with a lease before sending, so two dispatchers (or a restarted one)
  do not send it concurrently; a dispatcher that dies mid-send leaves a lease that expires;
- nothing is ever deleted by the dispatcher: delivered messages keep their receipt;
- a service whose reports carry personal data (the hall's certificate numbers) passes a
  ``FieldProtector``: bodies are then stored SM4-GCM encrypted (bound to the message id) and
  opened only to be sent, so the kept history is no clear copy of what the service protects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from zwfw.codes.masking import mask_personal_data
from zwfw.crypto.fields import FieldProtectionError, FieldProtector
from zwfw.formats.channel import PROBLEM_TYPE_BASE, ChannelSigner
from zwfw.services.kit.tokens import TokenRequestError

log = logging.getLogger("zwfw.outbox")

State = Literal["pending", "delivered", "rejected"]
PENDING: State = "pending"
DELIVERED: State = "delivered"
REJECTED: State = "rejected"

RETRYABLE_STATUSES = frozenset({408, 425, 429})
STALE_PROBLEM = PROBLEM_TYPE_BASE + "stale"

# Marks an encrypted body; clear bodies are JSON and never start with a NUL byte.
ENCRYPTED_BODY = b"\x00sm4gcm:"


class OutboxBodyError(ValueError):
    """A stored body could not be opened (encrypted, and no or the wrong key given)."""


# Created by the kit's migration kit_0002 in every kit database.
outbox_metadata = MetaData()
outbox_message = Table(
    "outbox_message",
    outbox_metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(50), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(500), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("state", String(20), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("last_error", String(1000), nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("receipt", JSON, nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def encode_payload(payload: Any) -> bytes:
    """The exact body bytes stored and sent (compact UTF-8 JSON, keys sorted), so every retry
    carries the same digest."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class OutboxMessage:
    """One message as stored."""

    id: str
    kind: str
    method: str
    path: str
    body: bytes
    idempotency_key: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    response_status: int | None
    receipt: Any
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: Any, protector: FieldProtector | None = None) -> OutboxMessage:
        m = row._mapping
        return cls(
            id=m["id"],
            kind=m["kind"],
            method=m["method"],
            path=m["path"],
            body=_open_body(bytes(m["body"]), m["id"], protector),
            idempotency_key=m["idempotency_key"],
            state=m["state"],
            attempts=m["attempts"],
            created_at=_aware(m["created_at"]),
            next_attempt_at=_aware(m["next_attempt_at"]),
            last_error=m["last_error"],
            response_status=m["response_status"],
            receipt=m["receipt"],
            delivered_at=_aware(m["delivered_at"]) if m["delivered_at"] else None,
        )

    def payload(self) -> Any:
        return json.loads(self.body)


def _body_context(message_id: str) -> str:
    return f"outbox_message.body:{message_id}"


def _open_body(stored: bytes, message_id: str, protector: FieldProtector | None) -> bytes:
    if not stored.startswith(ENCRYPTED_BODY):
        return stored
    if protector is None:
        raise OutboxBodyError(f"outbox message {message_id} is encrypted; its key is needed")
    try:
        text = protector.decrypt(stored[len(ENCRYPTED_BODY) :], _body_context(message_id))
    except FieldProtectionError as exc:
        raise OutboxBodyError(f"outbox message {message_id}: {exc}") from None
    return text.encode()


def enqueue(
    session: Session,
    *,
    kind: str,
    path: str,
    payload: Any,
    method: str = "POST",
    idempotency_key: str | None = None,
    protector: FieldProtector | None = None,
) -> str:
    """Add a message in ``session``'s transaction (commit it with the business change);
    returns the message id. ``idempotency_key`` defaults to the id; give one derived from the
    business fact (e.g. ``case:<number>:v<version>``) to make enqueueing itself idempotent.
    With ``protector`` the body is stored encrypted (see the module docstring)."""
    if not path.startswith("/"):
        raise ValueError("the outbox path must be absolute on the receiver (start with /)")
    message_id = str(uuid.uuid4())
    now = _now()
    body = encode_payload(payload)
    if protector is not None:
        body = ENCRYPTED_BODY + protector.encrypt(body.decode(), _body_context(message_id))
    session.execute(
        outbox_message.insert().values(
            id=message_id,
            kind=kind,
            method=method.upper(),
            path=path,
            body=body,
            idempotency_key=idempotency_key or message_id,
            state=PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )
    return message_id


def get(
    session: Session, message_id: str, protector: FieldProtector | None = None
) -> OutboxMessage | None:
    row = session.execute(select(outbox_message).where(outbox_message.c.id == message_id)).first()
    return OutboxMessage.from_row(row, protector) if row is not None else None


def list_messages(
    session: Session,
    *,
    state: State | None = None,
    limit: int = 100,
    protector: FieldProtector | None = None,
) -> list[OutboxMessage]:
    query = select(outbox_message).order_by(outbox_message.c.created_at).limit(limit)
    if state is not None:
        query = query.where(outbox_message.c.state == state)
    return [OutboxMessage.from_row(r, protector) for r in session.execute(query)]


def counts(session: Session) -> dict[str, int]:
    """Messages per state."""
    rows = session.execute(
        select(outbox_message.c.state, func.count()).group_by(outbox_message.c.state)
    )
    found = {state: int(n) for state, n in rows}
    return {s: found.get(s, 0) for s in (PENDING, DELIVERED, REJECTED)}


def requeue(session: Session, message_id: str) -> bool:
    """Put a rejected message back in line (after its cause was fixed); False if it is not
    rejected."""
    result = session.execute(
        update(outbox_message)
        .where(outbox_message.c.id == message_id, outbox_message.c.state == REJECTED)
        .values(state=PENDING, next_attempt_at=_now(), lease_until=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- delivery -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What one attempt came to: ``status`` is None for a network error."""

    status: int | None
    receipt: Any = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.status == 401 and isinstance(self.receipt, dict):
            # Refused as stale: this sender's clock is off; a later attempt is signed anew.
            return self.receipt.get("type") == STALE_PROBLEM
        return self.status is None or self.status >= 500 or self.status in RETRYABLE_STATUSES


class Transport(Protocol):
    """Sends one message; never raises for network or HTTP failures (returns ``Delivery``)."""

    async def send(self, message: OutboxMessage) -> Delivery: ...


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - _now()).total_seconds())
    except (TypeError, ValueError):
        return None


class ChannelTransport:
    """Delivers messages over HTTP as signed channel messages (``zwfw.formats.channel``)
    with a bearer token from ``token``. Give ``client`` the mutual-TLS certificate and the
    national CA bundle; its base URL is ``base_url``."""

    def __init__(
        self,
        *,
        base_url: str,
        signer: ChannelSigner,
        recipient: str,
        token: Callable[[], Awaitable[str]],
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The sender's clock: the timestamp each attempt is signed with.
        self.clock = clock
        self.signer = signer
        self.recipient = recipient
        self.token = token
        self.client = client or httpx.AsyncClient()
        self.timeout = timeout

    async def send(self, message: OutboxMessage) -> Delivery:
        try:
            bearer = await self.token()
        except TokenRequestError as exc:
            return Delivery(None, error=f"cannot obtain an access token: {exc}")
        headers = self.signer.headers(
            message.method,
            message.path,
            message.body,
            recipient=self.recipient,
            idempotency_key=message.idempotency_key,
            now=self.clock(),
        )
        headers["Authorization"] = f"Bearer {bearer}"
        headers["Content-Type"] = "application/json"
        try:
            response = await self.client.request(
                message.method,
                self.base_url + message.path,
                content=message.body,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            return Delivery(None, error=f"{type(exc).__name__}: {exc}")
        if response.status_code == 401 and hasattr(self.token, "invalidate"):
            self.token.invalidate()  # an expired or revoked token: fetch a new one next time
        try:
            receipt = response.json()
        except ValueError:
            receipt = {"text": response.text[:500]}
        error = None
        if not 200 <= response.status_code < 300:
            detail = receipt.get("detail") if isinstance(receipt, dict) else None
            error = f"HTTP {response.status_code}: {detail or response.reason_phrase}"
        return Delivery(
            response.status_code,
            receipt=receipt,
            error=error,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )


@dataclass
class DispatchStats:
    """What one ``dispatch_once`` pass did."""

    delivered: int = 0
    retried: int = 0
    rejected: int = 0


class Dispatcher:
    """Delivers pending outbox messages through ``transport`` (see the module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        transport: Transport,
        *,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        lease_seconds: float = 60.0,
        batch_size: int = 50,
        poll_interval: float = 1.0,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
        protector: FieldProtector | None = None,
        max_attempts: int | None = None,
    ) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts: at least one attempt")
        self.max_attempts = max_attempts
        self.sessions = sessions
        self.transport = transport
        self.protector = protector
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._rng = rng or random.SystemRandom()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._pending_gauge: Gauge | None = None
        self._attempts: Counter | None = None
        if registry is not None:
            self._pending_gauge = Gauge(
                "zwfw_outbox_messages",
                "Outbox messages by state.",
                ("state",),
                registry=registry,
            )
            self._attempts = Counter(
                "zwfw_outbox_delivery_attempts",
                "Delivery attempts by outcome (delivered, retry, rejected).",
                ("outcome",),
                registry=registry,
            )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt: exponential, capped, with
        jitter in the upper half."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, attempts - 1)))
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def _claim(self) -> list[OutboxMessage]:
        now = _now()
        claimed: list[OutboxMessage] = []
        with self.sessions.begin() as session:
            rows = session.execute(
                select(outbox_message)
                .where(
                    outbox_message.c.state == PENDING,
                    outbox_message.c.next_attempt_at <= now,
                    or_(
                        outbox_message.c.lease_until.is_(None),
                        outbox_message.c.lease_until < now,
                    ),
                )
                .order_by(outbox_message.c.next_attempt_at, outbox_message.c.created_at)
                .limit(self.batch_size)
            ).all()
            for row in rows:
                try:
                    message = OutboxMessage.from_row(row, self.protector)
                except OutboxBodyError as exc:
                    # Sending it can never succeed with this key: set it aside for operators
                    # (requeue once the right key is configured) instead of retrying forever.
                    log.error("outbox: %s; marked rejected", exc)
                    session.execute(
                        update(outbox_message)
                        .where(outbox_message.c.id == row._mapping["id"])
                        .values(state=REJECTED, last_error=str(exc)[:1000])
                    )
                    continue
                # The conditional update is the claim: only one dispatcher wins each row.
                result = session.execute(
                    update(outbox_message)
                    .where(
                        outbox_message.c.id == message.id,
                        outbox_message.c.state == PENDING,
                        or_(
                            outbox_message.c.lease_until.is_(None),
                            outbox_message.c.lease_until < now,
                        ),
                    )
                    .values(lease_until=now + self.lease)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(message)
        return claimed

    def _settle(self, message: OutboxMessage, delivery: Delivery) -> str:
        now = _now()
        attempts = message.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "lease_until": None,
            "response_status": delivery.status,
        }
        if delivery.delivered:
            outcome = "delivered"
            values.update(
                state=DELIVERED, delivered_at=now, receipt=delivery.receipt, last_error=None
            )
        elif delivery.retryable and (self.max_attempts is None or attempts < self.max_attempts):
            outcome = "retry"
            delay = self.backoff(attempts)
            if delivery.retry_after is not None:
                delay = max(delay, min(delivery.retry_after, self.max_delay))
            values.update(
                next_attempt_at=now + timedelta(seconds=delay),
                last_error=mask_personal_data(delivery.error or "")[:1000],
            )
        else:
            outcome = "rejected"
            error = mask_personal_data(delivery.error or "")
            if delivery.retryable:
                error = f"gave up after {attempts} attempts: {error}"
            values.update(
                state=REJECTED,
                last_error=error[:1000],
                receipt=delivery.receipt,
            )
        with self.sessions.begin() as session:
            session.execute(
                update(outbox_message).where(outbox_message.c.id == message.id).values(**values)
            )
        level = logging.WARNING if outcome == "rejected" else logging.INFO
        if outcome == "retry":
            level = logging.WARNING if attempts >= 5 else logging.INFO
        log.log(
            level,
            "outbox message %s",
            outcome,
            extra={
                "message_id": message.id,
                "kind": message.kind,
                "attempts": attempts,
                "status": delivery.status,
                "error": mask_personal_data(delivery.error or "") or None,
            },
        )
        if self._attempts is not None:
            self._attempts.labels(outcome).inc()
        return outcome

    async def dispatch_once(self) -> DispatchStats:
        """Send every message that is due now, once; returns what happened."""
        stats = DispatchStats()
        messages = await asyncio.to_thread(self._claim)
        for message in messages:
            try:
                delivery = await self.transport.send(message)
            except Exception as exc:  # a transport bug must not lose or wedge the message
                log.exception("outbox transport failed", extra={"message_id": message.id})
                delivery = Delivery(None, error=f"{type(exc).__name__}: {exc}")
            outcome = await asyncio.to_thread(self._settle, message, delivery)
            if outcome == "delivered":
                stats.delivered += 1
            elif outcome == "retry":
                stats.retried += 1
            else:
                stats.rejected += 1
        await asyncio.to_thread(self._refresh_gauges)
        return stats

    def _refresh_gauges(self) -> None:
        if self._pending_gauge is None:
            return
        with self.sessions() as session:
            for state, n in counts(session).items():
                self._pending_gauge.labels(state).set(n)

    def wake(self) -> None:
        """Ask the running loop to look for due messages now (e.g. right after enqueueing)."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch until ``stop`` is called."""
        while not self._stop.is_set():
            try:
                stats = await self.dispatch_once()
            except Exception:
                # The database may be briefly unreachable; messages stay where they are.
                log.exception("outbox dispatch pass failed")
                stats = DispatchStats()
            if stats.delivered or stats.retried or stats.rejected:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    def start(self) -> None:
        """Run the dispatcher as a background task of the running event loop."""
        if self._task is None or self._task.done():
            self._stop = asyncio.Event()
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Stop after the message being sent (if any) is settled."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
