"""Responses conform to the published interface (SEC-IN-002): every operation of every OpenAPI
document in `conformance/spec/openapi/` is called with requests schemathesis generates from
the document (a few per operation, the same ones every run), by the first of the profile's
credentials that passes authorization there (else anonymously). Each answer must not be a
5xx, must have a status and a content type the document declares for the operation, must
match the declared schema, and every refusal must be an RFC 9457 problem+json body.

The requests go through the suite's own clients, so they are in the evidence (redacted) and in
the scans of the whole run; each finding quotes its request as a curl command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from zwfw.harness.profile import ServiceName
from zwfw.harness.redact import Redactor
from zwfw.harness.requirements import conformance_dir
from zwfw.harness.security import Operation, load_operations

OPENAPI = conformance_dir() / "spec" / "openapi"
OPERATIONS = load_operations(OPENAPI)
# Generated requests per operation: 98 operations, about 300 requests (51 s on the reference
# province on a loaded shared two-core machine, 10 s of it the harness's own CPU);
# derandomized, so every run sends the same requests.
EXAMPLES = 3
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# What a finding quotes of a request body.
QUOTED = 400


DOCUMENTS: dict[str, dict[str, Any]] = {
    file.stem: json.loads(file.read_text(encoding="utf-8"))
    for file in sorted(OPENAPI.glob("*.json"))
}
SCHEMAS = {service: schemathesis.openapi.from_dict(doc) for service, doc in DOCUMENTS.items()}


def _curl(request: httpx.Request) -> str:
    """The request as a curl command, redacted like the evidence."""
    redactor = Redactor()
    parts = [f"curl -X {request.method} '{redactor.url(str(request.url))}'"]
    for name, value in request.headers.multi_items():
        if name.lower() in ("host", "content-length", "accept-encoding", "connection"):
            continue
        parts.append(f"-H '{name}: {redactor.header(name, value)}'")
    if request.content:
        body = redactor.text(request.content.decode("utf-8", "replace"))
        cut = body[:QUOTED] + (" …" if len(body) > QUOTED else "")
        parts.append(f"--data '{cut}'")
    return " ".join(parts)


def _declared_otherwise(operation: Operation, status: int, media: str) -> bool:
    """Whether the document declares this very status with this media type for the operation:
    an error body a protocol fixes (RFC 6749's `{"error": ...}` of the token endpoint)."""
    spec = DOCUMENTS[operation.service]["paths"][operation.path][operation.method.lower()]
    declared = spec.get("responses", {}).get(str(status), {})
    return media in (declared.get("content") or {})


def _refusal_not_a_problem(operation: Operation, response: httpx.Response) -> str | None:
    if response.status_code < 400:
        return None
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media == "application/problem+json":
        return None
    if _declared_otherwise(operation, response.status_code, media):
        return None
    return f"HTTP {response.status_code} answered as {media or 'no content type'}, not a problem"


def _findings(failures: FailureGroup) -> list[str]:
    return sorted({f"{each.title}: {each.message}".strip() for each in failures.exceptions})


@pytest.mark.requirement(
    "SEC-IN-002",
    catches=(
        "server-error",
        "undeclared-status",
        "undeclared-content-type",
        "schema-mismatch",
        "refusal-not-problem-json",
    ),
)
@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_generated_requests_get_answers_the_interface_declares(
    operation: Operation,
    parameters: dict[str, str],
    service_client: Callable[[ServiceName], httpx.Client],
    authorized: Callable[[Operation, str], dict[str, str]],
) -> None:
    client = service_client(operation.service)
    base = str(client.base_url).rstrip("/")
    generated = SCHEMAS[operation.service][operation.path][operation.method]
    path = operation.path
    for name, value in parameters.items():
        path = path.replace("{" + name + "}", value)
    headers = authorized(operation, path.lstrip("/"))
    wrong: dict[str, str] = {}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        # No shrinking: each finding is reported as sent, and the run stays bounded.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=generated.as_strategy())
    def call(case: Any) -> None:
        sent = case.as_transport_kwargs(base_url=base, headers=headers)
        sent.pop("auth", None)
        prepared = requests.Request(**sent).prepare()
        response = client.request(
            prepared.method or operation.method,
            prepared.url or base,
            headers=dict(prepared.headers),
            content=prepared.body,
            follow_redirects=False,
        )
        findings: list[str] = []
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as failures:
            findings.extend(_findings(failures))
        if (problem := _refusal_not_a_problem(operation, response)) is not None:
            findings.append(problem)
        for finding in findings:
            wrong.setdefault(finding.splitlines()[0], _curl(response.request))

    call()
    assert not wrong, f"{operation}: " + "; ".join(
        f"{finding} (request: {curl})" for finding, curl in sorted(wrong.items())
    )
