"""The shared OAuth client: private_key_jwt assertions and cached client-credentials tokens."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from zwfw.services.kit.tokens import (
    CLIENT_ASSERTION_TYPE,
    AsyncClientCredentials,
    ClientCredentials,
    TokenRequestError,
    load_client_key,
)

TOKEN_URL = "https://idp.example/token"


class TokenEndpoint:
    """A token endpoint that checks each assertion against the client's public key."""

    def __init__(self, key: ECKey, *, expires_in: int = 300) -> None:
        self.public = ECKey.import_key(key.as_dict(private=False))
        self.expires_in = expires_in
        self.forms: list[dict[str, str]] = []
        self.jtis: set[str] = set()
        self.answer: httpx.Response | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        if self.answer is not None:
            return self.answer
        assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
        claims = jwt.decode(form["client_assertion"], self.public).claims
        assert claims["iss"] == claims["sub"] == form["client_id"] == "hall-340000"
        assert claims["aud"] == TOKEN_URL
        assert claims["exp"] - claims["iat"] == 60
        assert claims["jti"] not in self.jtis, "an assertion was reused"
        self.jtis.add(claims["jti"])
        number = len(self.forms)
        return httpx.Response(
            200, json={"access_token": f"token-{number}", "expires_in": self.expires_in}
        )


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "hall-1"}, private=True)


def test_tokens_are_cached_and_renewed_before_they_expire(key: ECKey) -> None:
    endpoint = TokenEndpoint(key)
    with httpx.Client(transport=httpx.MockTransport(endpoint)) as http:
        tokens = ClientCredentials(TOKEN_URL, "hall-340000", key, "elicense:share", http=http)
        assert tokens() == tokens() == "token-1"
        assert endpoint.forms[0]["grant_type"] == "client_credentials"
        assert endpoint.forms[0]["scope"] == "elicense:share"
        tokens.invalidate()
        assert tokens() == "token-2"
    short = TokenEndpoint(key, expires_in=1)
    with httpx.Client(transport=httpx.MockTransport(short)) as http:
        tokens = ClientCredentials(TOKEN_URL, "hall-340000", key, "s", http=http)
        assert tokens() == "token-1"
        time.sleep(0.6)  # half of a 1 s lifetime: renewed early rather than used to the end
        assert tokens() == "token-2"


def test_an_internal_address_keeps_the_public_token_endpoint_in_the_assertion(
    key: ECKey,
) -> None:
    """Inside a cluster the token endpoint is called at its service URL; the IdP checks the
    assertion's audience against its public name, so that is what the assertion names."""
    endpoint = TokenEndpoint(key)
    internal = "https://identity.zwfw-340000.svc:8443/token"
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return endpoint(request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        tokens = ClientCredentials(
            internal, "hall-340000", key, "s", http=http, assertion_audience=TOKEN_URL
        )
        assert tokens() == "token-1"
    assert requested == [internal]


def test_refusals_and_outages_are_told_apart(key: ECKey) -> None:
    endpoint = TokenEndpoint(key)
    endpoint.answer = httpx.Response(
        400, json={"error": "invalid_client", "error_description": "unknown key"}
    )
    with httpx.Client(transport=httpx.MockTransport(endpoint)) as http:
        tokens = ClientCredentials(TOKEN_URL, "hall-340000", key, "s", http=http)
        with pytest.raises(TokenRequestError, match="unknown key") as refused:
            tokens()
        assert refused.value.refused
        assert refused.value.error == "invalid_client"
        assert refused.value.description == "unknown key"
        endpoint.answer = httpx.Response(502, text="<html>bad gateway</html>")
        with pytest.raises(TokenRequestError, match="HTTP 502") as broken:
            tokens()
        assert not broken.value.refused
        assert broken.value.error is broken.value.description is None

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(unreachable)) as http:
        tokens = ClientCredentials(TOKEN_URL, "hall-340000", key, "s", http=http)
        with pytest.raises(TokenRequestError, match="cannot reach") as down:
            tokens()
        assert down.value.status is None
        assert not down.value.refused


def test_async_flavour_caches_across_concurrent_callers(key: ECKey) -> None:
    endpoint = TokenEndpoint(key)

    async def main() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
            tokens = AsyncClientCredentials(
                TOKEN_URL, "hall-340000", key, "hub:report", http=http, audience="https://hub"
            )
            first = await asyncio.gather(*(tokens() for _ in range(5)))
            exchanged = await tokens.request({"grant_type": "urn:x", "subject_token": "t"})
            return [*first, exchanged["access_token"]]

    answers = asyncio.run(main())
    assert answers == ["token-1"] * 5 + ["token-2"]
    assert endpoint.forms[0]["audience"] == "https://hub"
    assert endpoint.forms[1]["subject_token"] == "t"


def test_client_keys_load_from_jwk_and_pem(key: ECKey, tmp_path: Path) -> None:
    jwk_file = tmp_path / "client.jwk"
    jwk_file.write_text(json.dumps(key.as_dict(private=True)))
    pem_file = tmp_path / "client.pem"
    pem_file.write_bytes(key.as_pem(private=True))
    assert load_client_key(jwk_file).kid == "hall-1"
    assert load_client_key(pem_file).as_dict(private=False)["x"] == key.as_dict()["x"]


def test_the_services_settings_carry_the_public_token_endpoint_into_their_assertions(
    key: ECKey, tmp_path: Path
) -> None:
    """The hall's library client and the library's e-seal client call the IdP at the
    ``token_url`` of their settings and name ``assertion_audience`` in their assertions."""
    from zwfw.services.elicense.sealing import SealClient
    from zwfw.services.elicense.settings import SealServiceConfig
    from zwfw.services.hall.elicense import build_client
    from zwfw.services.hall.settings import HallSettings

    key_file = tmp_path / "client.jwk"
    key_file.write_text(json.dumps(key.as_dict(private=True)))
    internal = "https://identity.zwfw-340000.svc:8443/token"
    endpoint = TokenEndpoint(key)
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return endpoint(request)

    hall = HallSettings(
        elicense={
            "base_url": "https://elicense.zwfw-340000.svc:8443",
            "token_url": internal,
            "assertion_audience": TOKEN_URL,
            "client_id": "hall-340000",
            "client_key_file": key_file,
            "trust_url": "https://eseal.zwfw-340000.svc:8443/trust",
        }
    )
    library = build_client(hall)
    assert library is not None
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        library.token.http = http  # type: ignore[attr-defined]
        assert library.token() == "token-1"
    sealing = SealServiceConfig(
        base_url="https://eseal.zwfw-340000.svc:8443",
        token_url=internal,
        assertion_audience=TOKEN_URL,
        client_id="hall-340000",
        client_key_file=key_file,
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        tokens = SealClient(sealing, http=http)._client_credentials()
        assert tokens() == "token-2"
    # Called inside the cluster both times; TokenEndpoint checked each assertion's audience.
    assert requested == [internal, internal]
