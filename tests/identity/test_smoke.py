from __future__ import annotations

from .support import Idp


def test_discovery(idp: Idp) -> None:
    r = idp.client.get("/.well-known/openid-configuration")
    assert r.status_code == 200, r.text
    assert r.json()["code_challenge_methods_supported"] == ["S256"]
    r = idp.client.get("/jwks")
    assert r.status_code == 200, r.text
    assert r.json()["keys"][0]["alg"] == "ES256"
