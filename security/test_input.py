"""Input handling (SEC-IN-001): every operation taking a JSON body gets an oversized body, a
deeply nested document, the wrong content type and bodies whose strings carry SQL, template
and path-traversal injection. Each must be refused with a 4xx problem+json; never a 5xx, and
never with the injected expression evaluated in the answer; and nothing is stored: every
collection of the service the caller can list (their cases, the items, licences, seals, ...)
and the operation's own path where it is also read list as many entries afterwards as before.

Each operation is called by the first of the profile's credentials for its service that
passes authorization (so the body is really parsed), else anonymously: a refusal before
parsing is a refusal too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from zwfw.harness.profile import ServiceName
from zwfw.harness.requirements import conformance_dir
from zwfw.harness.security import Operation, load_operations

OPERATIONS = load_operations(conformance_dir() / "spec" / "openapi")
WITH_BODY = [op for op in OPERATIONS if "application/json" in op.body_types]
OVERSIZED = 2 * 1024 * 1024
DEPTH = 50_000
# 7777 * 7777: a template or expression engine that evaluates input shows this number.
EVALUATED = "60481729"
INJECTIONS = (
    "' OR '1'='1' --",
    "1; DROP TABLE cases; --",
    "{{ 7777*7777 }}",
    "${7777*7777}",
    "<%= 7777*7777 %>",
    "../../../../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
)


def _count(client: httpx.Client, path: str, headers: dict[str, str]) -> int | None:
    """How many resources the collection at `path` lists for the caller, if it lists any."""
    response = client.get(path, headers=headers)
    # Pages and key sets are not collections: only JSON lists (or pages of them) count.
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        return None
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("total"), int):
        return int(body["total"])
    if isinstance(body, dict):
        body = next((v for v in body.values() if isinstance(v, list)), None)
    return len(body) if isinstance(body, list) else None


# Reads that are not collections of what a caller stores.
NOT_COLLECTIONS = ("/healthz", "/readyz", "/metrics")


def _collections(operation: Operation, path: str) -> list[str]:
    """What the operation could add to, as the caller lists it: every collection of its
    service (a GET without path parameters) and its own path where that is also read."""
    paths = [
        op.path.lstrip("/")
        for op in OPERATIONS
        if op.service == operation.service
        and op.method == "GET"
        and "{" not in op.path
        and op.path not in NOT_COLLECTIONS
        and not op.path.startswith("/.well-known/")
    ]
    if path not in paths and any(
        op.service == operation.service and op.method == "GET" and op.path == operation.path
        for op in OPERATIONS
    ):
        paths.append(path)
    return paths


def _string_fields(schema: Mapping[str, Any] | None) -> list[str]:
    properties = (schema or {}).get("properties") or {}
    return list(properties) or ["name"]


def _problem(response: httpx.Response, case: str) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"{case}: HTTP {status}"
    if status < 400:
        return f"{case}: accepted (HTTP {status})"
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media != "application/problem+json":
        return f"{case}: HTTP {status} answered as {media or 'no content type'}"
    if EVALUATED in response.text or "root:x:0:0" in response.text:
        return f"{case}: the answer shows the injected expression evaluated"
    return None


def _cases(operation: Operation) -> list[tuple[str, str, dict[str, Any]]]:
    """(failure mode, case, request arguments)."""
    fields = _string_fields(operation.body_schema)
    big = json.dumps({fields[0]: "x" * OVERSIZED})
    deep = "[" * DEPTH + "]" * DEPTH
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("oversized-body-error", "oversized body", {"content": big, "json_type": True}),
        ("deep-json-error", f"JSON nested {DEPTH} deep", {"content": deep, "json_type": True}),
        (
            "wrong-content-type-error",
            "XML body",
            {
                "content": "<case><name>x</name></case>",
                "headers": {"Content-Type": "application/xml"},
            },
        ),
        (
            "wrong-content-type-error",
            "form body",
            {"content": "name=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        ),
    ]
    for injection in INJECTIONS:
        body = dict.fromkeys(fields, injection)
        cases.append(("injection-error", f"injection {injection!r}", {"json": body}))
    return cases


@pytest.mark.requirement(
    "SEC-IN-001",
    catches=(
        "oversized-body-error",
        "deep-json-error",
        "wrong-content-type-error",
        "injection-error",
        "not-problem-json",
        "stored-after-refusal",
    ),
)
@pytest.mark.parametrize("operation", WITH_BODY, ids=str)
def test_malformed_input_is_refused_with_a_problem(
    operation: Operation,
    parameters: dict[str, str],
    service_client: Callable[[ServiceName], httpx.Client],
    authorized: Callable[[Operation, str], dict[str, str]],
) -> None:
    client = service_client(operation.service)
    path = operation.path
    for name, value in parameters.items():
        path = path.replace("{" + name + "}", value)
    path = path.lstrip("/")
    headers = authorized(operation, path)
    # The collections the caller can list, read before and after: refused input stores nothing.
    collections = _collections(operation, path)
    before = {listed: _count(client, listed, headers) for listed in collections}
    wrong: list[str] = []
    for _mode, case, arguments in _cases(operation):
        sent = dict(headers)
        sent.update(arguments.pop("headers", {}))
        if arguments.pop("json_type", False):
            sent["Content-Type"] = "application/json"
        response = client.request(operation.method, path, headers=sent, **arguments)
        problem = _problem(response, case)
        if problem is not None:
            wrong.append(problem)
    for listed, count in before.items():
        if count is None:
            continue
        after = _count(client, listed, headers)
        if after != count:
            wrong.append(f"GET /{listed} listed {count} before the refused bodies, {after} after")
    assert not wrong, f"{operation}: " + "; ".join(wrong)
