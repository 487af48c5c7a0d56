"""The signed province↔hub channel format: what a receiver accepts and refuses, and why."""

from __future__ import annotations

import base64
import time

import pytest

from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile
from zwfw.formats.channel import (
    ChannelError,
    ChannelSigner,
    ChannelVerifier,
    RegisteredSender,
    VerifiedMessage,
    certificate_key_id,
    content_digest,
    signature_base,
)

BODY = b'{"case_no":"11370800MB285591843370117002011202501020001"}'
PATH = "/reports/cases"


@pytest.fixture(scope="module")
def national_ca() -> CertificateAuthority:
    return CertificateAuthority.create_root("National channel CA", organization="zwfw")


@pytest.fixture(scope="module")
def province_key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


@pytest.fixture(scope="module")
def signer(national_ca: CertificateAuthority, province_key: SM2PrivateKey) -> ChannelSigner:
    cert = national_ca.issue(province_key.public_key, "340000 channel", CertProfile.SIGNER)
    return ChannelSigner("340000", province_key, cert)


@pytest.fixture
def registered(signer: ChannelSigner) -> RegisteredSender:
    assert signer.certificate is not None
    return RegisteredSender(
        sender="340000",
        signing_key=signer.certificate.public_key,
        key_id=certificate_key_id(signer.certificate),
        oauth_client_id="province-340000",
        tls_fingerprint="ab" * 32,
    )


@pytest.fixture
def verifier() -> ChannelVerifier:
    return ChannelVerifier("hub", window_seconds=300)


def _verify(
    verifier: ChannelVerifier,
    headers: dict[str, str],
    registered: RegisteredSender | None,
    *,
    body: bytes = BODY,
    path: str = PATH,
    client_id: str | None = "province-340000",
    fingerprint: str | None = "ab" * 32,
    now: float | None = None,
) -> object:
    return verifier.verify(
        "POST",
        path,
        headers,
        body,
        sender=registered,
        client_id=client_id,
        tls_fingerprint=fingerprint,
        now=now,
    )


def _reason(excinfo: pytest.ExceptionInfo[ChannelError]) -> tuple[int, str]:
    return excinfo.value.status, excinfo.value.reason


def test_a_signed_message_verifies(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub", idempotency_key="msg-00000001")
    message = _verify(verifier, headers, registered)
    assert message.sender == "340000"
    assert message.idempotency_key == "msg-00000001"
    assert headers["Content-Digest"].startswith("sm3=:")


def test_header_names_are_case_insensitive_for_lowercased_frameworks(
    signer, registered, verifier
) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    lowered = {k.lower(): v for k, v in headers.items()}
    assert _verify(verifier, lowered, registered).sender == "340000"


def test_an_altered_body_is_refused(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered, body=BODY.replace(b"0001", b"0002"))
    assert _reason(excinfo) == (401, "altered")


def test_a_body_and_digest_altered_together_fail_the_signature(
    signer, registered, verifier
) -> None:
    altered = BODY.replace(b"0001", b"0002")
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    headers["Content-Digest"] = signer.headers("POST", PATH, altered, recipient="hub")[
        "Content-Digest"
    ]
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered, body=altered)
    assert _reason(excinfo) == (401, "bad-signature")


def test_a_changed_idempotency_key_fails_the_signature(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub", idempotency_key="msg-00000001")
    headers["Idempotency-Key"] = "msg-00000002"
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered)
    assert _reason(excinfo) == (401, "bad-signature")


def test_a_message_cannot_be_replayed_at_another_endpoint(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered, path="/reports/evaluations")
    assert _reason(excinfo) == (401, "bad-signature")


def test_a_message_for_another_recipient_is_refused(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="330000")
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered)
    assert _reason(excinfo) == (401, "wrong-recipient")


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_stale_or_future_timestamps_are_refused(signer, registered, verifier, skew) -> None:
    now = time.time()
    headers = signer.headers("POST", PATH, BODY, recipient="hub", now=now + skew)
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered, now=now)
    assert _reason(excinfo) == (401, "stale")


def test_timestamps_inside_the_window_are_accepted(signer, registered, verifier) -> None:
    now = time.time()
    headers = signer.headers("POST", PATH, BODY, recipient="hub", now=now - 299)
    assert _verify(verifier, headers, registered, now=now).sender == "340000"


def test_a_key_not_registered_for_the_sender_is_refused(registered, verifier) -> None:
    impostor = ChannelSigner("340000", SM2PrivateKey.generate(), key_id=registered.key_id)
    headers = impostor.headers("POST", PATH, BODY, recipient="hub")
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered)
    assert _reason(excinfo) == (401, "bad-signature")


def test_another_key_id_is_refused(registered, verifier) -> None:
    other = ChannelSigner("340000", SM2PrivateKey.generate(), key_id="ff" * 32)
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, other.headers("POST", PATH, BODY, recipient="hub"), registered)
    assert _reason(excinfo) == (401, "bad-signature")


def test_unknown_and_suspended_senders_are_refused(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, None)
    assert _reason(excinfo) == (401, "unknown-sender")
    suspended = RegisteredSender(**{**registered.__dict__, "active": False})
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, suspended)
    assert _reason(excinfo) == (403, "sender-suspended")


def test_the_sender_is_bound_to_its_oauth_client(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered, client_id="province-330000")
    assert _reason(excinfo) == (403, "sender-mismatch")


def test_the_sender_is_bound_to_its_tls_client_certificate(signer, registered) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    with pytest.raises(ChannelError) as excinfo:
        _verify(ChannelVerifier("hub"), headers, registered, fingerprint="cd" * 32)
    assert _reason(excinfo) == (403, "sender-mismatch")
    strict = ChannelVerifier("hub", require_client_certificate=True)
    with pytest.raises(ChannelError) as excinfo:
        _verify(strict, headers, registered, fingerprint=None)
    assert _reason(excinfo) == (401, "sender-mismatch")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Zwfw-Timestamp", "yesterday"),
        ("Zwfw-Nonce", "short"),
        ("Content-Digest", "sha-256=:abc=:"),
        ("Zwfw-Signature", 'keyid="x", alg="ES256", sig="AA=="'),
        ("Zwfw-Signature", "garbage"),
        ("Zwfw-Sender", "../etc"),
        ("Idempotency-Key", "a b"),
    ],
)
def test_malformed_headers_are_a_400(signer, registered, verifier, header, value) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub", idempotency_key="msg-00000001")
    headers[header] = value
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered)
    assert _reason(excinfo) == (400, "malformed")


def test_missing_signature_is_a_400(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    del headers["Zwfw-Signature"]
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered)
    assert _reason(excinfo) == (400, "malformed")
    assert "Zwfw-Signature" in (excinfo.value.detail or "")


def test_a_refusal_names_its_problem_type_status_and_reason(signer, registered, verifier) -> None:
    headers = signer.headers("POST", PATH, BODY, recipient="hub")
    with pytest.raises(ChannelError) as excinfo:
        _verify(verifier, headers, registered, body=b"{}")
    refusal = excinfo.value
    assert refusal.problem_type == "urn:zwfw:problem:channel:altered"
    assert (refusal.status, refusal.reason) == (401, "altered")
    assert str(refusal) == "401 altered: the body does not match its Content-Digest"


def test_the_signature_covers_the_documented_base_with_the_sm3_digest(signer) -> None:
    """Another implementation must be able to rebuild the signed bytes from the headers alone."""
    headers = signer.headers(
        "post", PATH, BODY, recipient="hub", idempotency_key="msg-00000001", now=1767225600,
        nonce="bm9uY2Utbm9uY2Utbm9uY2U",
    )  # fmt: skip
    digest = "sm3=:" + base64.b64encode(sm3(BODY)).decode() + ":"
    assert headers["Content-Digest"] == content_digest(BODY) == digest
    base = signature_base(
        method="POST", target=PATH, sender="340000", recipient="hub", timestamp=1767225600,
        nonce="bm9uY2Utbm9uY2Utbm9uY2U", digest=digest, idempotency_key="msg-00000001",
    )  # fmt: skip
    assert (
        base
        == (
            "zwfw-channel/1\nPOST\n/reports/cases\n340000\nhub\n1767225600\n"
            "bm9uY2Utbm9uY2Utbm9uY2U\n" + digest + "\nmsg-00000001"
        ).encode()
    )
    params = dict(part.strip().split("=", 1) for part in headers["Zwfw-Signature"].split(","))
    assert params["keyid"] == f'"{certificate_key_id(signer.certificate)}"'
    assert params["alg"] == '"sm2-sm3"'
    signature = base64.b64decode(params["sig"].strip('"'))
    assert signer.certificate.public_key.verify(signature, base)


def test_a_verified_message_expires_one_second_after_its_window(
    signer, registered, verifier
) -> None:
    now = time.time()
    headers = signer.headers("POST", PATH, BODY, recipient="hub", now=now)
    message = _verify(verifier, headers, registered, now=now)
    assert isinstance(message, VerifiedMessage)
    assert message.expires_at.timestamp() == int(now) + 300 + 1


def test_signer_refuses_a_key_that_does_not_match_its_certificate(signer) -> None:
    with pytest.raises(ValueError, match="does not match"):
        ChannelSigner("340000", SM2PrivateKey.generate(), signer.certificate)
