"""Tamper-evident audit log: who did what, when, with what result, under which request id.

Each record carries the SM3 hash of the previous one:
``hash = SM3(bytes(prev_hash) || canonical JSON of the record)``, so editing, removing or
reordering any record breaks the chain from that point on, which ``verify`` reports.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from cryptography.hazmat.primitives import hashes
from fastapi import Request
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

from zwfw.codes.masking import mask_personal_data, mask_value
from zwfw.services.kit.db import after_request_sessions, naming_metadata
from zwfw.services.kit.logs import current_request_id

GENESIS_HASH = "0" * 64

log = logging.getLogger("zwfw.audit")

metadata = naming_metadata()

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("resource", String(500), nullable=False),
    Column("result", String(50), nullable=False),
    Column("request_id", String(128)),
    Column("source_ip", String(64)),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

audit_chain_head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Fields covered by the hash, in the order they are documented (the JSON is key-sorted anyway).
HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "resource",
    "result",
    "request_id",
    "source_ip",
    "detail",
)


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    action: str
    resource: str
    result: str
    request_id: str | None
    source_ip: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def _utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def canonical_json(fields: dict[str, Any]) -> bytes:
    """The bytes hashed for one record: key-sorted, compact, UTF-8 JSON."""
    payload = dict(fields)
    payload["at"] = _utc(payload["at"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SM3(prev_hash bytes || canonical JSON of ``fields``), hex."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(bytes.fromhex(prev_hash))
    digest.update(canonical_json(fields))
    return digest.finalize().hex()


# Built once: constructing these statements on every append cost more than running them.
_LOCK_HEAD = (
    select(audit_chain_head.c.seq, audit_chain_head.c.hash)
    .where(audit_chain_head.c.id == 1)
    .with_for_update()
)
_INSERT_RECORD = audit_log.insert()
_MOVE_HEAD = (
    update(audit_chain_head)
    .where(audit_chain_head.c.id == 1, audit_chain_head.c.seq == bindparam("from_seq"))
    .values(seq=bindparam("to_seq"), hash=bindparam("to_hash"))
)


def _append(
    session: Session,
    *,
    actor: str,
    action: str,
    resource: str,
    result: str,
    detail: dict[str, Any] | None,
    request_id: str | None,
    source_ip: str | None,
) -> AuditRecord:
    # Lock the chain head for the rest of the transaction: concurrent appenders queue here, so
    # the chain never forks. (SQLite: the kit's BEGIN IMMEDIATE already serialises writers.)
    head = session.execute(_LOCK_HEAD).one_or_none()
    if head is None:
        raise RuntimeError("audit_chain_head is missing: run the kit migrations (`zwfw migrate`)")
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        # Microseconds are kept: both SQLite and PostgreSQL store them exactly.
        "at": datetime.now(UTC),
        "actor": mask_personal_data(actor)[:200],
        "action": action[:100],
        "resource": mask_personal_data(resource)[:500],
        "result": result[:50],
        "request_id": request_id,
        "source_ip": source_ip,
        "detail": mask_value(detail or {}),
    }
    # Round-trip once so the hash covers exactly what a JSON column will give back.
    fields["detail"] = json.loads(json.dumps(fields["detail"], ensure_ascii=False))
    digest = chain_hash(head.hash, fields)
    session.execute(_INSERT_RECORD, {**fields, "prev_hash": head.hash, "hash": digest})
    # An UPDATE answers with a cursor result, which carries the row count.
    moved = cast(
        "CursorResult[Any]",
        session.execute(
            _MOVE_HEAD, {"from_seq": head.seq, "to_seq": fields["seq"], "to_hash": digest}
        ),
    )
    if moved.rowcount != 1:
        raise RuntimeError("audit chain head moved during append")
    return AuditRecord(**fields, prev_hash=head.hash, hash=digest)


_PENDING = "kit_pending_audit"


def record(
    session_or_request: Session | Request,
    *,
    actor: str | None = None,
    action: str,
    resource: str,
    result: str,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
    source_ip: str | None = None,
) -> AuditRecord | None:
    """Append one record to the audit log.

    With a ``Session`` the record joins that transaction: it is kept if and only if the
    business change commits (use it for "what was done"); the new record is returned.

    With a ``Request`` the record is committed on its own, so it is kept even when the
    request's own transaction rolls back (use it for refusals and failures). Actor, request id
    and source IP then default to the request's principal, ``X-Request-ID`` and client address.
    If the request holds a ``DbSession`` the write waits until that session has finished
    (committed or rolled back), because the request's transaction may hold the database's
    write lock; it then returns ``None``. Otherwise it is written at once and returned.

    Personal data (ID numbers, phone numbers) in ``actor``, ``resource`` and ``detail`` is
    masked before it is stored.
    """
    if request_id is None:
        request_id = current_request_id()
    if isinstance(session_or_request, Session):
        return _append(
            session_or_request,
            actor=actor or "anonymous",
            action=action,
            resource=resource,
            result=result,
            detail=detail,
            request_id=request_id,
            source_ip=source_ip,
        )
    request = session_or_request
    if actor is None:
        principal = getattr(request.state, "principal", None)
        actor = principal.subject if principal is not None else "anonymous"
    if source_ip is None and request.client is not None:
        source_ip = request.client.host
    entry: dict[str, Any] = {
        "actor": actor,
        "action": action,
        "resource": resource,
        "result": result,
        "detail": detail,
        "request_id": request_id,
        "source_ip": source_ip,
    }
    pending: list[dict[str, Any]] | None = getattr(request.state, _PENDING, None)
    if pending is not None:
        pending.append(entry)
        return None
    if after_request_sessions(request, lambda: _write_pending(request)):
        setattr(request.state, _PENDING, [entry])
        return None
    with request.app.state.kit.sessions.begin() as session:
        return _append(session, **entry)


def _write_pending(request: Request) -> None:
    """Write the records ``record(request, ...)`` deferred while a request session was open."""
    pending = getattr(request.state, _PENDING, None) or []
    setattr(request.state, _PENDING, None)
    if not pending:
        return
    try:
        with request.app.state.kit.sessions.begin() as session:
            for entry in pending:
                _append(session, **entry)
    except Exception:
        log.exception("cannot write deferred audit records")


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking the chain."""

    ok: bool
    records: int
    head: str
    broken_seq: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"ok: {self.records} records, head {self.head}"
        return f"broken at record {self.broken_seq}: {self.problem}"


def _rows(session: Session) -> Iterable[Any]:
    return session.execute(
        select(audit_log).order_by(audit_log.c.seq).execution_options(yield_per=500)
    )


def verify(source: Session | Engine) -> VerifyResult:
    """Walk the audit chain from the first record and report the first broken link: a record
    whose content no longer matches its hash, a record that does not point at its predecessor,
    a gap in the sequence, or a chain head that disagrees with the last record."""
    if isinstance(source, Engine):
        with Session(source) as session:
            return verify(session)
    session = source
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for row in _rows(session):
        fields = {name: getattr(row, name) for name in HASHED_FIELDS}
        fields["at"] = _utc(fields["at"])
        if row.seq != expected_seq:
            return VerifyResult(
                False,
                count,
                expected_prev,
                expected_seq,
                f"record {expected_seq} is missing (next record found is {row.seq})",
            )
        if row.prev_hash != expected_prev:
            return VerifyResult(
                False,
                count,
                expected_prev,
                row.seq,
                f"prev_hash {row.prev_hash} does not match the hash of record "
                f"{row.seq - 1} ({expected_prev})",
            )
        computed = chain_hash(row.prev_hash, fields)
        if computed != row.hash:
            return VerifyResult(
                False,
                count,
                expected_prev,
                row.seq,
                f"content does not match its hash (stored {row.hash}, computed {computed})",
            )
        expected_prev = row.hash
        expected_seq += 1
        count += 1
    head = session.execute(
        select(audit_chain_head.c.seq, audit_chain_head.c.hash).where(audit_chain_head.c.id == 1)
    ).one_or_none()
    if head is None:
        return VerifyResult(False, count, expected_prev, None, "the chain head row is missing")
    if head.seq != count or head.hash != expected_prev:
        if head.seq > count:
            where, why = count + 1, f"records {count + 1}..{head.seq} were removed"
        else:
            where, why = head.seq, "the chain head was altered"
        return VerifyResult(
            False,
            count,
            expected_prev,
            where,
            f"chain head says record {head.seq} ({head.hash}) but the log ends at record "
            f"{count} ({expected_prev}): {why}",
        )
    return VerifyResult(True, count, expected_prev)
