"""Alembic migrations run programmatically: the kit's branch (``kit``: the audit log) plus the
service's own version directory, all upgraded to heads in one database."""

from __future__ import annotations

import importlib.resources
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, text
from sqlalchemy.exc import SQLAlchemyError

from zwfw.services.kit.db import make_engine
from zwfw.services.kit.settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("zwfw.migrations")

KIT_MIGRATIONS = Path(__file__).resolve().parent
KIT_VERSIONS = KIT_MIGRATIONS / "versions"

# Any constant works as long as every kit service uses the same one: it serialises concurrent
# `zwfw migrate` runs against one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x7A776677  # "zwfw"

Location = str | Path


def resolve_location(location: Location) -> Path:
    """A migrations directory given as a path or as ``"package:subdirectory"``."""
    if isinstance(location, Path):
        path = location
    elif ":" in location and not os.path.exists(location):
        package, _, sub = location.partition(":")
        path = Path(str(importlib.resources.files(package).joinpath(sub)))
    else:
        path = Path(location)
    if not path.is_dir():
        raise FileNotFoundError(f"migrations directory {path} does not exist")
    return path.resolve()


def alembic_config(
    migrations: Location | None = None,
    *,
    connection: Connection | None = None,
    target_metadata: MetaData | None = None,
) -> Config:
    """An Alembic ``Config`` covering the kit's branch and the service's ``migrations``.

    Services can use it with ``alembic.command.revision`` to write new revisions
    (``version_path`` = their directory, ``head="<service>@head"``).
    """
    locations = [KIT_VERSIONS]
    if migrations is not None:
        locations.append(resolve_location(migrations))
    config = Config()
    config.set_main_option("script_location", str(KIT_MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    if connection is not None:
        config.attributes["connection"] = connection
    if target_metadata is not None:
        config.attributes["target_metadata"] = target_metadata
    return config


def code_heads(migrations: Location | None = None) -> frozenset[str]:
    """The head revisions the code expects (kit branch + service branch)."""
    return frozenset(ScriptDirectory.from_config(alembic_config(migrations)).get_heads())


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands against the code's migrations."""

    reachable: bool
    current: frozenset[str]
    heads: frozenset[str]
    error: str | None = None

    @property
    def up_to_date(self) -> bool:
        return self.reachable and self.current == self.heads

    def describe(self) -> str:
        if not self.reachable:
            return f"database unreachable: {self.error}"
        if self.up_to_date:
            return "database schema is current"
        missing = sorted(self.heads - self.current)
        unknown = sorted(self.current - self.heads)
        parts = []
        if not self.current:
            parts.append("database has no migrations applied")
        elif missing:
            parts.append(f"database is behind: expected heads {missing}")
        if unknown:
            parts.append(f"database has revisions this code does not know: {unknown}")
        return "; ".join(parts) + " (run `zwfw migrate`)"


def migration_status(engine: Engine, migrations: Location | None = None) -> MigrationStatus:
    """Compare the revisions stamped in ``engine``'s database with the code's heads."""
    heads = code_heads(migrations)
    return _status(engine, heads)


def _status(engine: Engine, heads: frozenset[str]) -> MigrationStatus:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = frozenset(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        # The driver's message can include host names and users; keep only its first line.
        orig = getattr(exc, "orig", None)  # set on DBAPIError, not on every SQLAlchemyError
        reason = str(orig if orig else exc).splitlines()[0]
        return MigrationStatus(False, frozenset(), heads, f"{type(exc).__name__}: {reason}")
    return MigrationStatus(True, current, heads)


@contextmanager
def _engine_for(target: Any) -> Iterator[tuple[Engine, Location | None]]:
    from fastapi import FastAPI  # local: keep this module importable without the web stack

    if isinstance(target, FastAPI):
        state = target.state.kit
        yield state.engine, state.migrations
    elif isinstance(target, Engine):
        yield target, None
    elif isinstance(target, ServiceSettings):
        engine = make_engine(target.database_url)
        try:
            yield engine, None
        finally:
            engine.dispose()
    else:
        raise TypeError(f"cannot migrate {type(target).__name__}")


def migrate(
    target: FastAPI | ServiceSettings | Engine, migrations: Location | None = None
) -> frozenset[str]:
    """Upgrade the database of ``target`` (an app from ``create_app``, settings, or an engine)
    to all heads: the kit's branch plus ``migrations`` (defaults to the app's own). Returns the
    revisions now current."""
    with _engine_for(target) as (engine, app_migrations):
        location = migrations if migrations is not None else app_migrations
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                )
            command.upgrade(alembic_config(location, connection=connection), "heads")
            current = frozenset(MigrationContext.configure(connection).get_current_heads())
        log.info("migrations applied", extra={"revisions": sorted(current)})
        return current
