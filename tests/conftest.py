"""Shared fixtures, and the markers of the slow tiers.

Every test under ``tests/deploy``, ``tests/e2e``, ``tests/faults``, ``tests/sandbox`` and
``tests/selftest`` carries the marker named after its directory (``pytest -m "not deploy"``
leaves the deployments out; ``make test-fast`` leaves out all five). The marker comes from the
directory, so a new test there cannot be left out of its tier.

``database_url`` runs a test once against SQLite and once against PostgreSQL. PostgreSQL comes
from ``ZWFW_TEST_POSTGRES_URL`` (default: the server on 127.0.0.1:5432); each test session makes
its own throwaway database there and drops it at the end. Without a reachable server the
PostgreSQL variants are skipped, except in CI (``CI=true``), where that is a failure.

``service_databases`` gives each service process of a reference platform its own PostgreSQL
database on the same server (``ReferencePlatform(database_url_for=...)``); there an unreachable
server is always a failure, since the tiers that use it are judged on PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

TESTS = Path(__file__).resolve().parent
# Directories of tests/ whose tests carry the marker of the same name (registered in
# pyproject.toml). Each starts real processes: Ansible deployments, the reference platform, or
# the certification of known-bad variants; faults disturbs a reference platform under load.
SLOW_TIERS = frozenset({"deploy", "e2e", "faults", "sandbox", "selftest"})

POSTGRES_URL_ENV = "ZWFW_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _server_url() -> URL:
    url = make_url(os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[URL]:
    """URL of a PostgreSQL database created for this test session (dropped afterwards)."""
    server = _server_url()
    admin = create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"zwfw_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        reason = (
            f"PostgreSQL at {server.render_as_string(hide_password=True)} is unreachable "
            f"({str(exc.orig).splitlines()[0] if exc.orig else exc}); set {POSTGRES_URL_ENV}"
        )
        if _in_ci():
            pytest.fail(f"{reason} — CI requires PostgreSQL", pytrace=False)
        pytest.skip(reason)
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def service_databases() -> Iterator[Callable[[str], str]]:
    """``database_url_for`` of a reference platform: a new PostgreSQL database per service
    process name (e.g. "340000-hall"), all dropped afterwards. Fails, never skips, when the
    server is unreachable: worker processes sharing SQLite files are no stand-in."""
    server = _server_url()
    admin = create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        admin.connect().close()
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {server.render_as_string(hide_password=True)} is unreachable "
            f"({str(exc.orig).splitlines()[0] if exc.orig else exc}); set {POSTGRES_URL_ENV}",
            pytrace=False,
        )
    prefix = f"zwfw_test_{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def database_url_for(service: str) -> str:
        name = f"{prefix}_{service.replace('-', '_')}"
        if name not in made:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            made.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    try:
        yield database_url_for
    finally:
        with admin.connect() as connection:
            for name in made:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_postgres(url: URL) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, SQLite file or PostgreSQL (the test runs once with each)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    url: URL = request.getfixturevalue("postgres_database")
    _reset_postgres(url)
    return url.render_as_string(hide_password=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            directory = item.path.resolve().relative_to(TESTS).parts[0]
        except (ValueError, IndexError):
            continue  # not under tests/ (e.g. a suite run through the harness plugin)
        if directory in SLOW_TIERS:
            item.add_marker(directory)
