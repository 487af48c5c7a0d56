"""Audit events of the IdP, and the request context they and Authlib's callbacks share: the
request's database session and the caller's address."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from zwfw.services.kit import audit


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the audit log records it: an administrator's or client's subject
    (or an operator's name), and the address a request came from."""

    subject: str
    address: str | None = None


_db: ContextVar[Session] = ContextVar("identity_db")
_address: ContextVar[str | None] = ContextVar("identity_address", default=None)


@contextmanager
def bound(db: Session, address: str | None) -> Iterator[None]:
    """Make the request's database session and caller address visible to Authlib's callbacks
    and to ``record``."""
    token_db = _db.set(db)
    token_addr = _address.set(address)
    try:
        yield
    finally:
        _db.reset(token_db)
        _address.reset(token_addr)


def current_db() -> Session:
    return _db.get()


def bound_db() -> Session | None:
    """The bound session, or None outside ``bound``."""
    return _db.get(None)


def record(
    db: Session,
    event: str,
    outcome: str,
    *,
    actor: Actor | str | None = None,
    client_id: str | None = None,
    **detail: Any,
) -> None:
    """Append one authentication or administration event to the kit's audit log; it is kept if
    and only if ``db``'s transaction commits."""
    if client_id is not None:
        detail["client_id"] = client_id
    address = _address.get()
    if isinstance(actor, Actor):
        address = actor.address or address
        actor = actor.subject
    audit.record(
        db,
        actor=actor,
        action=event,
        resource=f"client/{client_id}" if client_id else "identity",
        result=outcome,
        detail=detail,
        source_ip=address,
    )
