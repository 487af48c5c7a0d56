"""IC-CHAN-001..004: the hub's side of the signed channel, exercised as the province under test.

Credentials (environment variables named in the target profile):
``hub_report_token`` — a national-IdP access token of the province's client with ``hub:report``;
``channel_signing_key`` — the province's SM2 channel signing key (PEM);
``channel_key_id`` — the SM3 fingerprint (hex) of its channel signing certificate;
``hub_supervise_token`` — reads the hub's registry of provinces (another province's key id).

Every refused probe carries an empty report: a message that wrongly passes the channel checks
is refused as content (422), so the probes never store anything at the hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from zwfw.crypto.sm2 import SM2PrivateKey, load_private_key
from zwfw.formats.channel import (
    HEADER_DIGEST,
    HEADER_IDEMPOTENCY_KEY,
    HEADER_NONCE,
    HEADER_RECIPIENT,
    HEADER_SENDER,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    PROBLEM_TYPE_BASE,
    ChannelSigner,
    content_digest,
    signature_base,
)

from .conftest import case_report, fresh_key, hub_clock

PATH = "/reports/cases"
# The window the requirement names; probes stay well clear of its edges on both sides.
WINDOW_SECONDS = 300


@pytest.fixture
def signer(credential: Callable[[str], str], target: Any) -> ChannelSigner:
    key = load_private_key(credential("channel_signing_key").encode())
    return ChannelSigner(target.region_code, key, key_id=credential("channel_key_id"))


@pytest.fixture
def token(credential: Callable[[str], str]) -> str:
    return credential("hub_report_token")


def _prefix(hub_client: httpx.Client) -> str:
    # The signature covers the path as the hub sees it (a gateway may mount it under a prefix).
    return httpx.URL(str(hub_client.base_url)).path.rstrip("/")


def sign(
    hub_client: httpx.Client,
    signer: ChannelSigner,
    body: bytes,
    *,
    method: str = "POST",
    path: str = PATH,
    sender: str | None = None,
    recipient: str = "hub",
    idempotency_key: str | None = None,
    now: float | None = None,
    nonce: str | None = None,
    digest: str | None = None,
    key: SM2PrivateKey | None = None,
    key_id: str | None = None,
    alg: str = "sm2-sm3",
) -> dict[str, str]:
    """Channel headers for ``body``, each signed field overridable (a probe signs what a
    faulty or hostile sender would)."""
    timestamp = int(time.time() if now is None else now)
    nonce = nonce or secrets.token_urlsafe(16)
    digest = digest or content_digest(body)
    sender = sender or signer.sender
    idempotency_key = idempotency_key or fresh_key()
    base = signature_base(
        method=method,
        target=_prefix(hub_client) + path,
        sender=sender,
        recipient=recipient,
        timestamp=timestamp,
        nonce=nonce,
        digest=digest,
        idempotency_key=idempotency_key,
    )
    signature = base64.b64encode((key or signer.key).sign(base)).decode()
    return {
        HEADER_SENDER: sender,
        HEADER_RECIPIENT: recipient,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_DIGEST: digest,
        HEADER_IDEMPOTENCY_KEY: idempotency_key,
        HEADER_SIGNATURE: f'keyid="{key_id or signer.key_id}", alg="{alg}", sig="{signature}"',
    }


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
    signed = headers or sign(hub_client, signer, body, now=now)
    return hub_client.post(
        PATH.lstrip("/"),
        content=sent_body if sent_body is not None else body,
        headers={**signed, "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def refused(response: httpx.Response, statuses: tuple[int, ...], reasons: tuple[str, ...]) -> None:
    """``response`` is a channel refusal: one of ``statuses``, as an RFC 9457 problem whose
    type and ``reason`` name one of ``reasons`` and whose ``status`` member is the status."""
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers.get("content-type", "").startswith("application/problem+json"), (
        response.headers.get("content-type")
    )
    problem = response.json()
    assert problem.get("reason") in reasons, problem
    assert problem.get("type") == PROBLEM_TYPE_BASE + problem["reason"], problem
    assert problem.get("status") == response.status_code, problem


PROBE = json.dumps({}).encode()


# --- IC-CHAN-001 -------------------------------------------------------------------------------


@pytest.mark.requirement("IC-CHAN-001", catches=("header-missing",))
def test_an_unsigned_report_is_refused(hub_client: httpx.Client, token: str) -> None:
    response = hub_client.post(
        PATH.lstrip("/"), content=PROBE, headers={"Authorization": f"Bearer {token}"}
    )
    refused(response, (400,), ("malformed",))


@pytest.mark.requirement("IC-CHAN-001", catches=("header-missing", "refusal-not-problem"))
@pytest.mark.parametrize(
    "header",
    [HEADER_SENDER, HEADER_RECIPIENT, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_DIGEST,
     HEADER_SIGNATURE],
)  # fmt: skip
def test_a_message_without_one_channel_header_is_refused(
    hub_client: httpx.Client, signer: ChannelSigner, token: str, header: str
) -> None:
    headers = sign(hub_client, signer, PROBE)
    del headers[header]
    refused(_post(hub_client, signer, token, PROBE, headers=headers), (400,), ("malformed",))


@pytest.mark.requirement("IC-CHAN-001")
def test_a_signed_message_passes_the_channel(hub_client, signer, token) -> None:
    response = _post(hub_client, signer, token, PROBE)
    assert response.status_code == 422, response.text  # channel accepted, empty report refused
    # Refused as content: a problem naming the fields the empty report lacks.
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {e.get("field") for e in response.json().get("errors", [])}
    assert {"region_code", "version", "case_number"} <= fields, response.json()


@pytest.mark.requirement("IC-CHAN-001", catches=("signature-unverified", "refusal-not-problem"))
@pytest.mark.parametrize("forgery", ["another-key", "not-a-signature", "another-message"])
def test_a_signature_that_does_not_verify_is_refused(
    hub_client: httpx.Client, signer: ChannelSigner, token: str, forgery: str
) -> None:
    if forgery == "another-key":
        # Announces the province's key id, signed with a key nobody registered.
        headers = sign(hub_client, signer, PROBE, key=SM2PrivateKey.generate())
    else:
        headers = sign(hub_client, signer, PROBE)
        if forgery == "not-a-signature":
            junk = base64.b64encode(secrets.token_bytes(71)).decode()
        else:
            # A genuine signature of the province, made over another message.
            other = sign(hub_client, signer, b'{"other":true}')[HEADER_SIGNATURE]
            junk = other.split('sig="')[1].rstrip('"')
        prefix = headers[HEADER_SIGNATURE].split('sig="')[0]
        headers[HEADER_SIGNATURE] = f'{prefix}sig="{junk}"'
    refused(_post(hub_client, signer, token, PROBE, headers=headers), (401,), ("bad-signature",))


@pytest.mark.requirement("IC-CHAN-001", catches=("algorithm-unchecked",))
@pytest.mark.parametrize("algorithm", ["sha-256-digest", "sha-512-digest", "ecdsa-signature"])
def test_another_digest_or_signature_algorithm_is_refused(
    hub_client: httpx.Client, signer: ChannelSigner, token: str, algorithm: str
) -> None:
    # Correctly computed and signed, only with an algorithm the channel does not allow.
    if algorithm == "sha-256-digest":
        digest = f"sha-256=:{base64.b64encode(hashlib.sha256(PROBE).digest()).decode()}:"
        headers = sign(hub_client, signer, PROBE, digest=digest)
    elif algorithm == "sha-512-digest":
        digest = f"sha-512=:{base64.b64encode(hashlib.sha512(PROBE).digest()).decode()}:"
        headers = sign(hub_client, signer, PROBE, digest=digest)
    else:
        headers = sign(hub_client, signer, PROBE, alg="ecdsa-p256-sha256")
    refused(
        _post(hub_client, signer, token, PROBE, headers=headers),
        (400, 401),
        ("malformed", "altered", "bad-signature"),
    )


# --- IC-CHAN-002 -------------------------------------------------------------------------------


@pytest.mark.requirement("IC-CHAN-002", catches=("body-altered",))
def test_an_altered_message_is_refused(hub_client, signer, token) -> None:
    response = _post(hub_client, signer, token, PROBE, sent_body=b'{"altered":true}')
    refused(response, (401,), ("altered",))


def _tampered(
    hub_client: httpx.Client, signer: ChannelSigner, change: str
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a message one signed field of which differs from what was signed."""
    if change == "digest":
        # The body replaced and its digest recomputed: the signature covers the original one.
        headers = sign(hub_client, signer, b'{"original":true}')
        headers[HEADER_DIGEST] = content_digest(PROBE)
    elif change == "path":
        headers = sign(hub_client, signer, PROBE, path="/reports/evaluations")
    elif change == "method":
        headers = sign(hub_client, signer, PROBE, method="PUT")
    elif change == "recipient":
        headers = sign(hub_client, signer, PROBE, recipient="330000")
        headers[HEADER_RECIPIENT] = "hub"
    elif change == "idempotency-key":
        headers = sign(hub_client, signer, PROBE)
        headers[HEADER_IDEMPOTENCY_KEY] = fresh_key()
    elif change == "timestamp":
        headers = sign(hub_client, signer, PROBE)
        headers[HEADER_TIMESTAMP] = str(int(headers[HEADER_TIMESTAMP]) - 1)
    else:
        headers = sign(hub_client, signer, PROBE)
        headers[HEADER_NONCE] = secrets.token_urlsafe(16)
    return headers, PROBE


@pytest.mark.requirement("IC-CHAN-002", catches=("digest-swapped",))
def test_a_body_with_a_recomputed_digest_is_refused(hub_client, signer, token) -> None:
    headers, body = _tampered(hub_client, signer, "digest")
    refused(_post(hub_client, signer, token, body, headers=headers), (401,), ("bad-signature",))


@pytest.mark.requirement("IC-CHAN-002", catches=("path-unbound", "method-unbound"))
@pytest.mark.parametrize("change", ["path", "method"])
def test_a_message_signed_for_another_request_is_refused(hub_client, signer, token, change) -> None:
    headers, body = _tampered(hub_client, signer, change)
    refused(_post(hub_client, signer, token, body, headers=headers), (401,), ("bad-signature",))


@pytest.mark.requirement("IC-CHAN-002", catches=("recipient-unbound",))
def test_a_message_readdressed_to_the_hub_is_refused(hub_client, signer, token) -> None:
    headers, body = _tampered(hub_client, signer, "recipient")
    refused(_post(hub_client, signer, token, body, headers=headers), (401,), ("bad-signature",))


@pytest.mark.requirement("IC-CHAN-002", catches=("key-unbound",))
def test_an_idempotency_key_changed_after_signing_is_refused(hub_client, signer, token) -> None:
    headers, body = _tampered(hub_client, signer, "idempotency-key")
    refused(_post(hub_client, signer, token, body, headers=headers), (401,), ("bad-signature",))


@pytest.mark.requirement("IC-CHAN-002", catches=("time-nonce-unbound",))
@pytest.mark.parametrize("change", ["timestamp", "nonce"])
def test_a_time_or_nonce_changed_after_signing_is_refused(
    hub_client, signer, token, change
) -> None:
    headers, body = _tampered(hub_client, signer, change)
    refused(_post(hub_client, signer, token, body, headers=headers), (401,), ("bad-signature",))


# --- IC-CHAN-003 -------------------------------------------------------------------------------


@pytest.mark.requirement("IC-CHAN-003", catches=("past-unchecked",))
@pytest.mark.parametrize("age", [2 * WINDOW_SECONDS, 3600, 86400])
def test_a_stale_message_is_refused(hub_client, signer, token, age) -> None:
    now = hub_clock(hub_client)
    refused(_post(hub_client, signer, token, PROBE, now=now - age), (401,), ("stale",))


@pytest.mark.requirement("IC-CHAN-003", catches=("future-unchecked",))
@pytest.mark.parametrize("ahead", [2 * WINDOW_SECONDS, 3600, 86400])
def test_a_message_from_the_future_is_refused(hub_client, signer, token, ahead) -> None:
    now = hub_clock(hub_client)
    refused(_post(hub_client, signer, token, PROBE, now=now + ahead), (401,), ("stale",))


@pytest.mark.requirement("IC-CHAN-003", catches=("window-too-narrow",))
@pytest.mark.parametrize("offset", [-60, 60])
def test_a_message_inside_the_window_passes(hub_client, signer, token, offset) -> None:
    now = hub_clock(hub_client)
    response = _post(hub_client, signer, token, PROBE, now=now + offset)
    assert response.status_code == 422, response.text[:300]  # the channel took it


@pytest.mark.requirement("IC-CHAN-003", catches=("replay-after-acceptance",))
def test_a_replayed_message_is_refused(hub_client, signer, token, target) -> None:
    # A report the hub takes spends its nonce: the same signed message sent again (same nonce,
    # same Idempotency-Key) is a replay and refused, never answered with the first receipt.
    body = json.dumps(case_report(target), ensure_ascii=False, separators=(",", ":")).encode()
    headers = sign(hub_client, signer, body)
    first = _post(hub_client, signer, token, body, headers=headers)
    assert first.status_code == 201, first.text[:300]
    replayed = _post(hub_client, signer, token, body, headers=headers)
    refused(replayed, (409,), ("replayed",))


@pytest.mark.requirement("IC-CHAN-003", catches=("nonce-per-message",))
def test_a_spent_nonce_is_refused_in_a_new_message(hub_client, signer, token, target) -> None:
    body = json.dumps(case_report(target), ensure_ascii=False, separators=(",", ":")).encode()
    nonce = secrets.token_urlsafe(16)
    first = _post(
        hub_client, signer, token, body, headers=sign(hub_client, signer, body, nonce=nonce)
    )
    assert first.status_code == 201, first.text[:300]
    # Another message (another body, another Idempotency-Key, a later time) with that nonce.
    reused = sign(hub_client, signer, PROBE, nonce=nonce, now=time.time() + 1)
    refused(_post(hub_client, signer, token, PROBE, headers=reused), (409,), ("replayed",))


# --- IC-CHAN-004 -------------------------------------------------------------------------------


def _other_province(
    hub_client: httpx.Client, credential: Callable[[str], str], region: str
) -> dict[str, Any] | None:
    """Another province registered at the hub, or None when the hub knows only this one."""
    answer = hub_client.get(
        "provinces", headers={"Authorization": f"Bearer {credential('hub_supervise_token')}"}
    )
    assert answer.status_code == 200, f"GET provinces: {answer.status_code} {answer.text[:200]}"
    others = [p for p in answer.json() if p["region_code"] != region]
    return others[0] if others else None


@pytest.mark.requirement("IC-CHAN-004", catches=("unregistered-sender",))
def test_a_message_signed_for_another_sender_is_refused(hub_client, signer, token) -> None:
    other = ChannelSigner("990000", signer.key, key_id=signer.key_id)
    response = _post(hub_client, other, token, PROBE, headers=sign(hub_client, other, PROBE))
    refused(response, (401, 403), ("unknown-sender", "sender-mismatch", "bad-signature"))


@pytest.mark.requirement("IC-CHAN-004", catches=("foreign-sender",))
def test_a_message_in_another_provinces_name_is_refused(
    hub_client, signer, token, credential, target
) -> None:
    other = _other_province(hub_client, credential, target.region_code)
    sender = other["region_code"] if other else "990000"
    key_id = other["signing_key_id"] if other else signer.key_id
    for announced in {signer.key_id, key_id}:
        headers = sign(hub_client, signer, PROBE, sender=sender, key_id=announced)
        refused(
            _post(hub_client, signer, token, PROBE, headers=headers),
            (401, 403),
            ("unknown-sender", "sender-mismatch", "bad-signature"),
        )


@pytest.mark.requirement("IC-CHAN-004", catches=("foreign-key-id",))
def test_a_key_id_not_registered_for_the_sender_is_refused(
    hub_client, signer, token, credential, target
) -> None:
    other = _other_province(hub_client, credential, target.region_code)
    announced = [uuid.uuid4().hex + uuid.uuid4().hex]
    if other:
        announced.append(other["signing_key_id"])
    for key_id in announced:
        headers = sign(hub_client, signer, PROBE, key_id=key_id)
        refused(
            _post(hub_client, signer, token, PROBE, headers=headers), (401,), ("bad-signature",)
        )
