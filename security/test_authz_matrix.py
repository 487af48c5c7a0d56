"""The authorization matrix (SEC-AZ-001, SEC-AZ-002): every operation of every interface in
`conformance/spec/openapi/` called by seven callers, each answer judged against the outcome
`authz-matrix.yaml` declares for that cell.

The matrix is read when the suite is collected: an operation of the interfaces it does not
declare stops the run (exit 2), so a new endpoint cannot go unreviewed. Path parameters name
resources of citizen A (their case, their licence, ...) where the province has one, so the
other callers are refused a real resource, not a missing one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from zwfw.harness.profile import ServiceName
from zwfw.harness.requirements import conformance_dir
from zwfw.harness.security import (
    AuthzMatrix,
    Operation,
    judge_cell,
    load_matrix,
    load_operations,
)

from .conftest import MATRIX

OPERATIONS = load_operations(conformance_dir() / "spec" / "openapi")
# Read at collection: a missing operation is a collection error, which stops the run.
_MATRIX = load_matrix(MATRIX, OPERATIONS)
AUTHENTICATION = ("anonymous", "expired", "untrusted_issuer")
# Citizen A is in the matrix too: their cells say what a holder may do with their own resources.
AUTHORIZATION = ("citizen_a", "citizen_b", "other_province", "wrong_scope")
MODES = {
    "anonymous": "SEC-AZ-001:anonymous-accepted",
    "expired": "SEC-AZ-001:expired-token-accepted",
    "untrusted_issuer": "SEC-AZ-001:untrusted-issuer-accepted",
    "citizen_b": "SEC-AZ-002:other-holder-access",
    "other_province": "SEC-AZ-002:other-province-access",
    "wrong_scope": "SEC-AZ-002:wrong-scope-access",
}


def _path(operation: Operation, values: dict[str, str]) -> str:
    path = operation.path
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path.lstrip("/")


def _body(operation: Operation) -> dict[str, Any]:
    if not operation.body_types:
        return {}
    if "application/json" in operation.body_types:
        return {"json": {}}
    return {"data": {}}


def _check(
    operation: Operation,
    identities: tuple[str, ...],
    matrix: AuthzMatrix,
    parameters: dict[str, str],
    client: httpx.Client,
    callers: Callable[[str, str], dict[str, str]],
) -> None:
    row = matrix.row(operation)
    path = _path(operation, parameters)
    wrong: list[str] = []
    for identity in identities:
        outcome = row[identity]
        if outcome == "public":
            continue
        # No redirects: a 302 to a sign-in page is an answer in itself.
        response = client.request(
            operation.method,
            path,
            headers=callers(identity, operation.service),
            follow_redirects=False,
            **_body(operation),
        )
        problem = judge_cell(outcome, response.status_code)
        if problem is not None:
            wrong.append(
                f"{identity} ({outcome}): {operation.method} {response.request.url.path}: {problem}"
            )
    assert not wrong, "; ".join(wrong)


@pytest.mark.requirement("SEC-AZ-001", catches=tuple(MODES[i] for i in AUTHENTICATION))
@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_unauthenticated_callers_are_refused(
    operation: Operation,
    matrix: AuthzMatrix,
    parameters: dict[str, str],
    service_client: Callable[[ServiceName], httpx.Client],
    callers: Callable[[str, str], dict[str, str]],
) -> None:
    client = service_client(operation.service)
    _check(operation, AUTHENTICATION, matrix, parameters, client, callers)


@pytest.mark.requirement("SEC-AZ-002", catches=tuple(MODES[i] for i in AUTHORIZATION if i in MODES))
@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_callers_without_a_right_are_refused(
    operation: Operation,
    matrix: AuthzMatrix,
    parameters: dict[str, str],
    service_client: Callable[[ServiceName], httpx.Client],
    callers: Callable[[str, str], dict[str, str]],
) -> None:
    client = service_client(operation.service)
    _check(operation, AUTHORIZATION, matrix, parameters, client, callers)
