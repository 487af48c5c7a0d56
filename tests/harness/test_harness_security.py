"""The security suite's judgements, offline: the authorization matrix, security headers and
cookies, personal data and secrets, forged tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey

from zwfw.codes.personal import build_resident_id
from zwfw.harness.errors import HarnessConfigError
from zwfw.harness.requirements import conformance_dir
from zwfw.harness.security import (
    IDENTITIES,
    Operation,
    cookie_findings,
    forge_token,
    header_findings,
    judge_cell,
    load_matrix,
    load_operations,
    personal_findings,
    secret_findings,
)

REPO = Path(__file__).resolve().parents[2]
MATRIX = REPO / "security" / "authz-matrix.yaml"
GOOD_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _modes(found: list[tuple[str, str]]) -> set[str]:
    return {mode for mode, _ in found}


def test_the_shipped_matrix_declares_every_operation_of_the_interfaces() -> None:
    operations = load_operations(conformance_dir() / "spec" / "openapi")
    matrix = load_matrix(MATRIX, operations)
    assert matrix.size() == (len(operations), len(IDENTITIES))
    assert len(operations) > 50


def test_an_operation_missing_from_the_matrix_is_refused(tmp_path: Path) -> None:
    operations = load_operations(conformance_dir() / "spec" / "openapi")
    extra = Operation("hall", "DELETE", "/cases/{number}", (), None)
    with pytest.raises(HarnessConfigError, match=r"hall DELETE /cases/\{number\} .* not in"):
        load_matrix(MATRIX, [*operations, extra])


def test_a_matrix_with_an_unknown_outcome_is_refused(tmp_path: Path) -> None:
    text = MATRIX.read_text(encoding="utf-8").replace(
        "anonymous: unauthenticated", "anonymous: maybe", 1
    )
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(HarnessConfigError, match="maybe"):
        load_matrix(tmp_path / "m.yaml", load_operations(conformance_dir() / "spec" / "openapi"))


@pytest.mark.parametrize(
    ("outcome", "status", "fails"),
    [
        ("unauthenticated", 401, False),
        ("unauthenticated", 200, True),
        ("unauthenticated", 403, True),
        ("denied", 403, False),
        ("denied", 404, False),
        ("denied", 201, True),
        ("denied", 302, True),
        ("denied", 500, True),
        ("allowed", 422, False),
        ("allowed", 403, True),
        ("public", 500, False),
    ],
)
def test_cells_are_judged_by_status(outcome: str, status: int, fails: bool) -> None:
    assert (judge_cell(outcome, status) is not None) is fails  # type: ignore[arg-type]


def test_complete_headers_pass() -> None:
    assert header_findings(GOOD_HEADERS, authenticated=True) == []


@pytest.mark.parametrize(
    ("change", "mode"),
    [
        ({"Content-Security-Policy": None}, "SEC-HDR-001:csp-missing"),
        ({"Content-Security-Policy": "default-src 'none'"}, "SEC-HDR-001:frame-ancestors-missing"),
        (
            {"Content-Security-Policy": "script-src 'unsafe-inline'; frame-ancestors 'none'"},
            "SEC-HDR-001:inline-script-allowed",
        ),
        ({"X-Content-Type-Options": None}, "SEC-HDR-001:nosniff-missing"),
        ({"Referrer-Policy": "unsafe-url"}, "SEC-HDR-001:referrer-leak"),
        ({"Cache-Control": "public, max-age=300"}, "SEC-HDR-002:cacheable-authenticated"),
    ],
)
def test_each_missing_header_is_its_failure_mode(change: dict[str, str | None], mode: str) -> None:
    headers = {k: v for k, v in {**GOOD_HEADERS, **change}.items() if v is not None}
    assert _modes(header_findings(headers, authenticated=True)) == {mode}


def test_cacheable_anonymous_responses_are_fine() -> None:
    headers = {**GOOD_HEADERS, "Cache-Control": "public, max-age=300"}
    assert header_findings(headers, authenticated=False) == []


def test_cookies() -> None:
    good = "zwfw_session=abc; HttpOnly; Path=/; SameSite=lax; Secure"
    assert cookie_findings([good], https=True) == []
    assert cookie_findings(["zwfw_session=abc; HttpOnly; Path=/; SameSite=lax"], https=False) == []
    found = cookie_findings(["s=abc; Path=/; SameSite=None"], https=True)
    assert _modes(found) == {
        "SEC-HDR-003:cookie-not-httponly",
        "SEC-HDR-003:cookie-no-samesite",
        "SEC-HDR-003:cookie-not-secure",
    }
    assert all("abc" not in what for _, what in found)


def test_personal_numbers_in_clear_are_found_and_reported_masked() -> None:
    from datetime import date

    number = str(build_resident_id("340104", date(1990, 3, 1), 101))
    found = list(personal_findings(json.dumps({"detail": f"holder {number} unknown"})))
    assert [kind for kind, _ in found] == ["resident-id"]
    assert number not in found[0][1]
    assert list(personal_findings("call 13812345678 now"))[0][0] == "mobile"
    # Masked numbers, credit codes and longer runs are not findings.
    assert list(personal_findings(f"{number[:3]}***********{number[-4:]} 138****5678")) == []
    assert list(personal_findings("91340100MA2N0XXX1X 1701234567890123")) == []
    # An ID-shaped number with a wrong check character is not a resident ID number.
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    assert list(personal_findings(wrong)) == []


def test_secrets() -> None:
    key = ECKey.generate_key("P-256")
    assert secret_findings(json.dumps(key.as_dict(private=True)), tokens=False)
    assert secret_findings(json.dumps(key.as_dict(private=False)), tokens=False) == []
    assert secret_findings(json.dumps({"user": {"password": "s3cret"}}), tokens=False)
    assert secret_findings(json.dumps({"password": "[REDACTED]"}), tokens=False) == []
    pem = "-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----"
    assert secret_findings(pem, tokens=False) == ["a PEM private key"]
    token = jwt.encode({"alg": "ES256"}, {"sub": "x" * 20}, key)
    assert secret_findings(f"Bearer {token}", tokens=True) == ["a bearer token (JWT)"]
    assert secret_findings(f"Bearer {token}", tokens=False) == []


def test_a_forged_token_claims_the_same_but_no_trusted_key_verifies_it() -> None:
    issuer_key = ECKey.generate_key("P-256", parameters={"kid": "idp-1"})
    claims = {"iss": "https://id.example", "sub": "p-1", "aud": ["hall"], "scope": "openid"}
    real = jwt.encode({"alg": "ES256", "kid": "idp-1", "typ": "at+jwt"}, claims, issuer_key)
    forged = forge_token(real)
    header = json.loads(
        __import__("base64").urlsafe_b64decode(forged.split(".")[0] + "==").decode()
    )
    assert header["kid"] == "idp-1"
    assert "jwk" in header
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, issuer_key)
    # It does verify with the key it carries: a validator trusting embedded keys is fooled.
    decoded = jwt.decode(forged, ECKey.import_key(header["jwk"]))
    assert {k: decoded.claims[k] for k in claims} == claims


def test_internal_only_names_listed_services() -> None:
    from pydantic import ValidationError

    from zwfw.harness.profile import TargetProfile

    base = {"name": "p", "region_code": "340000", "services": {"hall": "http://127.0.0.1:1"}}
    profile = TargetProfile.model_validate({**base, "internal_only": ["hall"]})
    assert profile.internal_only == ["hall"]
    assert profile.fingerprint() != TargetProfile.model_validate(base).fingerprint()
    with pytest.raises(ValidationError, match="internal_only names hub"):
        TargetProfile.model_validate({**base, "internal_only": ["hub"]})


def test_mutual_tls_names_listed_services_and_needs_a_client_certificate(
    tmp_path: Path,
) -> None:
    from pydantic import ValidationError

    from zwfw.harness.profile import TargetProfile

    (tmp_path / "client.pem").write_text("certificate")
    (tmp_path / "client.key").write_text("key")
    client = {
        "client_cert": str(tmp_path / "client.pem"),
        "client_key": str(tmp_path / "client.key"),
    }
    base = {"name": "p", "region_code": "340000", "services": {"hub": "https://hub.example:8443"}}
    profile = TargetProfile.model_validate({**base, "tls": {**client, "mutual": ["hub"]}})
    assert profile.tls.mutual == ["hub"]
    plain = TargetProfile.model_validate({**base, "tls": client})
    assert profile.fingerprint() != plain.fingerprint()
    with pytest.raises(ValidationError, match="tls.mutual names hall"):
        TargetProfile.model_validate({**base, "tls": {**client, "mutual": ["hall"]}})
    with pytest.raises(ValidationError, match="mutual needs client_cert"):
        TargetProfile.model_validate({**base, "tls": {"mutual": ["hub"]}})


def test_observers_see_every_response_of_the_harness_clients() -> None:
    import httpx

    from zwfw.harness import http
    from zwfw.harness.profile import TargetProfile

    def app(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=f"seen {request.url.path}")

    profile = TargetProfile.model_validate(
        {"name": "p", "region_code": "340000", "services": {"hall": "http://hall.test"}}
    )
    seen: list[str] = []

    def observer(response: httpx.Response) -> None:
        seen.append(response.text)

    http.observe(observer)
    try:
        with http.service_client(profile, "hall", transport=httpx.MockTransport(app)) as client:
            client.get("cases")
    finally:
        http.unobserve(observer)
    with http.service_client(profile, "hall", transport=httpx.MockTransport(app)) as client:
        client.get("items")
    assert seen == ["seen /cases"]


def test_every_security_suite_requirement_is_opt_in() -> None:
    # A complete run without the suite lists them out of scope instead of untested blockers.
    from zwfw.harness.pytest_plugin import OPT_IN_SUITES
    from zwfw.harness.requirements import load_catalog

    suite = [
        r.id
        for r in load_catalog().requirements
        if r.id.startswith("SEC-") and not r.id.startswith("SEC-AUTH-")
    ]
    assert "SEC-CRY-001" in suite
    assert [rid for rid in suite if not rid.startswith(OPT_IN_SUITES["security"])] == []
