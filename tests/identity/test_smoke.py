from __future__ import annotations

from zwfw.services.kit.auth import route_access

from .support import Idp


def test_discovery(idp: Idp) -> None:
    r = idp.client.get("/.well-known/openid-configuration")
    assert r.status_code == 200, r.text
    assert r.json()["code_challenge_methods_supported"] == ["S256"]
    r = idp.client.get("/jwks")
    assert r.status_code == 200, r.text
    assert r.json()["keys"][0]["alg"] == "ES256"


def test_only_discovery_keys_and_page_entry_points_are_open(idp: Idp) -> None:
    listing = route_access(idp.client.app)
    public = sorted((r.path, r.methods) for r in listing if r.access == "public")
    assert public == [
        ("/.well-known/openid-configuration", ("GET",)),
        ("/authorize", ("GET",)),
        ("/healthz", ("GET",)),
        ("/jwks", ("GET",)),
        ("/login", ("GET",)),
        ("/logout", ("GET",)),
        ("/logout", ("POST",)),
        ("/metrics", ("GET",)),
        ("/readyz", ("GET",)),
    ]
    # The IdP checks its own tokens: no route relies on the kit's check of another issuer's.
    assert {r.access for r in listing} == {"public", "authenticates itself"}
    # Each route that authenticates itself refuses a caller who brings nothing.
    for route in listing:
        if route.access != "authenticates itself":
            continue
        path = route.path.replace("{client_id}", "x-1").replace("{sub}", "x-1")
        for method in route.methods:
            answer = idp.client.request(method, path, follow_redirects=False)
            assert answer.status_code in (400, 401, 403), (method, path, answer.status_code)
            assert route.reason
