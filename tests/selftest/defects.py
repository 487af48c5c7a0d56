"""Known-bad variants of the reference province: one seeded defect each, and the requirements
the conformance suites must fail because of it (exactly those, nothing else).

Every defect is a proxy coroutine (see ``proxy.py``) in front of one service of the province
under test. Where a defect needs something the province has (a channel signing key, an
issuer's token, who its test persons are), it gets it from ``Province`` below, as a faulty
implementation of that service would have it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from zwfw.codes import CodeError, parse_implementation_code, parse_licence_id
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.formats.channel import ChannelSigner, content_digest, signature_base

from .proxy import Defect, Forward, ProxyRequest, ProxyResponse

BEIJING = ZoneInfo("Asia/Shanghai")
CHANNEL_WINDOW_SECONDS = 300


@dataclass(frozen=True)
class Province:
    """What a defect may need from the province under test."""

    region: str
    channel_key: SM2PrivateKey
    channel_key_id: str
    issuer_token: str  # the e-licence issuer's token (scope elicense:issue)
    id_numbers: dict[str, str]  # the IdP's test persons: sub -> resident ID number
    passwords: dict[str, str]  # the IdP's test persons: login name -> password
    idp_url: str  # the province IdP's issuer URL


@dataclass(frozen=True)
class Variant:
    name: str
    service: str  # identity | hall | elicense | eseal | hub
    defect: str  # one line for the detection table
    expected: frozenset[str]  # requirement IDs that must fail, and no others
    make: Callable[[Province], Defect]
    # The suites certified through the defect; () for the default suites. Variants of the
    # opt-in security suite name it (with conformance, so the run is complete).
    suites: tuple[str, ...] = ()


def _walk(value: Any, strings: Callable[[str], str] | None = None,
          objects: Callable[[dict[str, Any]], None] | None = None) -> Any:  # fmt: skip
    """``value`` with every string passed through ``strings``; ``objects`` sees every dict
    (after its members were walked) and may change it in place."""
    if isinstance(value, dict):
        walked = {k: _walk(v, strings, objects) for k, v in value.items()}
        if objects is not None:
            objects(walked)
        return walked
    if isinstance(value, list):
        return [_walk(v, strings, objects) for v in value]
    if isinstance(value, str) and strings is not None:
        return strings(value)
    return value


def _other_digit(character: str) -> str:
    return "1" if character == "0" else "0"


def jwt_part(token: str, index: int) -> dict[str, Any] | None:
    """A JWT's header (0) or payload (1), read without verifying anything (as defects do)."""
    try:
        part = token.split(".")[index]
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def bearer(request: ProxyRequest) -> str | None:
    """The request's bearer token, if it has one."""
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class KeysReadOnce:
    """A service reads its IdP's JWKS once, when it starts, and never again: a token of a key
    the IdP rotated in later is refused as signed by an unknown key."""

    def __init__(self, idp_url: str) -> None:
        self.issuer = idp_url.rstrip("/")
        keys = httpx.get(self.issuer + "/jwks", timeout=20.0).json()["keys"]
        self.kids = {key.get("kid") for key in keys}

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        token = bearer(request) or ""
        header, claims = jwt_part(token, 0), jwt_part(token, 1)
        issuer = str((claims or {}).get("iss", "")).rstrip("/")
        if header is not None and issuer == self.issuer and header.get("kid") not in self.kids:
            detail = f"the token is signed with an unknown key (kid {header.get('kid')!r})"
            problem = {"type": "about:blank", "title": "Unauthorized", "status": 401,
                       "detail": detail}  # fmt: skip
            headers = [("content-type", "application/problem+json"),
                       ("www-authenticate", 'Bearer error="invalid_token"')]  # fmt: skip
            return ProxyResponse(401, headers, json.dumps(problem).encode())
        return await forward(request)


def _json_body(response: ProxyResponse) -> bool:
    return response.is_json and bool(response.body)


# --- e-licence -------------------------------------------------------------------------------


class WrongLicenceCheckCharacter:
    """Licences are shown with a wrong GB/T 36904 check character (a miscomputed check), while
    the service still finds them by the identifier it shows."""

    def __init__(self) -> None:
        self.real: dict[str, str] = {}  # shown identifier -> stored identifier

    def _shown(self, text: str) -> str:
        try:
            parse_licence_id(text)
        except CodeError:
            return text
        shown = text[:-1] + _other_digit(text[-1])
        self.real[shown] = text
        return shown

    def _stored(self, text: str) -> str:
        for shown, real in self.real.items():
            text = text.replace(shown, real)
        return text

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        request = replace(request, path=self._stored(request.path))
        if request.is_json and request.body:
            request = request.with_json(_walk(request.json(), self._stored))
        response = await forward(request)
        if _json_body(response):
            response = response.with_json(_walk(response.json(), self._shown))
        return response


def holder_check_missing(province: Province) -> Defect:
    """A holder's licence lookup falls back to the issuer's view: any holder reads any
    licence by its identifier."""

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        own = re.fullmatch(r"/me/licences/([^/]+)", request.path)
        if request.method == "GET" and own and response.status == 404:
            anyone = ProxyRequest(
                "GET",
                f"/licences/{own[1]}",
                headers=[("authorization", f"Bearer {province.issuer_token}")],
            )
            found = await forward(anyone)
            if found.status == 200:
                return found
        return response

    return defect


async def copy_expiry_not_refused(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """An annotated copy asked for beyond the longest allowed life is not refused: it is made,
    silently cut to the limit."""
    response = await forward(request)
    copies = re.fullmatch(r"/licences/[^/]+/copies", request.path)
    if request.method != "POST" or not copies or response.status != 400:
        return response
    limit = re.search(r"at most (\d+) days", str(response.json().get("detail", "")))
    if limit is None:
        return response
    body = request.json()
    longest = datetime.now(UTC) + timedelta(days=int(limit[1])) - timedelta(minutes=5)
    body["expires_at"] = longest.replace(microsecond=0).isoformat()
    return await forward(request.with_json(body))


async def registry_not_compared(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Verification never compares a presented document with what the registry issued: a
    document re-sealed under an issued identifier (or copy id) verifies as valid."""
    response = await forward(request)
    if request.method != "POST" or request.path != "/verify" or not _json_body(response):
        return response
    result = response.json()
    checks = result.get("checks") or []
    registry = ("registry", "copy_registry")
    if not any(c.get("name") in registry and c.get("status") == "failed" for c in checks):
        return response
    for check in checks:
        if check.get("name") in registry and check.get("status") == "failed":
            check.update(status="passed", reason="on record", code=None)
    result["valid"] = all(c.get("status") != "failed" for c in checks)
    return response.with_json(result)


# --- e-seal ----------------------------------------------------------------------------------


def _step_3_passed_when(reason: str) -> Defect:
    """A verifier that skips one check of step 3: a step 3 failed for a ``reason`` matching
    the pattern is reported passed (and the verdict recomputed)."""

    async def skipped(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if request.method != "POST" or request.path != "/verify" or not _json_body(response):
            return response
        result = response.json()
        steps = result.get("steps") or []
        if (
            len(steps) >= 3
            and steps[2].get("status") == "failed"
            and re.search(reason, str(steps[2].get("reason") or ""))
        ):
            steps[2] = {**steps[2], "status": "passed", "reason": None}
            result["valid"] = all(step.get("status") == "passed" for step in steps)
            return response.with_json(result)
        return response

    return skipped


# Verification skips the seal's registry status: a revoked seal passes step 3.
seal_status_ignored = _step_3_passed_when(r"revoked|suspended|status")
# Step 3 judges the seal's window and status only: a seal whose maker signature does not
# verify, or whose maker does not chain to the root, passes it.
seal_maker_unchecked = _step_3_passed_when(r"maker")


# --- hall ------------------------------------------------------------------------------------


class WrongCatalogCheckCharacter:
    """The catalog publishes implementation codes whose embedded credit code has a wrong check
    character; the hall still takes applications and lookups by the code it shows."""

    def __init__(self) -> None:
        self.real: dict[str, str] = {}  # shown code -> stored code

    def _publish(self, item: dict[str, Any]) -> None:
        code = item.get("implementation_code")
        if not isinstance(code, str):
            return
        try:
            parse_implementation_code(code)
        except CodeError:
            return
        shown = code[:17] + _other_digit(code[17]) + code[18:]
        self.real[shown] = code
        item["implementation_code"] = shown

    def _stored(self, text: str) -> str:
        for shown, real in self.real.items():
            text = text.replace(shown, real)
        return text

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        request = replace(request, path=self._stored(request.path))
        if request.is_json and request.body:
            request = request.with_json(_walk(request.json(), self._stored))
        response = await forward(request)
        if request.path.startswith("/items") and _json_body(response):
            response = response.with_json(_walk(response.json(), objects=self._publish))
        return response


async def discovery_without_jwks(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The province's discovery document leaves out ``jwks_uris``."""
    response = await forward(request)
    if request.path == "/.well-known/zwfw" and _json_body(response):
        document = response.json()
        document.pop("jwks_uris", None)
        return response.with_json(document)
    return response


async def illegal_step_accepted(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """An illegal step transition is answered as taken (201, the case unchanged) instead of a
    409 naming the rule."""
    response = await forward(request)
    steps = re.fullmatch(r"/cases/([^/]+)/steps", request.path)
    if request.method == "POST" and steps and response.status == 409:
        case = await forward(ProxyRequest("GET", f"/cases/{steps[1]}", headers=request.headers[:]))
        if case.status == 200:
            return replace(case, status=201)
    return response


class ApplicantIdNumberUnmasked:
    """Cases show the applicant's full resident ID number instead of the masked form."""

    def __init__(self) -> None:
        self.numbers: dict[str, str] = {}  # case number -> certificate number as applied

    def _unmask(self, case: dict[str, Any]) -> None:
        applicant = case.get("applicant")
        number = self.numbers.get(str(case.get("case_number")))
        if number and isinstance(applicant, dict) and "certificate_number" in applicant:
            applicant["certificate_number"] = number

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if not _json_body(response):
            return response
        if request.method == "POST" and request.path == "/cases" and response.status == 201:
            applied = request.json().get("applicant", {}).get("certificate_number")
            if applied:
                self.numbers[str(response.json()["case_number"])] = str(applied)
        return response.with_json(_walk(response.json(), objects=self._unmask))


def _calendar_deadline(case: dict[str, Any]) -> None:
    deadline, accepted = case.get("deadline"), case.get("accepted_at")
    if not (isinstance(deadline, dict) and accepted and "promised_days" in deadline):
        return
    day = datetime.fromisoformat(str(accepted)).astimezone(BEIJING).date()
    deadline["date"] = (day + timedelta(days=int(deadline["promised_days"]))).isoformat()


async def deadline_in_calendar_days(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The promised deadline counts calendar days, weekends and holidays included."""
    response = await forward(request)
    if request.path.startswith("/cases") and _json_body(response):
        return response.with_json(_walk(response.json(), objects=_calendar_deadline))
    return response


# --- hub -------------------------------------------------------------------------------------


def _resigned(
    province: Province,
    request: ProxyRequest,
    *,
    now: float | None = None,
    idempotency_key: str | None = None,
    nonce: str | None = None,
) -> ProxyRequest:
    """``request`` signed again with the sender's key: what the hub would have judged had it
    not looked at one field (the time, the body, or the idempotency key) of what arrived."""
    signer = ChannelSigner(
        request.header("Zwfw-Sender") or province.region,
        province.channel_key,
        key_id=province.channel_key_id,
    )
    target = request.path + (f"?{request.query}" if request.query else "")
    headers = signer.headers(
        request.method,
        target,
        request.body,
        recipient=request.header("Zwfw-Recipient") or "hub",
        idempotency_key=idempotency_key or request.header("Idempotency-Key"),
        now=float(request.header("Zwfw-Timestamp") or 0) if now is None else now,
        nonce=nonce or request.header("Zwfw-Nonce"),
    )
    for name, value in headers.items():
        request = request.with_header(name, value)
    return request


def _signed(request: ProxyRequest) -> bool:
    return all(request.header(h) for h in ("Zwfw-Signature", "Zwfw-Timestamp", "Zwfw-Nonce"))


def _fresh(request: ProxyRequest) -> bool:
    sent = float(request.header("Zwfw-Timestamp") or 0)
    return abs(time.time() - sent) <= CHANNEL_WINDOW_SECONDS


def _intact(request: ProxyRequest) -> bool:
    return request.header("Content-Digest") == content_digest(request.body)


def _verifies(province: Province, request: ProxyRequest) -> bool:
    """The arrived signature verifies over the arrived fields with the sender's key, announced
    by its key id: a defect that skips one check still refuses what every other check refuses."""
    signature_header = request.header("Zwfw-Signature") or ""
    match = re.search(r'sig="([^"]*)"', signature_header)
    raw = request.header("Zwfw-Timestamp") or ""
    if match is None or not raw.isdigit():
        return False
    announced = (f'keyid="{province.channel_key_id}"', 'alg="sm2-sm3"')
    if not all(part in signature_header for part in announced):
        return False
    base = signature_base(
        method=request.method,
        target=request.path + (f"?{request.query}" if request.query else ""),
        sender=request.header("Zwfw-Sender") or "",
        recipient=request.header("Zwfw-Recipient") or "",
        timestamp=int(raw),
        nonce=request.header("Zwfw-Nonce") or "",
        digest=request.header("Content-Digest") or "",
        idempotency_key=request.header("Idempotency-Key"),
    )
    try:
        signature = base64.b64decode(match[1], validate=True)
    except ValueError:
        return False
    return province.channel_key.public_key.verify(signature, base)


def timestamp_unchecked(province: Province) -> Defect:
    """The hub takes messages signed long ago: no freshness window."""

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if _signed(request) and not _fresh(request):
            request = _resigned(province, request, now=time.time())
        return await forward(request)

    return defect


def body_digest_unchecked(province: Province) -> Defect:
    """The hub never compares the body with its signed digest: an altered body is taken."""

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        sm3 = (request.header("Content-Digest") or "").startswith("sm3=:")
        if _signed(request) and sm3 and not _intact(request) and _verifies(province, request):
            request = _resigned(province, request)
        return await forward(request)

    return defect


def nonce_unchecked(province: Province) -> Defect:
    """The hub keeps no record of nonces: the same signed message sent again is taken (and
    answered like a retry of the same Idempotency-Key)."""
    seen: set[str] = set()

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        nonce = request.header("Zwfw-Nonce")
        if _signed(request) and nonce is not None:
            if nonce in seen:
                request = _resigned(province, request, nonce=secrets.token_urlsafe(16))
            seen.add(nonce)
        return await forward(request)

    return defect


def idempotency_key_ignored(province: Province) -> Defect:
    """The hub ignores Idempotency-Key on reports: every delivery is stored as a new report,
    a reused key is not refused and a report without one is taken."""

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        report = request.method == "POST" and request.path.startswith("/reports/")
        checked = _signed(request) and _fresh(request) and _intact(request)
        if report and checked and _verifies(province, request):
            request = _resigned(province, request, idempotency_key=f"hub-{uuid.uuid4().hex}")
        return await forward(request)

    return defect


# --- identity --------------------------------------------------------------------------------


async def pkce_plain_advertised(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The IdP's discovery document offers PKCE ``plain`` besides S256."""
    response = await forward(request)
    if request.path == "/.well-known/openid-configuration" and _json_body(response):
        config = response.json()
        config["code_challenge_methods_supported"] = ["S256", "plain"]
        return response.with_json(config)
    return response


async def pkce_optional(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """An authorization request without a code_challenge is taken (the IdP goes on to the
    sign-in as if PKCE were optional)."""
    if request.method == "GET" and request.path == "/authorize":
        params = request.params
        if "code_challenge" not in params:
            verifier = secrets.token_urlsafe(48)
            digest = hashlib.sha256(verifier.encode()).digest()
            params["code_challenge"] = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            params["code_challenge_method"] = "S256"
            request = request.with_params(params)
    return await forward(request)


async def sign_in_frameable(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Pages go out without anti-framing headers (no X-Frame-Options, no frame-ancestors)."""
    response = (await forward(request)).without_headers("x-frame-options")
    policy = response.header("content-security-policy")
    if policy is None:
        return response
    kept = "; ".join(
        part.strip()
        for part in policy.split(";")
        if part.strip() and not part.strip().startswith("frame-ancestors")
    )
    response = response.without_headers("content-security-policy")
    return response.with_header("content-security-policy", kept) if kept else response


def userinfo_with_id_number(province: Province) -> Defect:
    """Userinfo answers carry the person's resident ID number."""

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if request.path == "/userinfo" and response.status == 200 and _json_body(response):
            claims = response.json()
            number = province.id_numbers.get(str(claims.get("sub")))
            if number:
                return response.with_json({**claims, "id_number": number})
        return response

    return defect


def _plain(defect: Defect) -> Callable[[Province], Defect]:
    return lambda _province: defect


def _fresh_instance(factory: Callable[[], Defect]) -> Callable[[Province], Defect]:
    # Defects that remember what they rewrote start empty for every run.
    return lambda _province: factory()


VARIANTS: tuple[Variant, ...] = (
    Variant("licence-check-character", "elicense",
            "licence identifiers shown with a wrong GB/T 36904 check character",
            # IC-LIC-007 too: the issuer is answered with another identifier than it issued;
            # IC-LIC-011 too: the licence's face states the identifier that was sealed; and
            # IC-CASE-009: the hall, reaching the registry at its address, gets the wrong one.
            frozenset({"IC-LIC-001", "IC-LIC-007", "IC-LIC-011", "IC-CASE-009"}),
            _fresh_instance(WrongLicenceCheckCharacter)),
    Variant("holder-isolation", "elicense",
            "a holder can read another holder's licence by its identifier",
            frozenset({"IC-LIC-003"}), holder_check_missing),
    Variant("copy-expiry-unbounded", "elicense",
            "an annotated copy beyond the longest allowed life is made, not refused",
            frozenset({"IC-LIC-004"}), _plain(copy_expiry_not_refused)),
    Variant("registry-accepts-resealed", "elicense",
            "a document re-sealed under an issued identifier or copy id verifies as valid",
            frozenset({"IC-LIC-006"}), _plain(registry_not_compared)),
    Variant("seal-status-ignored", "eseal",
            "verification ignores the registry status: a revoked seal passes step 3",
            frozenset({"IC-SEAL-003"}), _plain(seal_status_ignored)),
    Variant("seal-keys-read-once", "eseal",
            "the e-seal service reads its IdP's JWKS once, at start: keys rotated in later are "
            "unknown",
            frozenset({"IC-ID-002"}), lambda province: KeysReadOnce(province.idp_url)),
    Variant("seal-maker-unchecked", "eseal",
            "verification step 3 skips the seal's maker signature and maker certificate",
            frozenset({"IC-SEAL-002"}), _plain(seal_maker_unchecked)),
    Variant("catalog-check-character", "hall",
            "catalog implementation codes carry a wrong credit-code check character",
            # IC-CAT-005 too: the item the suite publishes is shown with another code.
            frozenset({"IC-CAT-001", "IC-CAT-005"}), _fresh_instance(WrongCatalogCheckCharacter)),
    Variant("discovery-field-missing", "hall",
            "the province discovery document has no jwks_uris",
            frozenset({"IC-DISC-001"}), _plain(discovery_without_jwks)),
    Variant("illegal-step-accepted", "hall",
            "an illegal case step transition is answered 201 instead of 409",
            frozenset({"IC-CASE-002"}), _plain(illegal_step_accepted)),
    Variant("deadline-calendar-days", "hall",
            "the promised deadline counts calendar days, not working days",
            frozenset({"IC-CASE-003", "IC-CASE-006"}), _plain(deadline_in_calendar_days)),
    Variant("id-number-unmasked", "hall",
            "cases show the applicant's resident ID number unmasked",
            frozenset({"IC-CASE-004"}), _fresh_instance(ApplicantIdNumberUnmasked)),
    Variant("channel-altered-body", "hub",
            "the hub takes a report whose body differs from its signed digest",
            frozenset({"IC-CHAN-002"}), body_digest_unchecked),
    Variant("channel-stale-message", "hub",
            "the hub takes a report signed an hour ago (no freshness window)",
            frozenset({"IC-CHAN-003"}), timestamp_unchecked),
    Variant("channel-replay-accepted", "hub",
            "the hub takes the same signed message twice (nonces not remembered)",
            frozenset({"IC-CHAN-003"}), nonce_unchecked),
    Variant("channel-idempotency-ignored", "hub",
            "the hub ignores Idempotency-Key: retries stored again, reused keys taken",
            # The hub then also holds the case's reports twice (IC-CHAN-006).
            frozenset({"IC-CHAN-005", "IC-CHAN-006"}), idempotency_key_ignored),
    Variant("pkce-plain-advertised", "identity",
            "the IdP's discovery document offers PKCE plain",
            frozenset({"IC-ID-001"}), _plain(pkce_plain_advertised)),
    Variant("pkce-optional", "identity",
            "an authorization request without code_challenge is taken",
            frozenset({"IC-ID-004"}), _plain(pkce_optional)),
    Variant("userinfo-id-number", "identity",
            "userinfo answers carry the resident ID number",
            frozenset({"SEC-AUTH-002"}), userinfo_with_id_number),
)  # fmt: skip
