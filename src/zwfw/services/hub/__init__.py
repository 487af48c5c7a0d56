"""The national hub (国家政务服务平台 side of the interconnection).

- province registry (``/provinces``): region code, endpoints, mutual-TLS client certificate
  fingerprint and subject, OAuth client at the national IdP, SM2 channel signing certificate
  from the national CA, status (a suspended province's reports are refused);
- report intake (``/reports/catalog``, ``/reports/cases``, ``/reports/evaluations``): signed
  channel messages (``zwfw.formats.channel``), each stored once per idempotency key;
- e-supervision (``/supervision/*``, gauges on ``/metrics``): overdue cases and bad
  evaluations past their rectification deadline;
- cross-province licence exchange (``/exchange/licences``): routed with the citizen's own
  token, recorded, never stored.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine

from zwfw.crypto.sm2 import load_private_key
from zwfw.crypto.x509 import SM2Certificate
from zwfw.formats.channel import ChannelSigner
from zwfw.services.hub.api import ROUTERS
from zwfw.services.hub.service import exchange
from zwfw.services.hub.service.supervision import SupervisionCollector
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import ServiceDefinition, TokenValidator, create_app, kit_state

VERSION = "1.0"
MIGRATIONS = Path(__file__).parent / "migrations"


def _signer(settings: HubSettings) -> ChannelSigner | None:
    if settings.signing_key_file is None or settings.signing_certificate_file is None:
        return None
    key = load_private_key(settings.signing_key_file.read_bytes())
    certificate = SM2Certificate.load(settings.signing_certificate_file.read_bytes())
    return ChannelSigner(settings.channel_id, key, certificate)


def build(
    settings: HubSettings,
    *,
    engine: Engine | None = None,
    http: httpx.AsyncClient | None = None,
) -> FastAPI:
    """The hub app. ``http`` is the client used to reach provinces' libraries (give it the
    hub's mutual-TLS certificate and the national CA bundle); tests pass one with a fake
    transport."""
    owned_http = http is None
    client = http or httpx.AsyncClient(follow_redirects=False)

    async def close_http(app: FastAPI) -> None:
        if owned_http:
            await client.aclose()

    app = create_app(
        settings,
        title="zwfw hub",
        version=VERSION,
        description=__doc__ or "",
        routers=ROUTERS,
        migrations=MIGRATIONS,
        engine=engine,
        on_shutdown=[close_http],
    )
    state = kit_state(app)
    state.metrics.registry.register(SupervisionCollector(state.sessions, settings))
    tokens = None
    if settings.province_client_id and settings.province_client_key_file:
        tokens = exchange.ProvinceTokens.from_key_file(
            client,
            settings.province_client_id,
            settings.province_client_key_file,
            token_urls=settings.province_token_urls,
        )
    app.state.hub_share_client = exchange.ElicenseShareClient(
        client,
        timeout=settings.exchange_timeout_seconds,
        tokens=tokens,
        library_urls=settings.province_elicense_urls,
    )
    app.state.hub_signer = _signer(settings)
    app.state.hub_subject_validator = (
        TokenValidator(settings.subject_tokens, http=None)
        if settings.subject_tokens.configured
        else None
    )
    return app


SERVICE = ServiceDefinition(name="hub", settings_class=HubSettings, factory=build)
