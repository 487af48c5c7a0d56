"""Alembic environment for kit-based services: always run with a connection handed in by
``zwfw.services.kit.migrations`` (so in-memory SQLite and test engines work too)."""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through zwfw.services.kit.migrate or `zwfw migrate`")

context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
