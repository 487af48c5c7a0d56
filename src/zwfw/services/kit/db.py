"""SQLAlchemy 2 engines and sessions: SQLite embedded by default, PostgreSQL (psycopg 3) in
production."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, Dialect, Engine, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

# Constraint names must be deterministic so Alembic migrations can drop and alter them on both
# SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 5000
# Seconds a new PostgreSQL connection may take (libpq's connect_timeout; 2 s at the least).
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# Marks, in a pooled connection's ``info``, that its transaction holds the engine's writer lock.
_HOLDS_WRITER_LOCK = "kit_holds_writer_lock"
_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time stored in UTC and read back aware.

    SQLite keeps no zone: an aware ``+08:00`` value written as it is would come back as the
    same wall-clock time in UTC, eight hours off, and compare wrongly with UTC values. So every
    value is converted to UTC on the way in (a naive value is taken to be UTC already)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naming_metadata() -> MetaData:
    """A fresh ``MetaData`` with the kit's constraint naming convention (one per service)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def normalise_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` and ``postgres://`` use the psycopg 3 driver."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL, *, wait_seconds: float | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the kit's per-backend setup.

    SQLite: WAL journal, foreign keys on, a busy timeout, and transactions that start with
    ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing half-way (this is what
    keeps the audit chain linear); within one process they queue on a lock first.
    ``sqlite://`` is one in-memory database shared by the engine's connections. The directory
    of a SQLite file is created if missing.
    PostgreSQL: psycopg 3 with pre-ping, so a pooled connection the server dropped (a
    restart) is replaced before use, and a bounded connect time, so that while the server is
    unreachable requests fail (503) instead of hanging. ``wait_seconds`` bounds each statement
    (the server's statement_timeout, lock waits included) and the wait for a pooled
    connection, so that a slow database fails requests fast (503) too.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        if parsed.get_backend_name() == "postgresql":
            connect_args = dict(kwargs.pop("connect_args", {}))
            connect_args.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_SECONDS)
            if wait_seconds is not None:
                milliseconds = max(1, round(wait_seconds * 1000))
                connect_args.setdefault("options", f"-c statement_timeout={milliseconds}")
                kwargs.setdefault("pool_timeout", wait_seconds)
            kwargs["connect_args"] = connect_args
        return create_engine(parsed, **kwargs)

    memory = is_memory_sqlite(parsed)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    if memory:
        # Every connection to ":memory:" would be a new empty database; share one.
        kwargs.setdefault("poolclass", StaticPool)
    else:
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    if memory:

        @event.listens_for(engine, "begin")
        def _on_begin_memory(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    # Transactions of this process queue on a lock before BEGIN IMMEDIATE: SQLite's own busy
    # handler polls with sleeps of up to 100 ms, so a waiting writer wakes long after the lock
    # is free and the core idles meanwhile. Other processes still queue in the busy handler;
    # past the busy timeout a transaction goes on to BEGIN IMMEDIATE as before.
    writer = _WRITER_LOCKS[engine] = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.info[_HOLDS_WRITER_LOCK] = writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(connection.info)
            raise

    def _release(info: dict[Any, Any]) -> None:
        if info.pop(_HOLDS_WRITER_LOCK, False):
            writer.release()

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(connection: Any) -> None:
        _release(connection.info)

    # A connection returned to the pool without either (invalidated, say) lets go as well.
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        _release(record.info)

    return engine


def writer_lock(engine: Engine) -> threading.Lock | None:
    """The lock this process's transactions on a SQLite file engine queue on (None for other
    engines); held from BEGIN to COMMIT or ROLLBACK."""
    return _WRITER_LOCKS.get(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


_SESSIONS_OPEN = "kit_sessions_open"
_AFTER_SESSIONS = "kit_after_sessions"

log = logging.getLogger("zwfw.db")


def after_request_sessions(request: Request, action: Callable[[], None]) -> bool:
    """Run ``action`` once the ``DbSession`` this request holds has ended (committed or rolled
    back) and return True; return False, doing nothing, when the request holds none (the
    caller then acts at once). Work that needs the database on its own (an audit record of a
    refusal) waits for this: the request's transaction may hold the write lock (SQLite) or a
    row it needs (PostgreSQL)."""
    if getattr(request.state, _SESSIONS_OPEN, 0) == 0:
        return False
    actions: list[Callable[[], None]] | None = getattr(request.state, _AFTER_SESSIONS, None)
    if actions is None:
        actions = []
        setattr(request.state, _AFTER_SESSIONS, actions)
    actions.append(action)
    return True


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, committed when the endpoint returns
    normally and rolled back when it raises (``Problem`` included)."""
    factory: sessionmaker[Session] = request.app.state.kit.sessions
    state = request.state
    setattr(state, _SESSIONS_OPEN, getattr(state, _SESSIONS_OPEN, 0) + 1)
    try:
        with factory.begin() as session:
            yield session
    finally:
        setattr(state, _SESSIONS_OPEN, getattr(state, _SESSIONS_OPEN) - 1)
        if getattr(state, _SESSIONS_OPEN) == 0:
            actions = getattr(state, _AFTER_SESSIONS, None) or []
            setattr(state, _AFTER_SESSIONS, None)
            for action in actions:
                try:
                    action()
                except Exception:
                    # The response is already decided; one failing action must not stop the
                    # others.
                    log.exception("an action deferred to the end of the request's session failed")


# scope="function": commit before the response is sent, so a failed commit becomes a 500
# problem instead of a success the database never saw.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
