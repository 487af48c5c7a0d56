"""The hub's client at provinces' IdPs called at configured token endpoints
(``province_token_urls``): no discovery there, assertions naming the public token endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from pydantic import ValidationError

from zwfw.services.hub.service.exchange import ProvinceTokens
from zwfw.services.hub.settings import HubSettings

PUBLIC_IDP = "https://identity.330000.example.gov.cn"
INTERNAL_TOKEN = "https://identity.zwfw-330000.svc:8443/token"
OTHER_IDP = "https://identity.320000.example.gov.cn"


def _claims(assertion: str) -> dict[str, Any]:
    payload = assertion.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _tokens(seen: list[httpx.Request]) -> ProvinceTokens:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            base = f"{request.url.scheme}://{request.url.host}"
            return httpx.Response(200, json={"token_endpoint": f"{base}/oauth/token"})
        return httpx.Response(200, json={"access_token": "t", "expires_in": 300})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    key = ECKey.generate_key("P-256", private=True)
    return ProvinceTokens(http, "national-hub", key, token_urls={"330000": INTERNAL_TOKEN})


def test_a_listed_province_is_asked_at_its_configured_token_url_naming_its_public_one() -> None:
    seen: list[httpx.Request] = []
    tokens = _tokens(seen)
    asyncio.run(tokens.share_token(PUBLIC_IDP, region="330000"))
    asyncio.run(tokens.consent_token(PUBLIC_IDP, "national", "https://lib", region="330000"))
    assert [str(r.url) for r in seen] == [INTERNAL_TOKEN, INTERNAL_TOKEN]
    for request in seen:
        form = dict(httpx.QueryParams(request.content.decode()))
        assert _claims(form["client_assertion"])["aud"] in (
            f"{PUBLIC_IDP}/token",
            [f"{PUBLIC_IDP}/token"],
        )


def test_a_province_not_listed_is_found_by_discovery_at_its_registered_idp() -> None:
    seen: list[httpx.Request] = []
    tokens = _tokens(seen)
    asyncio.run(tokens.share_token(OTHER_IDP, region="320000"))
    assert [str(r.url) for r in seen] == [
        f"{OTHER_IDP}/.well-known/openid-configuration",
        f"{OTHER_IDP}/oauth/token",
    ]
    form = dict(httpx.QueryParams(seen[1].content.decode()))
    assert _claims(form["client_assertion"])["aud"] in (
        f"{OTHER_IDP}/oauth/token",
        [f"{OTHER_IDP}/oauth/token"],
    )


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ({"330100": INTERNAL_TOKEN}, "330100 is not a province-level region code"),
        ({"330000": "identity.zwfw-330000.svc/token"}, "is not an http"),
    ],
)
def test_province_token_urls_are_checked(urls: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HubSettings(province_token_urls=urls)
