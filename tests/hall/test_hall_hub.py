"""Hub reporting: settings, and queued reports delivered signed through the outbox."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from joserfc import jwt
from joserfc.jwk import ECKey
from pydantic import ValidationError

from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile
from zwfw.formats.channel import content_digest
from zwfw.services.hall.hub import offset_clock
from zwfw.services.hall.settings import HubSettings
from zwfw.services.kit import outbox

from .support import TokenMint, running_hall


def test_hub_reporting_needs_its_credentials() -> None:
    assert HubSettings().base_url is None
    with pytest.raises(ValidationError, match="signing_key_file"):
        HubSettings(base_url="https://hub.test", token_url="https://idp/token", client_id="c")


def hub_files(tmp_path: Path) -> dict[str, Any]:
    ca = CertificateAuthority.create_root("national CA (test)")
    key = SM2PrivateKey.generate()
    cert = ca.issue(key.public_key, "340000 hall reports", CertProfile.SIGNER)
    (tmp_path / "sign.key").write_bytes(key.to_pem())
    (tmp_path / "sign.crt").write_bytes(cert.to_pem())
    client_key = TokenMint.new_key("hall-client")
    (tmp_path / "client.jwk").write_text(json.dumps(client_key.as_dict(private=True)))
    return {
        "base_url": "http://hub.test",
        "token_url": "http://hub.test/token",
        "client_id": "province-340000",
        "client_key_file": str(tmp_path / "client.jwk"),
        "signing_key_file": str(tmp_path / "sign.key"),
        "signing_cert_file": str(tmp_path / "sign.crt"),
    }


def hub_key(tmp_path: Path) -> ECKey:
    """The public half of the hall's client key written by ``hub_files``."""
    private = ECKey.import_key(json.loads((tmp_path / "client.jwk").read_text()))
    return ECKey.import_key(private.as_dict(private=False))


def fake_hub(
    received: list[dict[str, Any]], fail_first: list[bool], assertions: list[str] | None = None
) -> FastAPI:
    app = FastAPI()

    @app.post("/token")
    async def token(request: Request) -> dict[str, Any]:
        if assertions is not None:
            form = await request.form()
            assertions.append(str(form["client_assertion"]))
        return {"access_token": "hub-token", "token_type": "Bearer", "expires_in": 300}

    @app.post("/reports/{kind}")
    async def report(kind: str, request: Request) -> Any:
        if fail_first and fail_first.pop():
            from fastapi.responses import JSONResponse

            return JSONResponse({"detail": "busy"}, status_code=503)
        body = await request.body()
        received.append({"kind": kind, "headers": dict(request.headers), "body": body})
        return {"stored": True}

    return app


def test_reports_reach_the_hub_signed_after_a_retry(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []
    assertions: list[str] = []
    fail_first = [True]
    # The national IdP called at another address than its public token endpoint.
    audience = "https://identity.national.example/token"
    hub = {**hub_files(tmp_path), "assertion_audience": audience}
    with running_hall(f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path, hub=hub) as hall:
        hall.publish()
        number = hall.apply()["case_number"]
        dispatcher = hall.app.state.hall.dispatcher
        assert dispatcher is not None
        transport = dispatcher.transport
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(fake_hub(received, fail_first, assertions)),
            base_url="http://hub.test",
        )
        transport.client = client
        transport.token.http = client
        dispatcher.base_delay = dispatcher.max_delay = 0.001

        async def deliver() -> list[Any]:
            first = await dispatcher.dispatch_once()
            await asyncio.sleep(0.01)
            second = await dispatcher.dispatch_once()
            return [first, second]

        first, second = asyncio.run(deliver())
        with hall.db() as db:
            states = outbox.counts(db)
    assert (first.retried, second.delivered) == (1, 1)
    assert states == {"pending": 0, "delivered": 1, "rejected": 0}
    (report,) = received
    payload = json.loads(report["body"])
    assert (report["kind"], payload["case_number"]) == ("cases", number)
    headers = report["headers"]
    assert headers["zwfw-sender"] == "340000"
    assert headers["content-digest"] == content_digest(report["body"])
    assert headers["idempotency-key"] == f"340000:case:{number}:v1"
    assert 'alg="sm2-sm3"' in headers["zwfw-signature"]
    assert headers["authorization"] == "Bearer hub-token"
    (assertion,) = assertions
    assert jwt.decode(assertion, hub_key(tmp_path)).claims["aud"] == audience


def test_the_hall_signs_with_its_clock_plus_what_the_offset_file_holds(tmp_path: Path) -> None:
    offset = tmp_path / "clock-offset"
    clock = offset_clock(offset)
    assert abs(clock() - time.time()) < 60  # no file: the host's clock
    offset.write_text("900\n", encoding="utf-8")
    assert 840 < clock() - time.time() < 960  # read at every use: skewed at once
    offset.write_text("ahead", encoding="utf-8")
    assert abs(clock() - time.time()) < 60
    offset.unlink()
    assert abs(clock() - time.time()) < 60
    assert offset_clock(None) is time.time
