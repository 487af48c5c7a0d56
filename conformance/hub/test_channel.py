"""IC-CHAN-*: the hub's side of the signed channel, exercised as the province under test.

Credentials (environment variables named in the target profile):
``hub_report_token`` — a national-IdP access token of the province's client with ``hub:report``;
``channel_signing_key`` — the province's SM2 channel signing key (PEM);
``channel_key_id`` — the SM3 fingerprint (hex) of its channel signing certificate.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from zwfw.crypto.sm2 import load_private_key
from zwfw.formats.channel import ChannelSigner

from .conftest import case_report, fresh_key

PATH = "/reports/cases"


@pytest.fixture
def signer(credential: Callable[[str], str], target: Any) -> ChannelSigner:
    key = load_private_key(credential("channel_signing_key").encode())
    return ChannelSigner(target.region_code, key, key_id=credential("channel_key_id"))


@pytest.fixture
def token(credential: Callable[[str], str]) -> str:
    return credential("hub_report_token")


def _post(
    hub_client: httpx.Client,
    signer: ChannelSigner,
    token: str,
    body: bytes,
    *,
    sent_body: bytes | None = None,
    now: float | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    # The signature covers the path as the hub sees it (a gateway may mount it under a prefix).
    prefix = httpx.URL(str(hub_client.base_url)).path.rstrip("/")
    signed = headers or signer.headers(
        "POST",
        prefix + PATH,
        body,
        recipient="hub",
        idempotency_key=f"conformance-{uuid.uuid4().hex}",
        now=now,
    )
    return hub_client.post(
        PATH.lstrip("/"),
        content=sent_body if sent_body is not None else body,
        headers={**signed, "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


# An empty object: any message that passes the channel checks is refused as content (422),
# so these probes never store anything at the hub.
PROBE = json.dumps({}).encode()


@pytest.mark.requirement("IC-CHAN-001")
def test_an_unsigned_report_is_refused(hub_client: httpx.Client, token: str) -> None:
    response = hub_client.post(
        PATH.lstrip("/"), content=PROBE, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.requirement("IC-CHAN-001")
def test_a_signed_message_passes_the_channel(hub_client, signer, token) -> None:
    response = _post(hub_client, signer, token, PROBE)
    assert response.status_code == 422, response.text  # channel accepted, empty report refused


@pytest.mark.requirement("IC-CHAN-002")
def test_an_altered_message_is_refused(hub_client, signer, token) -> None:
    response = _post(hub_client, signer, token, PROBE, sent_body=b'{"altered":true}')
    assert response.status_code == 401
    assert response.json().get("reason") == "altered"


@pytest.mark.requirement("IC-CHAN-003")
def test_a_stale_message_is_refused(hub_client, signer, token) -> None:
    response = _post(hub_client, signer, token, PROBE, now=time.time() - 3600)
    assert response.status_code == 401
    assert response.json().get("reason") == "stale"


@pytest.mark.requirement("IC-CHAN-003")
def test_a_replayed_message_is_refused(hub_client, signer, token, target) -> None:
    # A report the hub takes spends its nonce: the same signed message sent again (same nonce,
    # same Idempotency-Key) is a replay and refused, never answered with the first receipt.
    body = json.dumps(case_report(target), ensure_ascii=False, separators=(",", ":")).encode()
    prefix = httpx.URL(str(hub_client.base_url)).path.rstrip("/")
    headers = signer.headers(
        "POST", prefix + PATH, body, recipient="hub", idempotency_key=fresh_key()
    )
    first = _post(hub_client, signer, token, body, headers=headers)
    assert first.status_code == 201, first.text[:300]
    replayed = _post(hub_client, signer, token, body, headers=headers)
    assert replayed.status_code == 409, replayed.text[:300]
    assert replayed.json().get("reason") == "replayed"


@pytest.mark.requirement("IC-CHAN-004")
def test_a_message_signed_for_another_sender_is_refused(hub_client, signer, token) -> None:
    other = ChannelSigner("990000", signer.key, key_id=signer.key_id)
    response = _post(hub_client, other, token, PROBE)
    assert response.status_code in (401, 403)
