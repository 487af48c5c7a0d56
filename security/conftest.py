"""What the security suite shares: the interfaces' operations, the authorization matrix, the
callers it names, and every response of the run (for the headers and personal-data scans).

Credentials it needs beyond the conformance suites' (each `{env: VAR}` in the profile):

- `security_expired_token`: an access token of the province's IdP past its expiry;
- `security_wrong_scope_token`, `security_wrong_scope_eseal_token`: tokens of a system
  client of the province whose scopes cover nothing of the hall, e-licence service and hub
  (the first) and nothing of the e-seal service (the second);
- `security_other_province_token`: an access token of another province's staff (their IdP);
  `security_other_province_hub_token`: another province's national token (hub scopes);
- `security_eseal_read_token`: a system client's token with `eseal:read`, to list the e-seal
  register for the 密评 check of its seals (SEC-CRY-001).

The scans of the whole run (`test_run_scans.py`) run last, after every other suite's tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from zwfw.harness import http
from zwfw.harness.profile import SecretUnavailable, ServiceName, TargetProfile
from zwfw.harness.requirements import conformance_dir
from zwfw.harness.security import (
    AuthzMatrix,
    Operation,
    forge_token,
    load_matrix,
    load_operations,
    operation_for,
    public_operations,
)

SUITE = Path(__file__).resolve().parent
MATRIX = SUITE / "authz-matrix.yaml"
LAST = "test_run_scans.py"
# Bodies kept for the scans; personal data sits in the first kilobytes of any response.
KEEP_BYTES = 256 * 1024


@dataclass(frozen=True)
class Seen:
    """One response of the run, as the scans need it."""

    test: str
    method: str
    url: str
    authenticated: bool
    status: int
    headers: list[tuple[str, str]]
    set_cookies: list[str]
    media_type: str
    body: bytes


@dataclass
class RunResponses:
    responses: list[Seen] = field(default_factory=list)

    def __call__(self, response: httpx.Response) -> None:
        log = http.active_log()
        request = response.request
        self.responses.append(
            Seen(
                test=(log.current or "") if log is not None else "",
                method=request.method,
                url=str(request.url.copy_with(query=None)),
                authenticated="authorization" in request.headers or "cookie" in request.headers,
                status=response.status_code,
                headers=list(response.headers.multi_items()),
                set_cookies=response.headers.get_list("set-cookie"),
                media_type=response.headers.get("content-type", "").split(";")[0].strip(),
                body=response.content[:KEEP_BYTES],
            )
        )


_RESPONSES = pytest.StashKey[RunResponses]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every response of the run, from every suite's clients, from the first test on.
    if _RESPONSES not in config.stash:
        seen = config.stash[_RESPONSES] = RunResponses()
        http.observe(seen)
        config.add_cleanup(lambda: http.unobserve(seen))
    # The scans of the whole run come after every other test of the session.
    items.sort(key=lambda item: item.path.name == LAST and item.path.parent == SUITE)
    _scans_out_of_scope_without_https(config)
    _mutual_tls_out_of_scope_unless_declared(config)
    _static_checks_out_of_scope_without_deployment(config)


# Judged by sslyze scans of the profile's https endpoints (test_transport.py).
TLS_SCANNED = ("SEC-TLS-002", "SEC-TLS-003", "SEC-TLS-004", "SEC-TLS-005")


def _scans_out_of_scope_without_https(config: pytest.Config) -> None:
    """A profile whose services are all on plain http (declared internal_only, behind the
    operator's TLS gateway) has nothing for the TLS scans: their requirements are listed not
    tested and out of scope with that reason, never passed."""
    from zwfw.harness.pytest_plugin import RUN_KEY
    from zwfw.harness.tls import https_endpoints

    run = config.stash.get(RUN_KEY, None)
    if run is None or run.profile is None:
        return
    services = {name: str(url) for name, url in run.profile.services.configured().items()}
    if https_endpoints(services):
        return
    why = (
        "the profile has no https endpoint to scan (every service is on http, internal_only): "
        "the TLS gateway's configuration needs manual evidence"
    )
    for requirement in TLS_SCANNED:
        run.out_of_scope[requirement] = why


def _mutual_tls_out_of_scope_unless_declared(config: pytest.Config) -> None:
    """Mutual TLS is judged where the profile declares it (tls.mutual); elsewhere SEC-TLS-006
    is listed not tested and out of scope, never passed."""
    from zwfw.harness.pytest_plugin import RUN_KEY

    run = config.stash.get(RUN_KEY, None)
    if run is None or run.profile is None or run.profile.tls.mutual:
        return
    run.out_of_scope["SEC-TLS-006"] = (
        "the profile declares no mutual-TLS endpoint (tls: {mutual: [hub], client_cert: ..., "
        "client_key: ...}): where the national gateway requires client certificates, declare it"
    )


def _static_checks_out_of_scope_without_deployment(config: pytest.Config) -> None:
    """The static checks (test_deployment.py) judge a host deployment the profile declares;
    without one, or without its playbooks or manifests, their requirements are out of scope."""
    from zwfw.harness.pytest_plugin import RUN_KEY

    run = config.stash.get(RUN_KEY, None)
    if run is None or run.profile is None:
        return
    deployment = run.profile.deployment
    if deployment is None:
        why = (
            "the profile declares no deployment (deployment: {state_dir: ...}) to check "
            "statically: file modes, listening ports and the gateway need manual evidence"
        )
        for requirement in ("SEC-DEP-001", "SEC-DEP-002", "SEC-DEP-003", "SEC-DEP-004"):
            run.out_of_scope[requirement] = why
    elif deployment.playbooks is None:
        run.out_of_scope["SEC-DEP-004"] = "the profile's deployment names no playbooks"
    if deployment is None or deployment.manifests is None:
        run.out_of_scope["SEC-DEP-005"] = (
            "the profile's deployment names no rendered Kubernetes manifests (manifests:)"
        )


@pytest.fixture(scope="session")
def run_responses(pytestconfig: pytest.Config) -> RunResponses:
    return pytestconfig.stash[_RESPONSES]


@pytest.fixture(scope="session")
def operations() -> list[Operation]:
    return load_operations(conformance_dir() / "spec" / "openapi")


def matrix_or_fail(operations: list[Operation]) -> AuthzMatrix:
    from zwfw.harness.errors import HarnessConfigError

    try:
        return load_matrix(MATRIX, operations)
    except HarnessConfigError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def matrix(operations: list[Operation]) -> AuthzMatrix:
    return matrix_or_fail(operations)


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value if isinstance(value, dict) else {}


def _first(response: httpx.Response, *names: str) -> str | None:
    """The first value of one of `names` in a list answer (a bare list, or the first list
    member of an object: a page of items or cases)."""
    if response.status_code != 200:
        return None
    body = response.json()
    if isinstance(body, dict):
        body = next((v for v in body.values() if isinstance(v, list)), [])
    for row in body if isinstance(body, list) else []:
        for name in names:
            if isinstance(row, dict) and row.get(name):
                return str(row[name])
    return None


def secret(target: TargetProfile, name: str) -> str:
    """A credential's value, or fail the test naming its variable (any fixture scope)."""
    try:
        return target.secret(name)
    except SecretUnavailable as error:
        pytest.fail(str(error), pytrace=False)


def authorization_params(target: TargetProfile) -> dict[str, str]:
    """A fresh authorization request of the profile's public relying party (code + PKCE), as
    its sign-in link sends a person to the IdP."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return {
        "response_type": "code",
        "client_id": secret(target, "identity_rp_client_id"),
        "redirect_uri": secret(target, "identity_rp_redirect_uri"),
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }


@pytest.fixture(scope="session")
def parameters(
    target: TargetProfile, service_client: Callable[[ServiceName], httpx.Client]
) -> dict[str, str]:
    """A value for each path parameter: citizen A's resources where the province has them."""

    def credential(name: str) -> str:
        return secret(target, name)

    citizen = {"Authorization": f"Bearer {credential('hall_applicant_token')}"}
    values = {
        "region_code": target.region_code,
        "sub": str(_claims(credential("hall_applicant_token")).get("sub", "unknown")),
        "client_id": "security-review-client",
        "task_id": "1",
        "version": "1",
        "es_id": "0" * 16,
        "type_code": "0000",
        "code": "0" * 33,
        "number": "0" * 30,
        "identifier": "0" * 30,
    }
    if target.base_url("hall") is not None:
        hall = service_client("hall")
        if number := _first(hall.get("cases", headers=citizen), "case_number", "number"):
            values["number"] = number
        if code := _first(hall.get("items"), "implementation_code"):
            values["code"] = code
    if target.base_url("elicense") is not None:
        elicense = service_client("elicense")
        holder = {"Authorization": f"Bearer {credential('elicense_holder_token')}"}
        if identifier := _first(elicense.get("me/licences", headers=holder), "identifier"):
            values["identifier"] = identifier
        if type_code := _first(elicense.get("types"), "type_code"):
            values["type_code"] = type_code
    values["case_number"] = values["number"]
    return values


@pytest.fixture(scope="session")
def public_call(
    target: TargetProfile, operations: list[Operation], matrix: AuthzMatrix
) -> Callable[[str, str], bool]:
    """`public_call(method, url)`: whether the request calls an operation anyone may call
    (its answer is the same for everyone, so caching it leaks nothing: SEC-HDR-002)."""
    public = public_operations(matrix)
    bases = {name: str(url) for name, url in target.services.configured().items()}

    def check(method: str, url: str) -> bool:
        operation = operation_for(operations, bases, method, url)
        return operation is not None and (operation.service, operation.key) in public

    return check


@pytest.fixture(scope="session")
def callers(target: TargetProfile, matrix: AuthzMatrix) -> Callable[[str, str], dict[str, str]]:
    """`callers(identity, service)`: the headers that caller of the matrix sends there."""
    forged: dict[str, str] = {}

    def headers(identity: str, service: str) -> dict[str, str]:
        if identity == "anonymous":
            return {}
        if identity == "untrusted_issuer":
            # Everything citizen A's token claims, signed by a key nobody trusts.
            if service not in forged:
                template = secret(target, matrix.credential("citizen_a", service))
                forged[service] = forge_token(template)
            return {"Authorization": f"Bearer {forged[service]}"}
        token = secret(target, matrix.credential(identity, service))
        return {"Authorization": f"Bearer {token}"}

    return headers


# Tried in order; the first that is neither 401 nor 403 on an empty object calls.
AUTHORIZED_CALLERS: dict[str, tuple[str, ...]] = {
    "hall": ("hall_applicant_token", "hall_staff_token"),
    "elicense": ("elicense_holder_token", "elicense_share_token"),
    "eseal": ("eseal_admin_token", "eseal_signer_token"),
    "hub": ("hub_report_token", "hub_exchange_token", "hub_supervise_token"),
    "identity": (),
}


@pytest.fixture(scope="session")
def authorized(
    target: TargetProfile, service_client: Callable[[ServiceName], httpx.Client]
) -> Callable[[Operation, str], dict[str, str]]:
    """`authorized(operation, path)`: the headers of the first profile credential for the
    operation's service that passes authorization there (so bodies are really parsed), else
    none (a refusal before parsing is a refusal too). Probed once per operation."""
    chosen: dict[tuple[str, str], dict[str, str]] = {}

    def headers(operation: Operation, path: str) -> dict[str, str]:
        key = (str(operation), path)
        if key in chosen:
            return dict(chosen[key])
        client = service_client(operation.service)
        chosen[key] = {}
        for name in AUTHORIZED_CALLERS[operation.service]:
            try:
                token = target.secret(name)
            except SecretUnavailable:
                continue
            candidate = {"Authorization": f"Bearer {token}"}
            probe = client.request(operation.method, path, json={}, headers=candidate)
            if probe.status_code not in (401, 403):
                chosen[key] = candidate
                break
        return dict(chosen[key])

    return headers
