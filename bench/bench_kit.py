"""The service kit's overhead.

1. ``/healthz`` requests per second through the full kit stack (request id, security headers,
   metrics, access log, problem handlers, auth dependency) against a bare FastAPI app with the
   same route. Both are driven in-process over httpx's ASGI transport on one event loop, so
   the figure is the kit's own cost, without sockets or uvicorn.
2. Audit records appended per second (SM3 chain, locked chain head, one transaction each)
   against plain inserts of the same rows into a table without a chain, both on a SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI
from figure import Figure, rate
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table
from sqlalchemy.orm import Session

from zwfw.services.kit import ServiceSettings, audit, create_app, make_engine, migrate


def _driver(app: FastAPI) -> tuple[Callable[[], object], Callable[[], None]]:
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")

    def call() -> object:
        response = loop.run_until_complete(client.get("/healthz"))
        assert response.status_code == 200
        return response

    def close() -> None:
        loop.run_until_complete(client.aclose())
        loop.close()

    return call, close


def _bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "bench", "version": "0"}

    return app


def _healthz_figure() -> Figure:
    # The access log line is part of the kit's cost; write it nowhere but still format it.
    logging.getLogger("zwfw.access").setLevel(logging.DEBUG)
    kit_app = create_app(
        ServiceSettings(service="bench", database_url="sqlite://"), title="bench", version="0"
    )
    kit_call, kit_close = _driver(kit_app)
    bare_call, bare_close = _driver(_bare_app())
    try:
        bare = rate(bare_call, seconds=2.0)
        kit = rate(kit_call, seconds=2.0)
    finally:
        kit_close()
        bare_close()
        kit_app.state.kit.engine.dispose()
    return Figure(
        name="kit /healthz requests/s (in-process ASGI)",
        value=kit,
        unit="requests/s",
        baseline_name="bare FastAPI /healthz",
        baseline_value=bare,
    )


def _audit_figure() -> Figure:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        migrate(engine)
        plain = Table(
            "plain_log",
            MetaData(),
            Column("seq", Integer, primary_key=True),
            Column("actor", String(200)),
            Column("action", String(100)),
            Column("resource", String(500)),
            Column("result", String(50)),
            Column("detail", JSON),
        )
        plain.metadata.create_all(engine)
        detail = {"case": "34000020250101000001", "step": "accept"}

        def chained() -> object:
            with Session(engine) as session, session.begin():
                return audit.record(
                    session,
                    actor="officer-1",
                    action="case.accept",
                    resource="case/1",
                    result="success",
                    detail=detail,
                )

        def unchained() -> object:
            with Session(engine) as session, session.begin():
                return session.execute(
                    plain.insert().values(
                        actor="officer-1",
                        action="case.accept",
                        resource="case/1",
                        result="success",
                        detail=detail,
                    )
                )

        try:
            base = rate(unchained, seconds=2.0)
            value = rate(chained, seconds=2.0)
            assert audit.verify(engine).ok
        finally:
            engine.dispose()
    return Figure(
        name="audit appends/s (SM3 chain, SQLite file)",
        value=value,
        unit="records/s",
        baseline_name="plain inserts/s, same rows, no chain",
        baseline_value=base,
    )


def figures() -> list[Figure]:
    return [_healthz_figure(), _audit_figure()]
