"""Redaction of evidence: every place a credential or an ID number can hide in an exchange."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from zwfw.codes.personal import build_resident_id
from zwfw.harness.evidence import EvidenceLog, describe_body
from zwfw.harness.redact import REDACTED, REDACTED_JWT, Redactor

RESIDENT_ID = str(build_resident_id("340104", dt.date(1990, 5, 17), 123))
PHONE = "13812345678"
# Three-part JWS and five-part JWE compact tokens.
JWS = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJjaXRpemVuLTEifQ.c2lnbmF0dXJlLWJ5dGVz_-x"
JWE = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVydGV4dA.dGFn"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEG\n-----END PRIVATE KEY-----"
PRIVATE_D = "n3Xs9-PrivateScalar-dValue"
PROFILE_SECRET = "correct-horse-battery-staple"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([PROFILE_SECRET])


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Authorization", f"Bearer {JWS}", f"Bearer {REDACTED}"),
        ("authorization", "Basic Y2xpZW50OnNlY3JldA==", f"Basic {REDACTED}"),
        ("Proxy-Authorization", "Negotiate abc", f"Negotiate {REDACTED}"),
        ("Cookie", "sid=s3cr3t; theme=dark", f"sid={REDACTED}; theme={REDACTED}"),
        (
            "Set-Cookie",
            "sid=s3cr3t; Path=/; Secure; HttpOnly; SameSite=Lax",
            f"sid={REDACTED}; Path=/; Secure; HttpOnly; SameSite=Lax",
        ),
        ("X-Api-Key", "k-123456", REDACTED),
        ("X-CSRF-Token", "t-123456", REDACTED),
        ("X-Client-Secret", "cs-123456", REDACTED),
        ("DPoP", JWS, REDACTED_JWT),
        ("Location", "https://rp.example/cb?code=abc123&state=xyz", None),
        ("X-Holder", f"holder {RESIDENT_ID}", "holder 340***********" + RESIDENT_ID[-4:]),
        ("X-Debug", f"used {PROFILE_SECRET} here", f"used {REDACTED} here"),
        ("Content-Type", "application/json", "application/json"),
    ],
)
def test_headers(redactor: Redactor, name: str, value: str, expected: str | None) -> None:
    redacted = redactor.header(name, value)
    if expected is not None:
        assert redacted == expected
    else:
        assert "abc123" not in redacted
        assert "state=xyz" in redacted  # state is not a credential; it stays readable


@pytest.mark.parametrize(
    "secret_field",
    [
        "code",
        "code_verifier",
        "refresh_token",
        "access_token",
        "id_token",
        "client_assertion",
        "subject_token",
        "actor_token",
        "client_secret",
        "password",
        "new_password",
        "id_token_hint",
    ],
)
def test_query_string_and_fragment_fields(redactor: Redactor, secret_field: str) -> None:
    url = f"https://idp.example/authorize?{secret_field}=V4lue-9x&client_id=rp-1#{secret_field}=F"
    redacted = redactor.url(url)
    assert "V4lue-9x" not in redacted
    assert "=F" not in redacted
    assert f"{secret_field}={REDACTED}" in redacted
    assert "client_id=rp-1" in redacted


def test_url_user_info_path_ids_and_jwts(redactor: Redactor) -> None:
    redacted = redactor.url(
        f"https://user:pa55@hub.example/persons/{RESIDENT_ID}/licences?request={JWS}&n={PHONE}"
    )
    assert "pa55" not in redacted
    assert "user:" not in redacted
    assert RESIDENT_ID not in redacted
    assert JWS not in redacted
    assert PHONE not in redacted
    assert "138****5678" in redacted
    assert redacted.startswith(f"https://{REDACTED}@hub.example/persons/340")


def test_json_bodies(redactor: Redactor) -> None:
    document = {
        "access_token": JWS,
        "refresh_token": "opaque-refresh-1",
        "id_token": JWS,
        "token_type": "Bearer",
        "expires_in": 300,
        "token_endpoint": "https://idp.example/token",
        "client": {"client_secret": "cs-1", "password": "pw-1", "otp": "123456"},
        "keys": [
            {"kty": "EC", "crv": "P-256", "x": "pubX", "y": "pubY", "d": PRIVATE_D},
            {"kty": "RSA", "n": "modulus", "e": "AQAB", "d": "rsa-private-d", "p": "rsa-p"},
            {"kty": "oct", "k": "symmetric-key-bytes"},
        ],
        # A private JWK passed as a JSON string, and text with embedded secrets.
        "client_key": json.dumps({"kty": "EC", "x": "pubX", "d": PRIVATE_D}),
        "note": f"issued {JWE} to {RESIDENT_ID}, phone {PHONE}",
        "pem": PEM_KEY,
        "code": "11370800MB285591843370117002011",
        "holder": {"id_number": RESIDENT_ID, "credit_code": "11370800MB28559184"},
        "echo": f"grant_type=authorization_code&code=c0de-1&code_verifier=v3r-1&x={PROFILE_SECRET}",
    }
    redacted = redactor.json_value(document)
    text = json.dumps(redacted, ensure_ascii=False)
    for secret in (
        JWS,
        JWE,
        "opaque-refresh-1",
        "cs-1",
        "pw-1",
        "123456",
        PRIVATE_D,
        "rsa-private-d",
        "rsa-p",
        "symmetric-key-bytes",
        "MIGHAgEAMBMGByqGSM49AgEG",
        RESIDENT_ID,
        PHONE,
        "c0de-1",
        "v3r-1",
        PROFILE_SECRET,
    ):
        assert secret not in text, secret
    # What a reviewer needs stays.
    assert redacted["token_type"] == "Bearer"
    assert redacted["expires_in"] == 300
    assert redacted["token_endpoint"] == "https://idp.example/token"
    assert redacted["keys"][0] == {
        "kty": "EC",
        "crv": "P-256",
        "x": "pubX",
        "y": "pubY",
        "d": REDACTED,
    }
    assert redacted["keys"][1]["n"] == "modulus"
    assert redacted["keys"][2]["k"] == REDACTED
    assert json.loads(redacted["client_key"]) == {"kty": "EC", "x": "pubX", "d": REDACTED}
    assert redacted["code"] == "11370800MB285591843370117002011"  # a catalog code, not OAuth
    assert redacted["holder"]["credit_code"] == "11370800MB28559184"
    assert redacted["holder"]["id_number"] == "340***********" + RESIDENT_ID[-4:]


def test_form_bodies(redactor: Redactor) -> None:
    form = (
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
        f"&subject_token={JWS}&client_assertion={JWS}"
        "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        "&code=c0de-1&code_verifier=v3r-1&refresh_token=rt-1&password=pw-1&username=alice"
        f"&redirect_uri=https%3A%2F%2Frp.example%2Fcb&id_number={RESIDENT_ID}"
    )
    body = describe_body(
        form.encode(),
        httpx.Headers({"content-type": "application/x-www-form-urlencoded"}),
        redactor,
    )
    fields = dict(body["form"])
    for name in ("subject_token", "client_assertion", "code", "code_verifier"):
        assert fields[name] == REDACTED
    assert fields["refresh_token"] == REDACTED
    assert fields["password"] == REDACTED
    assert fields["username"] == "alice"
    assert fields["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert fields["redirect_uri"] == "https://rp.example/cb"
    assert fields["id_number"] == "340***********" + RESIDENT_ID[-4:]
    assert "jwt-bearer" in fields["client_assertion_type"]


def test_text_html_and_multipart_bodies(redactor: Redactor) -> None:
    html = (
        '<form method="post"><input type="hidden" name="csrf_token" value="csrf-1">'
        '<input name="username" value="alice"><input value="pw-1" type="password" name="password">'
        f'</form><a href="/cb?code=c0de-1&amp;state=s">go</a><pre>{JWS}</pre>'
        f'<script>var cfg = {{"client_secret": "cs-1", "d": "{PRIVATE_D}"}};</script>'
        f"<p>Bearer opaqueBearerValue1 {RESIDENT_ID}</p>"
    )
    body = describe_body(
        html.encode(), httpx.Headers({"content-type": "text/html; charset=utf-8"}), redactor
    )
    text = body["text"]
    for secret in ("csrf-1", "pw-1", "c0de-1", JWS, "cs-1", PRIVATE_D, "opaqueBearerValue1"):
        assert secret not in text, secret
    assert RESIDENT_ID not in text
    assert 'name="username" value="alice"' in text

    multipart = (
        '--b\r\nContent-Disposition: form-data; name="password"\r\n\r\npw-1\r\n'
        '--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--b--\r\n'
    )
    body = describe_body(
        multipart.encode(),
        httpx.Headers({"content-type": "multipart/form-data; boundary=b"}),
        redactor,
    )
    assert "pw-1" not in body["text"]
    assert "hello" in body["text"]


def test_binary_bodies_are_described_not_copied(redactor: Redactor) -> None:
    content = b"%PDF-1.7\x00\x01" + PROFILE_SECRET.encode()
    body = describe_body(content, httpx.Headers({"content-type": "application/pdf"}), redactor)
    assert body["omitted"] == "binary content"
    assert body["size"] == len(content)
    assert "text" not in body
    assert len(body["sha256"]) == 64


def test_evidence_log_writes_redacted_exchanges(tmp_path, redactor: Redactor) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"access_token": JWS, "echo": request.content.decode(), "holder": RESIDENT_ID},
            headers={"Set-Cookie": "sid=s3cr3t-cookie; HttpOnly"},
        )

    log = EvidenceLog(tmp_path / "evidence", redactor)
    with httpx.Client(
        transport=httpx.MockTransport(reply), event_hooks=log.event_hooks()
    ) as client:
        client.get("https://outside.example/")  # outside any test: not recorded
        log.begin("conformance/x/test_a.py::test_token")
        response = client.post(
            "https://idp.example/token?audience=hub",
            data={"code": "c0de-1", "client_secret": PROFILE_SECRET},
            headers={"Authorization": "Basic Y2xpZW50OnNlY3JldA=="},
        )
        # The test itself still sees the real response.
        assert response.json()["access_token"] == JWS
        name = log.finish("conformance/x/test_a.py::test_token", ["IC-ID-001"], "passed")
    assert name is not None
    assert log.finish("conformance/x/test_a.py::test_none", [], "passed") is None
    raw = (tmp_path / "evidence" / name).read_text(encoding="utf-8")
    for secret in (JWS, RESIDENT_ID, "c0de-1", PROFILE_SECRET, "s3cr3t-cookie", "Y2xpZW50"):
        assert secret not in raw, secret
    document = json.loads(raw)
    assert document["test"] == "conformance/x/test_a.py::test_token"
    assert document["requirements"] == ["IC-ID-001"]
    [exchange] = document["exchanges"]
    assert exchange["request"]["method"] == "POST"
    assert exchange["request"]["url"] == "https://idp.example/token?audience=hub"
    assert exchange["response"]["status"] == 200
    assert exchange["duration_ms"] >= 0
    assert ["set-cookie", f"sid={REDACTED}; HttpOnly"] in exchange["response"]["headers"]


def test_text_in_declared_charsets(redactor: Redactor) -> None:
    text = f"申请人 张三 身份证 {RESIDENT_ID} code=c0de-1"
    for charset in ("utf-8", "gb18030"):
        body = describe_body(
            text.encode(charset),
            httpx.Headers({"content-type": f"text/plain; charset={charset}"}),
            redactor,
        )
        assert body["text"].startswith("申请人 张三 身份证 340***********")
        assert "c0de-1" not in body["text"]
