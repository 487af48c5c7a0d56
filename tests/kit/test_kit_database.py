"""The kit against real databases: SQLite and PostgreSQL (each test runs with both)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from kit_example_service import build
from kit_tokens import TokenMint
from sqlalchemy import (
    URL,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from zwfw.cli import app as cli
from zwfw.services.kit import (
    DbSession,
    UTCDateTime,
    audit,
    make_engine,
    migrate,
    migration_status,
    public,
)
from zwfw.services.kit.audit import audit_chain_head, audit_log
from zwfw.services.kit.db import after_request_sessions, writer_lock

RESIDENT_ID = "110101199003074578"


@pytest.fixture
def db_app(make_settings: Callable, database_url: str) -> Iterator[FastAPI]:
    app = build(make_settings(database_url=database_url))
    yield app
    app.state.kit.engine.dispose()


@pytest.fixture
def engine(db_app: FastAPI) -> Engine:
    migrate(db_app)
    return db_app.state.kit.engine


def _append(engine: Engine, n: int, **fields: object) -> list[audit.AuditRecord]:
    records = []
    with Session(engine) as session, session.begin():
        for i in range(n):
            record = audit.record(
                session,
                actor=str(fields.get("actor", f"officer-{i}")),
                action="case.accept",
                resource=f"case/{i}",
                result="success",
                detail={"step": i, "note": fields.get("note", "ok")},
            )
            assert record is not None
            records.append(record)
    return records


def test_readyz_is_503_before_migrations_and_200_after(db_app: FastAPI) -> None:
    with TestClient(db_app) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["expected_revisions"] == ["ex_0001", "kit_0002"]
        assert "no migrations applied" in response.json()["detail"]
        assert migrate(db_app) == {"ex_0001", "kit_0002"}
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "revisions": ["ex_0001", "kit_0002"]}


def test_readyz_names_a_partial_schema(db_app: FastAPI) -> None:
    migrate(db_app.state.kit.engine)  # the kit's branch only, as an old deployment would have
    status = migration_status(db_app.state.kit.engine, db_app.state.kit.migrations)
    assert status.current == {"kit_0002"}
    with TestClient(db_app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "behind" in response.json()["detail"]
    assert "ex_0001" in response.json()["detail"]


def test_audit_chain_links_every_record(engine: Engine) -> None:
    records = _append(engine, 5)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == audit.GENESIS_HASH
    for before, after in zip(records, records[1:], strict=False):
        assert after.prev_hash == before.hash
    result = audit.verify(engine)
    assert result.ok
    assert result.records == 5
    assert result.head == records[-1].hash
    assert result.describe() == f"ok: 5 records, head {records[-1].hash}"


def test_audit_record_masks_personal_data(engine: Engine) -> None:
    _append(engine, 1, actor=RESIDENT_ID, note=f"holder {RESIDENT_ID} tel 13812345678")
    with Session(engine) as session:
        row = session.execute(select(audit_log)).one()
    stored = f"{row.actor} {row.detail}"
    assert RESIDENT_ID not in stored
    assert "13812345678" not in stored
    assert audit.verify(engine).ok


def test_audit_log_is_append_only_in_the_database(engine: Engine) -> None:
    _append(engine, 2)
    for statement in (
        "UPDATE audit_log SET result = 'failure' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "UPDATE audit_chain_head SET seq = 0, hash = 'x'",
    ):
        with (
            pytest.raises(DBAPIError, match="append-only|only moves forward"),
            engine.begin() as connection,
        ):
            connection.execute(text(statement))
    assert audit.verify(engine).records == 2


def _drop_triggers(engine: Engine) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            for name in ("audit_log_no_update", "audit_log_no_delete", "audit_chain_head_forward"):
                connection.execute(text(f"DROP TRIGGER {name}"))
        else:
            connection.execute(text("DROP TRIGGER audit_log_no_change ON audit_log"))
            connection.execute(text("DROP TRIGGER audit_chain_head_forward ON audit_chain_head"))


def test_verify_reports_exactly_the_edited_record(engine: Engine, database_url: str) -> None:
    _append(engine, 5)
    _drop_triggers(engine)  # as an attacker with database access would
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET result = 'failure' WHERE seq = 3"))
    result = audit.verify(engine)
    assert not result.ok
    assert result.broken_seq == 3
    assert result.records == 2
    assert "content does not match its hash" in (result.problem or "")
    outcome = CliRunner().invoke(cli, ["audit", "verify", "--database", database_url])
    assert outcome.exit_code == 1
    assert outcome.output.startswith("broken at record 3: content does not match its hash")


def test_verify_catches_a_rehashed_record_by_its_successor(engine: Engine) -> None:
    # A smarter attacker recomputes the edited record's hash; the next link then breaks.
    records = _append(engine, 3)
    _drop_triggers(engine)
    fields = {name: getattr(records[1], name) for name in audit.HASHED_FIELDS}
    fields["result"] = "failure"
    forged = audit.chain_hash(records[1].prev_hash, fields)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_log SET result = 'failure', hash = :h WHERE seq = 2"), {"h": forged}
        )
    result = audit.verify(engine)
    assert (result.ok, result.broken_seq) == (False, 3)
    assert "prev_hash" in (result.problem or "")


def test_verify_catches_removed_records(engine: Engine) -> None:
    _append(engine, 4)
    _drop_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 4"))
    result = audit.verify(engine)
    assert (result.ok, result.broken_seq) == (False, 4)
    assert "were removed" in (result.problem or "")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    result = audit.verify(engine)
    assert (result.ok, result.broken_seq) == (False, 2)
    assert "record 2 is missing" in (result.problem or "")


def test_concurrent_appends_do_not_fork_the_chain(db_app: FastAPI, engine: Engine) -> None:
    writers, each = 4, 10
    errors: list[BaseException] = []
    engines = [
        make_engine(str(engine.url.render_as_string(hide_password=False))) for _ in range(writers)
    ]

    def work(own: Engine) -> None:
        try:
            for _ in range(each):
                _append(own, 1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for own in engines:
        own.dispose()
    assert errors == []
    result = audit.verify(engine)
    assert result.ok
    assert result.records == writers * each
    with Session(engine) as session:
        head = session.execute(select(audit_chain_head)).one()
    assert head.seq == writers * each
    assert head.hash == result.head


def test_business_change_and_its_audit_record_commit_together(
    db_app: FastAPI, engine: Engine, mint: TokenMint
) -> None:
    headers = {"Authorization": f"Bearer {mint.token(sub='officer-7', scopes=['notes:write'])}"}
    with TestClient(db_app) as client:
        assert (
            client.post("/notes", json={"code": "c1", "text": "t"}, headers=headers).status_code
            == 201
        )
        # The conflict rolls back the request's transaction; its audit record still lands.
        assert (
            client.post("/notes", json={"code": "c1", "text": "t"}, headers=headers).status_code
            == 409
        )
    with Session(engine) as session:
        rows = session.execute(select(audit_log).order_by(audit_log.c.seq)).all()
    assert [(r.actor, r.result, r.resource) for r in rows] == [
        ("officer-7", "success", "note/c1"),
        ("officer-7", "conflict", "note/c1"),
    ]
    assert rows[0].request_id
    assert rows[0].request_id != rows[1].request_id
    assert audit.verify(engine).ok


def test_records_of_a_request_wait_for_its_session_and_outlive_a_failing_neighbour(
    db_app: FastAPI, engine: Engine
) -> None:
    seen: list[str] = []

    @public
    def refuse(request: Request, db: DbSession) -> dict[str, object]:
        def broken() -> None:
            raise RuntimeError("a deferred action failed")

        assert after_request_sessions(request, broken)
        for n in (1, 2):
            deferred = audit.record(request, action="probe", resource=f"r/{n}", result="denied")
            seen.append(f"deferred {n}: {deferred is None}")
        db.execute(text("SELECT 1"))
        return {"ok": True}

    @public
    def refuse_without_session(request: Request) -> dict[str, object]:
        assert not after_request_sessions(request, lambda: None)
        written = audit.record(request, action="probe", resource="r/3", result="denied")
        return {"seq": written.seq if written is not None else None}

    db_app.add_api_route("/probe", refuse, methods=["POST"])
    db_app.add_api_route("/probe-plain", refuse_without_session, methods=["POST"])
    with TestClient(db_app) as client:
        assert client.post("/probe").json() == {"ok": True}
        assert client.post("/probe-plain").json() == {"seq": 3}
    assert seen == ["deferred 1: True", "deferred 2: True"]
    with Session(engine) as session:
        rows = session.execute(select(audit_log).order_by(audit_log.c.seq)).all()
    assert [(r.seq, r.resource) for r in rows] == [(1, "r/1"), (2, "r/2"), (3, "r/3")]
    assert audit.verify(engine).ok


def test_cli_migrate_and_verify_with_a_config_file(
    database_url: str, tmp_path, mint: TokenMint
) -> None:
    config = tmp_path / "example.yaml"
    config.write_text(f"database_url: '{database_url}'\nservice: example\ngreeting: hi\n")
    runner = CliRunner()
    outcome = runner.invoke(
        cli, ["migrate", "kit_example_service:SERVICE", "--config", str(config)]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "migrated example" in outcome.output
    assert "ex_0001, kit_0002" in outcome.output
    outcome = runner.invoke(cli, ["audit", "verify", "--database", database_url])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.strip() == f"ok: 0 records, head {audit.GENESIS_HASH}"


def test_sqlite_transactions_of_one_process_queue_on_the_engine_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'writers.sqlite3'}")
    lock = writer_lock(engine)
    assert lock is not None
    assert writer_lock(make_engine("sqlite://")) is None
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE entry (n INTEGER)"))
            assert lock.locked()
        assert not lock.locked()
        # Every way a transaction ends lets go: rollback, close without either, a failure.
        connection = engine.connect()
        connection.execute(text("SELECT 1"))
        assert lock.locked()
        connection.rollback()
        assert not lock.locked()
        connection.execute(text("SELECT 1"))
        connection.close()
        assert not lock.locked()
        with pytest.raises(DBAPIError), engine.begin() as connection:
            connection.execute(text("SELECT * FROM missing"))
        assert not lock.locked()
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
            assert lock.locked()
        assert not lock.locked()

        # A second writer waits for the first to commit, then goes ahead.
        order: list[str] = []
        waiting = threading.Event()

        def second() -> None:
            waiting.set()
            with engine.begin() as other:
                order.append("second")
                other.execute(text("INSERT INTO entry VALUES (2)"))

        with engine.begin() as first:
            first.execute(text("INSERT INTO entry VALUES (1)"))
            thread = threading.Thread(target=second)
            thread.start()
            waiting.wait()
            order.append("first")
        thread.join()
        assert order == ["first", "second"]
        assert not lock.locked()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT n FROM entry ORDER BY n")).scalars().all() == [
                1,
                2,
            ]
    finally:
        engine.dispose()


def _slow_database_app(make_settings: Callable, url: str, **overrides: object) -> FastAPI:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = build(make_settings(database_url=url, **overrides))
    migrate(app)
    return app


def test_a_locked_table_is_a_503_within_the_wait_bound_and_the_service_carries_on(
    make_settings: Callable, postgres_database: URL
) -> None:
    url = postgres_database.render_as_string(hide_password=False)
    app = _slow_database_app(make_settings, url, database_wait_seconds=0.5)
    locker = create_engine(url)
    try:
        with TestClient(app) as client, locker.connect() as holder:
            # As a long migration would: the table locked in a transaction of its own.
            holder.execute(text("LOCK TABLE example_note IN ACCESS EXCLUSIVE MODE"))
            # Without the bound the statement would wait for the lock as long as it is held.
            response = client.get("/notes/n1")
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "1"
            assert "statement" not in response.text
            assert "SELECT" not in response.text
            holder.rollback()
            # The lock gone, the same service answers from the same pool.
            assert client.get("/notes/n1").status_code == 404
    finally:
        locker.dispose()
        app.state.kit.engine.dispose()


def test_no_free_pooled_connection_in_time_is_a_503_not_a_500(
    make_settings: Callable, postgres_database: URL
) -> None:
    url = postgres_database.render_as_string(hide_password=False)
    app = _slow_database_app(make_settings, url, database_wait_seconds=0.5)
    engine = app.state.kit.engine
    assert engine.pool.timeout() == 0.5
    # Every pooled connection (and the overflow) taken by others.
    held = [engine.connect() for _ in range(engine.pool.size() + engine.pool._max_overflow)]
    try:
        with TestClient(app) as client:
            response = client.get("/notes/n1")
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
    finally:
        for connection in held:
            connection.close()
        engine.dispose()


def test_without_a_wait_bound_no_statement_timeout_is_set(postgres_database: URL) -> None:
    url = postgres_database.render_as_string(hide_password=False)
    for wait, expected in ((None, "0"), (2.5, "2500ms")):
        engine = make_engine(url, wait_seconds=wait)
        try:
            with engine.connect() as connection:
                found = connection.execute(text("SHOW statement_timeout")).scalar_one()
        finally:
            engine.dispose()
        assert found == expected


def test_a_time_written_in_beijing_time_reads_back_as_the_same_instant(database_url: str) -> None:
    """A ``+08:00`` time is kept as its instant on both backends (SQLite keeps no zone) and
    compares correctly with times written in UTC."""
    metadata = MetaData()
    moments = Table(
        "kit_moment",
        metadata,
        Column("name", String(10), primary_key=True),
        Column("at", UTCDateTime()),
    )
    engine = make_engine(database_url)
    try:
        metadata.create_all(engine)
        beijing = timezone(timedelta(hours=8))
        written = datetime(2026, 12, 5, 9, 40, tzinfo=beijing)  # 01:40 UTC
        with engine.begin() as connection:
            connection.execute(
                insert(moments),
                [
                    {"name": "beijing", "at": written},
                    {"name": "utc", "at": datetime(2026, 12, 5, 5, 0, tzinfo=UTC)},
                    {"name": "naive", "at": datetime(2026, 12, 5, 1, 0)},
                ],
            )
        with engine.connect() as connection:
            read = dict(connection.execute(select(moments.c.name, moments.c.at)).all())
            earlier = (
                connection.execute(
                    select(moments.c.name).where(moments.c.at < written).order_by(moments.c.name)
                )
                .scalars()
                .all()
            )
        assert (read["beijing"], read["beijing"].tzinfo) == (written, UTC), read
        assert read["naive"] == datetime(2026, 12, 5, 1, 0, tzinfo=UTC), read
        assert earlier == ["naive"], earlier
    finally:
        metadata.drop_all(engine)
        engine.dispose()
