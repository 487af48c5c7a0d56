"""Bearer-token authentication: JWKS, issuer, audience, lifetime, algorithms and scopes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey
from kit_example_service import build, callback
from kit_tokens import AUDIENCE, ISSUER, TokenMint
from sqlalchemy import select

from zwfw.services.kit import SettingsError, load_settings, migrate
from zwfw.services.kit.audit import audit_log, verify
from zwfw.services.kit.auth import (
    TokenValidator,
    authenticates_itself,
    authenticates_itself_because,
    is_public,
    public,
    route_access,
)
from zwfw.services.kit.settings import AuthSettings, ServiceSettings


def _get(client: TestClient, token: str, path: str = "/whoami"):
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def _assert_invalid_token(response, fragment: str) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert fragment in response.json()["detail"]


def test_valid_token_gives_the_principal(client: TestClient, mint: TokenMint) -> None:
    response = _get(client, mint.token(sub="user-42", scopes=["a", "b"]))
    assert response.status_code == 200
    assert response.json() == {
        "subject": "user-42",
        "client_id": "test-client",
        "scopes": ["a", "b"],
    }


def test_scopes_may_come_as_scp_list(client: TestClient, mint: TokenMint) -> None:
    token = mint.token(extra={"scope": None, "scp": ["notes:write"]})
    response = client.post(
        "/notes", json={"code": "s", "text": "t"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201


def test_expired_token(client: TestClient, mint: TokenMint) -> None:
    _assert_invalid_token(_get(client, mint.token(expires_in=-120)), "expired")


def test_leeway_tolerates_small_clock_skew(client: TestClient, mint: TokenMint) -> None:
    assert _get(client, mint.token(expires_in=-5)).status_code == 200


def test_token_not_yet_valid(client: TestClient, mint: TokenMint) -> None:
    token = mint.token(not_before=int(time.time()) + 600)
    _assert_invalid_token(_get(client, token), "not valid yet")


def test_wrong_audience(client: TestClient, mint: TokenMint) -> None:
    _assert_invalid_token(_get(client, mint.token(audience="zwfw-other")), "audience")


def test_wrong_issuer(client: TestClient, mint: TokenMint) -> None:
    _assert_invalid_token(_get(client, mint.token(issuer="https://evil.test")), "issuer")


def test_missing_subject(client: TestClient, mint: TokenMint) -> None:
    _assert_invalid_token(_get(client, mint.token(extra={"sub": None})), "sub")


def test_bad_signature(client: TestClient, mint: TokenMint) -> None:
    forger = TokenMint.new_key(kid=mint.key.kid)  # same kid, different key
    _assert_invalid_token(_get(client, mint.token(key=forger)), "signature")


def test_tampered_payload(client: TestClient, mint: TokenMint) -> None:
    header, _payload, signature = mint.token(scopes=["a"]).split(".")
    other = mint.token(scopes=["a", "admin"]).split(".")[1]
    _assert_invalid_token(_get(client, f"{header}.{other}.{signature}"), "signature")


def test_alg_none_is_refused(client: TestClient, mint: TokenMint) -> None:
    _assert_invalid_token(_get(client, mint.unsigned_token()), "algorithm 'none'")


def test_hmac_with_the_public_key_is_refused(client: TestClient, mint: TokenMint) -> None:
    # The classic confusion attack: sign HS256 with the published key as the secret.
    secret = OctKey.import_key(json.dumps(mint.jwks()).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "attacker", "exp": int(time.time()) + 60}
    token = jwt.encode({"alg": "HS256", "kid": mint.key.kid}, claims, secret)
    _assert_invalid_token(_get(client, token), "algorithm 'HS256'")


def test_garbage_token(client: TestClient) -> None:
    _assert_invalid_token(_get(client, "not-a-jwt"), "well-formed")
    _assert_invalid_token(_get(client, "a.b.c"), "well-formed")


def test_missing_token(client: TestClient) -> None:
    response = client.get("/protected")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "a bearer token is required"


def test_wrong_scheme(client: TestClient) -> None:
    response = client.get("/protected", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_missing_scope_is_403_insufficient_scope(client: TestClient, mint: TokenMint) -> None:
    token = mint.token(scopes=["notes:read"])
    response = client.post(
        "/notes", json={"code": "x", "text": "y"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="notes:write"'
    )
    assert response.json()["required_scopes"] == ["notes:write"]


def test_public_endpoints_need_no_token(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/greeting", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_every_other_route_needs_a_token_without_declaring_it(client: TestClient) -> None:
    # /protected declares no auth dependency of its own: the kit protects it by default.
    assert client.get("/protected").status_code == 401


def test_denials_are_audited(client: TestClient, mint: TokenMint, app) -> None:
    client.get("/protected")
    client.post(
        "/notes",
        json={"code": "x", "text": "y"},
        headers={"Authorization": f"Bearer {mint.token(sub='u-9', scopes=['other'])}"},
    )
    with app.state.kit.sessions() as session:
        rows = session.execute(select(audit_log).order_by(audit_log.c.seq)).all()
    assert [(r.actor, r.action, r.result) for r in rows] == [
        ("anonymous", "auth.denied", "denied:401"),
        ("u-9", "auth.denied", "denied:403"),
    ]
    assert rows[1].resource == "POST /notes"
    assert verify(app.state.kit.engine).ok


def test_denials_not_audited_when_disabled(make_settings: Callable) -> None:
    app = build(make_settings(audit={"record_denied": False}))
    migrate(app)
    with TestClient(app) as client:
        assert client.get("/protected").status_code == 401
        assert verify(app.state.kit.engine).records == 0


def test_unconfigured_auth_refuses_protected_routes(make_settings: Callable) -> None:
    app = build(make_settings(auth={}))
    with TestClient(app) as client:
        response = client.get("/protected")
        assert response.status_code == 503
        assert response.json()["detail"] == "authentication is not configured on this service"
        assert client.get("/greeting").status_code == 200


@pytest.mark.parametrize("missing", ["issuer", "audience"])
def test_validator_is_never_built_without_issuer_and_audience(
    mint: TokenMint, missing: str
) -> None:
    # The claims registry checks nothing when the expected value is None: such a validator
    # would take a token from any issuer, or meant for any audience.
    values = {"issuer": ISSUER, "audience": AUDIENCE, "jwks": mint.jwks()}
    values.pop(missing)
    with pytest.raises(ValueError, match="needs auth.issuer and auth.audience"):
        TokenValidator(AuthSettings(**values))


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
def test_settings_never_accept_symmetric_or_none(algorithm: str) -> None:
    with pytest.raises(SettingsError, match="not allowed"):
        load_settings_with_env({"ZWFW_AUTH__ALGORITHMS": f'["{algorithm}"]'})


def load_settings_with_env(env: dict[str, str]) -> ServiceSettings:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return load_settings(ServiceSettings, None)


class JwksServer:
    """The issuer's JWKS endpoint, counting fetches."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.fetches = 0
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.fetches += 1
                body = json.dumps(outer.document).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server(mint: TokenMint) -> Iterator[JwksServer]:
    server = JwksServer(mint.jwks())
    yield server
    server.close()


def _url_client(make_settings: Callable, url: str, **auth: Any) -> TestClient:
    settings = make_settings(
        auth={
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_url": url,
            "jwks_min_refetch_seconds": 0,
            **auth,
        }
    )
    return TestClient(build(settings))


def test_jwks_url_is_fetched_once_and_cached(
    make_settings: Callable, mint: TokenMint, jwks_server: JwksServer
) -> None:
    with _url_client(make_settings, jwks_server.url) as client:
        for _ in range(3):
            assert _get(client, mint.token()).status_code == 200
    assert jwks_server.fetches == 1


def test_rotated_key_is_picked_up_after_one_refetch(
    make_settings: Callable, mint: TokenMint, jwks_server: JwksServer
) -> None:
    with _url_client(make_settings, jwks_server.url) as client:
        assert _get(client, mint.token()).status_code == 200
        old = mint.key
        new = mint.rotate()
        jwks_server.document = mint.jwks(old, new)
        assert _get(client, mint.token()).status_code == 200
        assert jwks_server.fetches == 2
        assert _get(client, mint.token(key=old)).status_code == 200  # still published
        assert jwks_server.fetches == 2


def test_unknown_kid_refetch_is_rate_limited(
    make_settings: Callable, mint: TokenMint, jwks_server: JwksServer
) -> None:
    with _url_client(make_settings, jwks_server.url, jwks_min_refetch_seconds=60) as client:
        assert _get(client, mint.token()).status_code == 200
        stranger = TokenMint.new_key(kid="never-published")
        for _ in range(3):
            _assert_invalid_token(_get(client, mint.token(key=stranger)), "unknown key")
    assert jwks_server.fetches == 1


def test_unreachable_jwks_is_503(
    make_settings: Callable, mint: TokenMint, jwks_server: JwksServer
) -> None:
    jwks_server.status = 500
    with _url_client(make_settings, jwks_server.url) as client:
        response = _get(client, mint.token())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert jwks_server.url not in response.text


def test_a_route_that_authenticates_itself_skips_only_the_bearer_check(client: TestClient) -> None:
    # No bearer token: the kit lets the request through to the endpoint's own check.
    accepted = client.post("/callback", headers={"X-Callback-Secret": "example-callback-secret"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"status": "accepted"}
    # ... which refuses a caller without its credential: the route is not open to anyone.
    refused = client.post("/callback", headers={"X-Callback-Secret": "guess"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "the callback secret is wrong"
    assert client.post("/callback").status_code == 401


def test_route_listing_tells_public_routes_from_self_authenticating_ones(app) -> None:
    listing = {(route.path, route.methods): route for route in route_access(app)}
    marked = listing[("/callback", ("POST",))]
    assert (marked.access, marked.reason) == (
        "authenticates itself",
        "shared secret in X-Callback-Secret",
    )
    public_paths = sorted(r.path for r in listing.values() if r.access == "public")
    assert public_paths == [
        "/boom",
        "/database-gone",
        "/greeting",
        "/healthz",
        "/metrics",
        "/notes/{code}",
        "/out-of-range/{number}",
        "/readyz",
    ]
    assert listing[("/protected", ("GET",))].access == "bearer token"
    assert listing[("/notes", ("POST",))].access == "bearer token"
    assert not is_public(callback)
    assert authenticates_itself_because(callback) == "shared secret in X-Callback-Secret"


def test_an_endpoint_cannot_be_both_public_and_self_authenticating() -> None:
    def endpoint() -> None:
        return None

    with pytest.raises(ValueError, match="say how"):
        authenticates_itself("  ")
    marked = authenticates_itself("session cookie and CSRF token")(endpoint)
    with pytest.raises(ValueError, match="not public"):
        public(marked)

    def other() -> None:
        return None

    with pytest.raises(ValueError, match="cannot authenticate itself"):
        authenticates_itself("mutual TLS")(public(other))
