"""The defect proxy itself: a pass-through changes nothing the client can see, a defect
changes only what it means to, and the proxy keeps no state between clients."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from .proxy import DefectProxy, Forward, ProxyRequest, ProxyResponse


def _echo_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/echo/{rest:path}", methods=["GET", "POST"])
    async def echo(rest: str, request: Request) -> Response:
        seen = {
            "method": request.method,
            "path": request.scope["raw_path"].decode(),
            "query": request.url.query,
            "body": (await request.body()).decode(),
            "cookie": request.headers.get("cookie"),
            "x_test": request.headers.get("x-test"),
        }
        return Response(
            json.dumps(seen),
            status_code=207,
            media_type="application/json",
            headers={"set-cookie": "session=first; Path=/", "x-upstream": "yes"},
        )

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(_echo_app(), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the upstream did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_passthrough_proxy_forwards_everything_unchanged(upstream: str) -> None:
    with DefectProxy(upstream) as proxy:
        response = httpx.post(
            f"{proxy.url}/echo/a%2Fb/c?x=1&y=%E4%B8%AD",
            content=b'{"k":"v"}',
            headers={"x-test": "kept", "cookie": "mine=1"},
        )
        again = httpx.get(f"{proxy.url}/echo/next")
    assert response.status_code == 207
    assert response.headers["x-upstream"] == "yes"
    assert response.headers["set-cookie"] == "session=first; Path=/"
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/echo/a%2Fb/c"
    assert seen["query"] == "x=1&y=%E4%B8%AD"
    assert seen["body"] == '{"k":"v"}'
    assert (seen["cookie"], seen["x_test"]) == ("mine=1", "kept")
    # The cookie the service set for the first client is not sent on behalf of the next.
    assert again.json()["cookie"] is None


def test_a_defect_rewrites_what_it_targets_and_can_answer_itself(upstream: str) -> None:
    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.path == "/refused":
            return ProxyResponse(409, [("content-type", "application/problem+json")], b"{}")
        response = await forward(request.with_header("x-test", "added"))
        return response.with_json({**response.json(), "rewritten": True}, status=200)

    with DefectProxy(upstream, defect) as proxy:
        rewritten = httpx.get(f"{proxy.url}/echo/x")
        refused = httpx.get(f"{proxy.url}/refused")
    assert rewritten.status_code == 200
    assert rewritten.json()["x_test"] == "added"
    assert rewritten.json()["rewritten"] is True
    assert int(rewritten.headers["content-length"]) == len(rewritten.content)
    assert refused.status_code == 409


def test_an_unreachable_service_is_a_502_problem() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with DefectProxy(f"http://127.0.0.1:{closed}") as proxy:
        response = httpx.get(f"{proxy.url}/anything")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 502
