"""The hub's client at provinces' IdPs called at configured token endpoints
(``province_token_urls``): no discovery there, assertions naming the public token endpoint; and
provinces' libraries called at configured base URLs (``province_elicense_urls``) with the
citizen's consent token still for the registered public library."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from pydantic import ValidationError

from zwfw.services.hub.service.exchange import ElicenseShareClient, ProvinceTokens
from zwfw.services.hub.settings import HubSettings

PUBLIC_IDP = "https://identity.330000.example.gov.cn"
INTERNAL_TOKEN = "https://identity.zwfw-330000.svc:8443/token"
OTHER_IDP = "https://identity.320000.example.gov.cn"
PUBLIC_LIBRARY = "https://elicense.330000.example.gov.cn/api"
INTERNAL_LIBRARY = "https://elicense.zwfw-330000.svc:8443"


def _claims(assertion: str) -> dict[str, Any]:
    payload = assertion.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _http(seen: list[httpx.Request]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            base = f"{request.url.scheme}://{request.url.host}"
            return httpx.Response(200, json={"token_endpoint": f"{base}/oauth/token"})
        if request.url.path.endswith("/copies"):
            return httpx.Response(201, json={"document": ""})
        return httpx.Response(200, json={"access_token": "t", "expires_in": 300})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def _tokens(seen: list[httpx.Request], http: httpx.AsyncClient | None = None) -> ProvinceTokens:
    key = ECKey.generate_key("P-256", private=True)
    return ProvinceTokens(
        http or _http(seen), "national-hub", key, token_urls={"330000": INTERNAL_TOKEN}
    )


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


def _copy(library_urls: dict[str, str]) -> list[httpx.Request]:
    seen: list[httpx.Request] = []
    http = _http(seen)
    share = ElicenseShareClient(http, tokens=_tokens(seen, http), library_urls=library_urls)
    answer = asyncio.run(
        share.annotated_copy(
            {"elicense": PUBLIC_LIBRARY, "identity": PUBLIC_IDP},
            "11330000MB0000000X",
            cause="test",
            expires_at=datetime.now(UTC) + timedelta(days=1),
            subject_token="national",
            recipient="330000",
        )
    )
    assert answer.status_code == 201
    return seen


def test_a_listed_library_is_asked_at_its_configured_url_for_its_public_audience() -> None:
    seen = _copy({"330000": INTERNAL_LIBRARY + "/"})
    exchange = next(r for r in seen if b"token-exchange" in r.content)
    assert dict(httpx.QueryParams(exchange.content.decode()))["audience"] == PUBLIC_LIBRARY
    (copy,) = [r for r in seen if r.url.path.endswith("/copies")]
    assert str(copy.url) == f"{INTERNAL_LIBRARY}/licences/11330000MB0000000X/copies"


def test_a_library_not_listed_is_asked_at_its_registered_url() -> None:
    seen = _copy({"320000": INTERNAL_LIBRARY})
    (copy,) = [r for r in seen if r.url.path.endswith("/copies")]
    assert str(copy.url) == f"{PUBLIC_LIBRARY}/licences/11330000MB0000000X/copies"


@pytest.mark.parametrize("field", ["province_token_urls", "province_elicense_urls"])
@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ({"330100": INTERNAL_TOKEN}, "330100 is not a province-level region code"),
        ({"330000": "identity.zwfw-330000.svc/token"}, "is not an http"),
    ],
)
def test_province_urls_are_checked(field: str, urls: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HubSettings.model_validate({field: urls})
