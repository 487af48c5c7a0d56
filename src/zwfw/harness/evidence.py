"""Evidence: the HTTP exchanges behind each conformance test, redacted, one JSON file per test.

The harness's HTTP clients (`zwfw.harness.http`) carry httpx event hooks that hand every
request and response to the active `EvidenceLog`. The pytest plugin tells the log which test
is running; when the test finishes its exchanges are written to `evidence/<test>.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

from zwfw.harness.redact import Redactor

EVIDENCE_DIR = "evidence"
# Screenshots the browser checks take (evidence/browser/*.png).
BROWSER_EVIDENCE = "browser"
# Bodies above this are cut (after redaction) so one large download cannot swamp a report.
BODY_LIMIT = 64 * 1024
_STARTED = "zwfw_evidence_started"
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip")


def evidence_name(nodeid: str) -> str:
    """A stable, safe file name for a test's evidence (`<readable part>-<digest>.json`)."""
    readable = _SLUG_UNSAFE.sub("_", nodeid).strip("._")[:100]
    digest = hashlib.sha256(nodeid.encode("utf-8")).hexdigest()[:10]
    return f"{readable}-{digest}.json"


def _media_type(headers: httpx.Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _charset(headers: httpx.Headers) -> str:
    for parameter in headers.get("content-type", "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _cut(text: str) -> tuple[str, bool]:
    if len(text) <= BODY_LIMIT:
        return text, False
    return text[:BODY_LIMIT], True


def describe_body(content: bytes, headers: httpx.Headers, redactor: Redactor) -> dict[str, Any]:
    """A body as evidence: JSON and form bodies structured, text redacted, binaries by digest."""
    media = _media_type(headers)
    body: dict[str, Any] = {"media_type": media or None, "size": len(content)}
    if not content:
        return body
    try:
        text = content.decode(_charset(headers))
    except (UnicodeDecodeError, LookupError):
        text = None
    if media == "application/json" or media.endswith("+json"):
        try:
            body["json"] = redactor.json_value(json.loads(content))
            return body
        except (ValueError, RecursionError):
            pass  # shown as text below (also a document nested too deep to walk)
    if media == "application/x-www-form-urlencoded" and text is not None:
        body["form"] = [list(pair) for pair in redactor.fields(parse_qsl(text, True))]
        return body
    if text is None or "\x00" in text or media.startswith(_BINARY_TYPES):
        body["omitted"] = "binary content"
        body["sha256"] = hashlib.sha256(content).hexdigest()
        return body
    body["text"], truncated = _cut(redactor.text(text))
    if truncated:
        body["truncated"] = True
    return body


@dataclass
class _Exchange:
    request: httpx.Request
    started_at: datetime
    started: float
    response: httpx.Response | None = None
    duration: float | None = None


@dataclass
class EvidenceLog:
    """Collects exchanges per running test and writes one evidence file per test."""

    directory: Path
    redactor: Redactor = field(default_factory=Redactor)
    current: str | None = None
    _exchanges: list[_Exchange] = field(default_factory=list)

    # --- httpx event hooks ---------------------------------------------------------------

    def on_request(self, request: httpx.Request) -> None:
        if self.current is None:
            return  # outside any test (session set-up before the first test, teardown after)
        exchange = _Exchange(request, datetime.now(UTC), time.perf_counter())
        request.extensions[_STARTED] = exchange
        self._exchanges.append(exchange)

    def on_response(self, response: httpx.Response) -> None:
        exchange = response.request.extensions.get(_STARTED)
        if not isinstance(exchange, _Exchange):
            return
        # Reading here keeps the body for evidence; the caller reads the same buffered bytes.
        response.read()
        exchange.response = response
        exchange.duration = time.perf_counter() - exchange.started

    def event_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        return {"request": [self.on_request], "response": [self.on_response]}

    # --- test boundaries -----------------------------------------------------------------

    def begin(self, nodeid: str) -> None:
        self.current = nodeid
        self._exchanges = []

    def finish(self, nodeid: str, requirement_ids: Iterable[str], outcome: str) -> str | None:
        """Write the test's evidence file; its name, or None when the test made no exchange."""
        exchanges, self._exchanges, self.current = self._exchanges, [], None
        if not exchanges:
            return None
        name = evidence_name(nodeid)
        document = {
            "test": nodeid,
            "requirements": list(requirement_ids),
            "outcome": outcome,
            "exchanges": [self._describe(exchange) for exchange in exchanges],
        }
        text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        # Last line of defence: a credential value must not survive in any encoding used above.
        text = self.redactor.literal_secrets(text)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
        return name

    def _describe(self, exchange: _Exchange) -> dict[str, Any]:
        redactor = self.redactor
        request = exchange.request
        try:
            request_content = request.content
        except httpx.RequestNotRead:
            request_content = b""  # a streamed upload; its bytes are gone by now
        described: dict[str, Any] = {
            "started_at": exchange.started_at.isoformat(timespec="milliseconds"),
            "duration_ms": (
                round(exchange.duration * 1000, 3) if exchange.duration is not None else None
            ),
            "request": {
                "method": request.method,
                "url": redactor.url(str(request.url)),
                "headers": redactor.headers(request.headers.multi_items()),
                "body": describe_body(request_content, request.headers, redactor),
            },
        }
        response = exchange.response
        if response is None:
            described["response"] = None
            described["error"] = "no response (connection failed, timed out or was refused)"
            return described
        described["response"] = {
            "status": response.status_code,
            "http_version": response.http_version,
            "headers": redactor.headers(response.headers.multi_items()),
            "body": describe_body(response.content, response.headers, redactor),
        }
        return described


def latencies(directory: Path, name: str) -> list[float]:
    """Durations (ms) of the exchanges in one evidence file, for the report's latency plots."""
    try:
        document = json.loads((directory / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [
        float(exchange["duration_ms"])
        for exchange in document.get("exchanges", [])
        if exchange.get("duration_ms") is not None
    ]
