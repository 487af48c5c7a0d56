"""The journeys of the load suite, written against the target's public HTTP interfaces only.

Every request goes through `Visit.call`, which names it by journey step (the name the figures
and the RESP-* requirements use), refuses hosts the target profile does not list, and raises
`StepFailed` on an answer the step does not expect, ending that journey.

- browse: an anonymous visitor: discovery → catalog browse → an item's 办事指南;
- citizen: discovery → catalog browse → 办事指南 → sign-in through the IdP (authorization code
  + PKCE, the real sign-in and consent forms) → case submission with an uploaded material →
  tracking it → rating a concluded case (好差评). A signed-in session is reused by later
  visits of the same generator process, and new sign-ins stay within the workload's
  `signins_per_minute`, well below the IdP's per-address limit: the journey never trips it.
- staff: the work queue, then a case submitted by a citizen of this process through its
  legal steps (受理 4 → 同意 1 → 办结 1); the concluded case is offered for rating.
- system: a client-credentials token (private_key_jwt), e-licence verification by
  identifier, e-seal verification of a sealed licence, a signed case report to the hub
  (sent again under the same Idempotency-Key, up to three times, while the hub answers 503).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from joserfc.jwk import ECKey

from zwfw.codes import build_case_number
from zwfw.codes.personal import build_resident_id
from zwfw.crypto.sm2 import load_private_key
from zwfw.formats.channel import ChannelSigner
from zwfw.harness.forms import Form, page_forms
from zwfw.harness.profile import TargetProfile
from zwfw.services.kit.tokens import client_assertion

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The uploaded material: a small PDF, as an applicant's scanned form would be (16 KiB).
PDF = b"%PDF-1.4\n% zwfw load material\n" + b"0" * (16 * 1024 - 32) + b"\n%%EOF\n"
# Legal steps a staff member takes on an online case: (nodetype, noderesult, step name).
# A case report the hub refuses with 503 is sent again after a pause, as a province's outbox
# would: the hub must store it once (FT-DB-002).
REPORT_ATTEMPTS = 3
REPORT_RETRY_SECONDS = 1.0
STAFF_STEPS = ((1, 4, "staff.accept"), (2, 1, "staff.review"), (3, 1, "staff.conclude"))


class StepFailed(Exception):
    """A step got an answer it does not expect; the journey ends there."""


class Answer(Protocol):
    status_code: int
    text: str
    headers: Any

    def json(self) -> Any: ...


class Visit(Protocol):
    """What a journey needs from the generator: one named, checked request at a time."""

    def call(
        self, method: str, url: str, step: str, expect: tuple[int, ...], **options: Any
    ) -> Answer: ...

    def clear_cookies(self) -> None: ...

    def acknowledged(self, kind: str, key: str, subject: str) -> None:
        """A write the platform answered 2xx: `kind` (case, hub-report), its key (the
        idempotency key, or the case number the hall gave) and the subject to read it back
        by (the case number)."""


@dataclass
class Session:
    """A signed-in citizen: the access token and until when the visits may use it."""

    token: str
    good_until: float
    visits: int = 0


class SignInBudget:
    """At most `per_minute` new sign-ins per generator process (a token bucket, empty at
    start so that no burst opens the run)."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 12.0)
        self.tokens = 1.0
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


@dataclass
class Shared:
    """What the journeys of one generator process share."""

    target: TargetProfile
    secret: Callable[[str], str]
    budget: SignInBudget
    sessions: list[Session] = field(default_factory=list)
    submitted: deque[str] = field(default_factory=deque)
    concluded: deque[str] = field(default_factory=deque)
    sealed: dict[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Read from the credentials once per process: key parsing is not what is measured.
    signer: ChannelSigner | None = None
    client_key: ECKey | None = None

    def url(self, service: str, path: str) -> str:
        base = self.target.base_url(service)  # type: ignore[arg-type]
        if base is None:
            raise StepFailed(f"the target profile lists no {service} service")
        return f"{base}/{path.lstrip('/')}"


# --- citizen ---------------------------------------------------------------------------------


def _person_item(items: list[dict[str, Any]]) -> dict[str, Any]:
    for item in items:
        if "person" in item["guide"]["server_type"]:
            return item
    raise StepFailed("the catalog has no published item serving persons")


def application(item: dict[str, Any], region_code: str) -> dict[str, Any]:
    """A complete application for `item`: every required material, uploaded where allowed."""
    materials = []
    for material in item["guide"]["materials"]:
        if not material.get("required", True):
            continue
        if "electronic" in material["formats"]:
            materials.append({
                "name": material["name"], "gettype": 2, "media_type": "application/pdf",
                "content_base64": base64.b64encode(PDF).decode(),
            })  # fmt: skip
        else:
            materials.append({"name": material["name"], "gettype": 1})
    sequence = 100 + secrets.randbelow(800)
    return {
        "implementation_code": item["implementation_code"],
        "channel": "online",
        "applicant": {
            "name": "负载测试申请人",
            "certificate_type": "10",
            "certificate_number": str(build_resident_id(region_code, date(1990, 1, 1), sequence)),
        },
        "materials": materials,
    }


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _chosen_form(html: str, username: str, password: str) -> tuple[str, Form, dict[str, str]]:
    for form in page_forms(html):
        kinds = form.types
        if "password" in kinds.values():
            data = dict(form.fields)
            user_field = next(n for n, t in kinds.items() if t in ("text", "email", "tel"))
            data[user_field] = username
            data[next(n for n, t in kinds.items() if t == "password")] = password
            return "signin.login", form, data
        allow = [(n, v) for n, v in form.buttons if v == "allow"]
        if allow:
            return "signin.consent", form, {**form.fields, allow[0][0]: allow[0][1]}
    raise StepFailed("the IdP page has neither a sign-in nor a consent form")


def sign_in(visit: Visit, shared: Shared) -> Session:
    """A fresh browser signs the test citizen in: authorization code with PKCE."""
    secret = shared.secret
    client_id, redirect = secret("identity_rp_client_id"), secret("identity_rp_redirect_uri")
    verifier, challenge = _pkce()
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect,
        "scope": "openid elicense:read elicense:consent", "state": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })  # fmt: skip
    visit.clear_cookies()
    url = shared.url("identity", f"authorize?{query}")
    answer = visit.call("GET", url, "signin.page", (200, 302, 303), allow_redirects=False)
    submitted: set[str] = set()
    for _ in range(12):
        if answer.status_code in (302, 303):
            location = urllib.parse.urljoin(url, answer.headers.get("location") or "")
            if location.startswith(redirect):
                params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
                if "code" not in params:
                    raise StepFailed(f"the IdP refused the sign-in: {params.get('error')}")
                break
            url = location
            answer = visit.call("GET", url, "signin.page", (200, 302, 303), allow_redirects=False)
            continue
        step, form, data = _chosen_form(answer.text, secret("identity_user"),
                                        secret("identity_password"))  # fmt: skip
        if step in submitted:
            raise StepFailed(f"{step} was answered by the same form again")
        submitted.add(step)
        url = urllib.parse.urljoin(url, form.action)
        answer = visit.call(form.method.upper(), url, step, (200, 302, 303), data=data,
                            allow_redirects=False)  # fmt: skip
    else:
        raise StepFailed("the sign-in did not come back to the relying party")
    token = visit.call(
        "POST", shared.url("identity", "token"), "signin.token", (200,),
        data={"grant_type": "authorization_code", "code": params["code"],
              "redirect_uri": redirect, "client_id": client_id, "code_verifier": verifier},
    ).json()  # fmt: skip
    lifetime = float(token.get("expires_in", 300))
    # Kept with a margin: a visit never starts with a token about to expire.
    return Session(str(token["access_token"]), time.monotonic() + lifetime * 0.8)


def _session(visit: Visit, shared: Shared) -> Session:
    now = time.monotonic()
    with shared.lock:
        shared.sessions[:] = [s for s in shared.sessions if s.good_until > now]
        live = list(shared.sessions)
    if not live or shared.budget.take():
        session = sign_in(visit, shared)
        with shared.lock:
            shared.sessions.append(session)
        return session
    # The least used live session: returning citizens spread over the signed-in ones.
    return min(live, key=lambda s: s.visits)


def browse(visit: Visit, shared: Shared) -> dict[str, Any]:
    """Discovery, the catalog and the guide of an item serving persons (that item)."""
    visit.call("GET", shared.url("hall", ".well-known/zwfw"), "discovery", (200,))
    items = visit.call(
        "GET", shared.url("hall", "items"), "catalog", (200,), params={"limit": 20}
    ).json()["items"]
    code = _person_item(items)["implementation_code"]
    return dict(visit.call("GET", shared.url("hall", f"items/{code}"), "guide", (200,)).json())


def citizen(visit: Visit, shared: Shared) -> None:
    region = shared.target.region_code
    item = browse(visit, shared)
    session = _session(visit, shared)
    session.visits += 1
    bearer = {"Authorization": f"Bearer {session.token}"}
    case = visit.call(
        "POST", shared.url("hall", "cases"), "case.submit", (201,),
        json=application(item, region), headers=bearer,
    ).json()  # fmt: skip
    number = str(case["case_number"])
    visit.acknowledged("case", number, number)
    with shared.lock:
        shared.submitted.append(number)
    visit.call("GET", shared.url("hall", f"cases/{number}"), "case.track", (200,), headers=bearer)
    with shared.lock:
        rated = shared.concluded.popleft() if shared.concluded else None
    if rated is not None:
        # Mostly satisfied; one in ten a 差评, which opens a rectification task.
        level = 2 if secrets.randbelow(10) == 0 else 5
        visit.call(
            "POST", shared.url("hall", f"cases/{rated}/evaluation"), "case.rate", (201,),
            json={"level": level, "text": "负载测试评价"}, headers=bearer,
        )  # fmt: skip


# --- staff -----------------------------------------------------------------------------------


def staff(visit: Visit, shared: Shared) -> None:
    bearer = {"Authorization": f"Bearer {shared.secret('hall_staff_token')}"}
    visit.call(
        "GET", shared.url("hall", "cases"), "staff.queue", (200,),
        params={"state": "submitted", "limit": 20}, headers=bearer,
    )  # fmt: skip
    with shared.lock:
        number = shared.submitted.popleft() if shared.submitted else None
    if number is None:
        return
    for nodetype, noderesult, step in STAFF_STEPS:
        visit.call(
            "POST", shared.url("hall", f"cases/{number}/steps"), step, (201,),
            json={"nodetype": nodetype, "noderesult": noderesult, "handler_name": "负载测试"},
            headers=bearer,
        )  # fmt: skip
    with shared.lock:
        shared.concluded.append(number)


# --- system ----------------------------------------------------------------------------------


def _sealed_licence(visit: Visit, shared: Shared) -> dict[str, str]:
    """A licence of the test holder as issued (document and seal signature), fetched once."""
    with shared.lock:
        if shared.sealed is not None:
            return shared.sealed
    bearer = {"Authorization": f"Bearer {shared.secret('elicense_holder_token')}"}
    listed = visit.call("GET", shared.url("elicense", "me/licences"), "setup.licences", (200,),
                        headers=bearer).json()  # fmt: skip
    if not listed:
        raise StepFailed("the e-licence holder of the profile holds no licence")
    identifier = urllib.parse.quote(str(listed[0]["identifier"]), safe="")
    licence = visit.call("GET", shared.url("elicense", f"me/licences/{identifier}"),
                         "setup.licence", (200,), headers=bearer).json()  # fmt: skip
    sealed = {"document": str(licence["document"]), "signature": str(licence["signature"])}
    with shared.lock:
        shared.sealed = sealed
    return sealed


def case_report(shared: Shared) -> dict[str, Any]:
    """A synthetic case report of the profile's first declared implementation code."""
    declared = shared.target.declared.implementation_codes
    if not declared:
        raise StepFailed("the target profile declares no implementation_codes")
    code = declared[0]
    now = datetime.now(UTC).replace(microsecond=0)
    # Sequences 9000-9999 of today are the certification's synthetic cases.
    number = str(build_case_number(code, now.date(), 9000 + secrets.randbelow(1000)))
    return {
        "report": "case", "version": 1, "region_code": shared.target.region_code,
        "case_number": number, "implementation_code": code, "item_name": "负载测试事项",
        "dept_code": code[:18], "dept_name": "负载测试部门", "user_type": "0",
        "channel": "online", "state": "submitted", "apply_time": now.isoformat(),
        "steps": [], "materials": [],
    }  # fmt: skip


def system(visit: Visit, shared: Shared) -> None:
    secret, target = shared.secret, shared.target
    token_url = shared.url("identity", "token")
    if shared.client_key is None:
        shared.client_key = ECKey.import_key(json.loads(secret("identity_client_key")))
    key, client_id = shared.client_key, secret("identity_client_id")
    visit.call(
        "POST", token_url, "system.token", (200,),
        data={"grant_type": "client_credentials", "client_id": client_id,
              "client_assertion_type": ASSERTION_TYPE,
              "client_assertion": client_assertion(client_id, key, token_url)},
    )  # fmt: skip
    identifiers = target.declared.licence_identifiers
    if not identifiers:
        raise StepFailed("the target profile declares no licence_identifiers")
    identifier = urllib.parse.quote(identifiers[secrets.randbelow(len(identifiers))], safe="")
    visit.call("GET", shared.url("elicense", f"verify/{identifier}"), "system.licence", (200,))
    sealed = _sealed_licence(visit, shared)
    verified = visit.call(
        "POST", shared.url("eseal", "verify"), "system.seal", (200,),
        json={"signature": sealed["signature"], "content": sealed["document"]},
    ).json()  # fmt: skip
    if verified.get("valid") is False:
        raise StepFailed("the e-seal service did not verify the issuer's seal on a licence")
    report = case_report(shared)
    body = json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode()
    key = f"load-{secrets.token_hex(16)}"
    hub = shared.url("hub", "reports/cases")
    if shared.signer is None:
        key_pem = secret("channel_signing_key").encode()
        shared.signer = ChannelSigner(
            target.region_code, load_private_key(key_pem), key_id=secret("channel_key_id")
        )
    for attempt in range(1, REPORT_ATTEMPTS + 1):
        # Signed anew per attempt (a fresh nonce and time), under the same Idempotency-Key:
        # the hub stores the report once however often it is sent.
        headers = shared.signer.headers(
            "POST", urllib.parse.urlsplit(hub).path, body, recipient="hub",
            idempotency_key=key,
        )  # fmt: skip
        try:
            visit.call(
                "POST", hub, "system.hub-report", (200, 201), data=body,
                headers={**headers, "Authorization": f"Bearer {secret('hub_report_token')}",
                         "Content-Type": "application/json"},
            )  # fmt: skip
        except StepFailed as failure:
            # Retried only when the hub said to (503: its database away for the moment).
            if attempt == REPORT_ATTEMPTS or not str(failure).endswith("HTTP 503"):
                raise
            time.sleep(REPORT_RETRY_SECONDS)
        else:
            break
    visit.acknowledged("hub-report", key, str(report["case_number"]))


JOURNEYS: dict[str, Callable[[Visit, Shared], object]] = {
    "browse": browse,
    "citizen": citizen,
    "staff": staff,
    "system": system,
}
