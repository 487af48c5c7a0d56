"""Audit events of the IdP, and the request context they and Authlib's callbacks share: the
request's database session and the caller's address."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy.orm import Session

from zwfw.services.kit import audit

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
    actor: str | None = None,
    client_id: str | None = None,
    **detail: Any,
) -> None:
    """Append one authentication or administration event to the kit's audit log."""
    if client_id is not None:
        detail["client_id"] = client_id
    audit.record(
        db,
        actor=actor,
        action=event,
        resource=f"client/{client_id}" if client_id else "identity",
        result=outcome,
        detail=detail,
        source_ip=_address.get(),
    )
