"""A reverse proxy in front of one real service that applies one defect.

The proxy is a bare ASGI app under uvicorn in a daemon thread, forwarding with httpx. A defect
is one coroutine ``defect(request, forward) -> response``: it may rewrite the request before
calling ``forward``, rewrite what comes back, answer on its own, or call ``forward`` more than
once (a defect that looks something up at the service). The pass-through defect makes a proxy
that changes nothing, which is how the clean control run is made.

The shipped services have no defect switches; every known-bad behaviour lives here, in tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn

# Hop-by-hop headers, and those httpx recomputes for the body it actually sends or decoded.
_NOT_FORWARDED = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
}


def _forwardable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in _NOT_FORWARDED]


@dataclass(frozen=True)
class ProxyRequest:
    """A request as the proxy received it; ``path`` is the raw (percent-encoded) path."""

    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def with_header(self, name: str, value: str | None) -> ProxyRequest:
        """This request with ``name`` set to ``value`` (removed when ``value`` is None)."""
        kept = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        return replace(self, headers=kept if value is None else [*kept, (name, value)])

    def json(self) -> Any:
        return json.loads(self.body)

    def with_json(self, value: Any) -> ProxyRequest:
        body = json.dumps(value, ensure_ascii=False).encode()
        return replace(self, body=body).with_header("content-type", "application/json")

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def with_params(self, params: dict[str, str]) -> ProxyRequest:
        return replace(self, query=urlencode(params))

    @property
    def is_json(self) -> bool:
        return (self.header("content-type") or "").startswith("application/json")


@dataclass(frozen=True)
class ProxyResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def without_headers(self, *names: str) -> ProxyResponse:
        lowered = {n.lower() for n in names}
        return replace(self, headers=[(k, v) for k, v in self.headers if k.lower() not in lowered])

    def with_header(self, name: str, value: str) -> ProxyResponse:
        kept = self.without_headers(name)
        return replace(kept, headers=[*kept.headers, (name, value)])

    @property
    def is_json(self) -> bool:
        content_type = self.header("content-type") or ""
        return content_type.startswith("application/") and "json" in content_type

    def json(self) -> Any:
        return json.loads(self.body)

    def with_json(self, value: Any, status: int | None = None) -> ProxyResponse:
        body = json.dumps(value, ensure_ascii=False).encode()
        return replace(self, body=body, status=self.status if status is None else status)


Forward = Callable[[ProxyRequest], Awaitable[ProxyResponse]]
Defect = Callable[[ProxyRequest, Forward], Awaitable[ProxyResponse]]


async def passthrough(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """No defect: what the service answers, unchanged."""
    return await forward(request)


class _App:
    """The ASGI side: read the request, run the defect, send its answer."""

    def __init__(self, upstream: str, defect: Defect) -> None:
        self.upstream = upstream.rstrip("/")
        self.defect = defect
        self.client: httpx.AsyncClient | None = None

    async def forward(self, request: ProxyRequest) -> ProxyResponse:
        assert self.client is not None
        url = self.upstream + request.path + (f"?{request.query}" if request.query else "")
        answer = await self.client.request(
            request.method, url, headers=_forwardable(request.headers), content=request.body
        )
        return ProxyResponse(answer.status_code, _forwardable(answer.headers.multi_items()),
                             answer.content)  # fmt: skip

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = ProxyRequest(
            method=scope["method"],
            path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body=b"".join(chunks),
        )
        try:
            response = await self.defect(request, self.forward)
        except httpx.HTTPError as error:
            problem = {"type": "about:blank", "title": "Bad Gateway", "status": 502,
                       "detail": f"upstream: {error}"}  # fmt: skip
            response = ProxyResponse(
                502, [("content-type", "application/problem+json")], json.dumps(problem).encode()
            )
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Generous: the harness's own timeout decides, not the proxy's. No cookie jar:
                # cookies travel between the client and the service, the proxy keeps none
                # (a kept session cookie would sign every later visitor in as the first).
                self.client = httpx.AsyncClient(
                    timeout=120.0,
                    follow_redirects=False,
                    cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def listening_socket(port: int = 0) -> socket.socket:
    """A socket listening on 127.0.0.1 (``port`` 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


class DefectProxy:
    """``upstream`` behind a local proxy applying ``defect``; a context manager::

    with DefectProxy("http://127.0.0.1:8001", wrong_check_character) as proxy:
        proxy.url   # give this to the client under test
    """

    def __init__(
        self, upstream: str, defect: Defect = passthrough, *, sock: socket.socket | None = None
    ) -> None:
        self.app = _App(upstream, defect)
        # A socket bound beforehand keeps a taken-over address from being grabbed meanwhile.
        self.sock = sock or listening_socket()
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,
            # The service's own Date and Server headers pass through.
            server_header=False,
            date_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the proxy in front of {self.app.upstream} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15.0)
        self.sock.close()

    def __enter__(self) -> DefectProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
