"""The hub's migration creates exactly the tables its models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from zwfw.services.hub.models import Base
from zwfw.services.kit import make_engine, migrate


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "zwfw.services.hub:migrations")
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = [
                d
                for d in compare_metadata(context, Base.metadata)
                if not (isinstance(d, tuple) and d[0] == "remove_table")
                and not (isinstance(d, tuple) and d[0] == "remove_index")
            ]
    finally:
        engine.dispose()
    assert diff == []
