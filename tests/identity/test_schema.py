"""The identity migrations create exactly the tables its models describe, on SQLite and
PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from zwfw.services.identity.models import Base
from zwfw.services.kit import make_engine, migrate


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "zwfw.services.identity:migrations")
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            # The kit's own tables (audit log, outbox, nonces) are not identity models.
            diff = [
                d
                for d in compare_metadata(context, Base.metadata)
                if not (isinstance(d, tuple) and d[0] in ("remove_table", "remove_index"))
            ]
    finally:
        engine.dispose()
    assert diff == []
