"""Browser security headers and cookies (SEC-HDR-*) on a sweep of every service: every GET
operation of its interface, anonymous and as citizen A, and the IdP's sign-in pages.

The responses of every other test of the run are judged the same way by `test_run_scans.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from zwfw.harness.profile import ServiceName, TargetProfile
from zwfw.harness.security import Operation, cookie_findings, header_findings

from .conftest import authorization_params, secret


def _judge(
    responses: list[httpx.Response], prefix: str, public_call: Callable[[str, str], bool]
) -> list[str]:
    found: list[str] = []
    for response in responses:
        request = response.request
        authenticated = (
            "authorization" in request.headers or "cookie" in request.headers
        ) and not public_call(request.method, str(request.url))
        where = f"{response.request.method} {response.request.url.copy_with(query=None)}"
        for mode, what in header_findings(response.headers, authenticated=authenticated):
            if mode.startswith(prefix):
                found.append(f"{where}: {what}")
        https = response.request.url.scheme == "https"
        for mode, what in cookie_findings(response.headers.get_list("set-cookie"), https=https):
            if mode.startswith(prefix):
                found.append(f"{where}: {what}")
    return found


def _sweep(
    target: TargetProfile,
    operations: list[Operation],
    parameters: dict[str, str],
    service_client: Callable[[ServiceName], httpx.Client],
) -> list[httpx.Response]:
    citizen = {"Authorization": f"Bearer {secret(target, 'hall_applicant_token')}"}
    responses: list[httpx.Response] = []
    for operation in operations:
        if operation.method != "GET" or target.base_url(operation.service) is None:
            continue
        path = operation.path
        for name, value in parameters.items():
            path = path.replace("{" + name + "}", value)
        client = service_client(operation.service)
        for headers in ({}, citizen):
            responses.append(client.get(path.lstrip("/"), headers=headers))
    if target.base_url("identity") is not None:
        responses.extend(_sign_in_pages(target, service_client("identity")))
    return responses


def _sign_in_pages(target: TargetProfile, identity: httpx.Client) -> list[httpx.Response]:
    """The IdP's authorization request and sign-in page, with the session cookie it sets."""
    params = authorization_params(target)
    first = identity.get("authorize", params=params, follow_redirects=False)
    pages = [first]
    if first.is_redirect and first.headers.get("location"):
        pages.append(identity.get(first.headers["location"], follow_redirects=False))
    pages.append(identity.get("login", follow_redirects=False))
    return pages


@pytest.fixture(scope="module")
def swept(
    target: TargetProfile,
    operations: list[Operation],
    parameters: dict[str, str],
    service_client: Callable[[ServiceName], httpx.Client],
) -> list[httpx.Response]:
    return _sweep(target, operations, parameters, service_client)


@pytest.mark.requirement(
    "SEC-HDR-001",
    catches=(
        "csp-missing",
        "frame-ancestors-missing",
        "inline-script-allowed",
        "nosniff-missing",
        "referrer-leak",
    ),
)
def test_every_response_carries_the_security_headers(
    swept: list[httpx.Response], public_call: Callable[[str, str], bool]
) -> None:
    found = _judge(swept, "SEC-HDR-001", public_call)
    assert not found, f"{len(found)} findings: " + "; ".join(found[:10])


@pytest.mark.requirement("SEC-HDR-002", catches=("cacheable-authenticated",))
def test_authenticated_responses_are_not_cached(
    swept: list[httpx.Response], public_call: Callable[[str, str], bool]
) -> None:
    found = _judge(swept, "SEC-HDR-002", public_call)
    assert not found, f"{len(found)} findings: " + "; ".join(found[:10])


@pytest.mark.requirement(
    "SEC-HDR-003", catches=("cookie-not-httponly", "cookie-no-samesite", "cookie-not-secure")
)
def test_cookies_are_protected(
    target: TargetProfile, swept: list[httpx.Response], public_call: Callable[[str, str], bool]
) -> None:
    if target.base_url("identity") is not None:
        # The sign-in pages set the IdP's session cookie: judged, not just absent.
        assert any(r.headers.get_list("set-cookie") for r in swept), (
            "the IdP's authorization request set no session cookie"
        )
    found = _judge(swept, "SEC-HDR-003", public_call)
    assert not found, f"{len(found)} findings: " + "; ".join(found[:10])
