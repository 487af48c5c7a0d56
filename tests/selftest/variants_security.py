"""Known-bad variants of the reference province for the security suite: one seeded defect per
check family, certified with ``--suites conformance,security`` (the security suite is
opt-in), each failing exactly its requirements."""

from __future__ import annotations

import json
from dataclasses import replace

from .defects import Province, Variant, holder_check_missing, sign_in_frameable
from .proxy import Defect, Forward, ProxyRequest, ProxyResponse

REVIEWED = ("conformance", "security")
# Judged by scans of https endpoints: out of scope for the reference platform (loopback http).
TLS_SCANNED = ("SEC-TLS-002", "SEC-TLS-003", "SEC-TLS-004", "SEC-TLS-005", "SEC-TLS-006")
# Static checks of a host deployment: out of scope for the reference platform, whose profile
# declares none (it is not deployed by the playbooks; tests/deploy checks a deployment).
DEPLOYMENT_CHECKED = ("SEC-DEP-001", "SEC-DEP-002", "SEC-DEP-003", "SEC-DEP-004", "SEC-DEP-005")


async def csp_missing(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The hall's answers carry no Content-Security-Policy."""
    response = await forward(request)
    return response.without_headers("content-security-policy")


def _malformed(request: ProxyRequest) -> bool:
    if not request.body:
        return False
    if not (request.header("content-type") or "").startswith("application/json"):
        return True
    try:
        json.loads(request.body)
    except (ValueError, RecursionError):
        return True
    return False


async def error_on_malformed_body(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """A body that is not JSON (or nested too deep to parse) makes the hall fail with 500,
    the way the service's own last-resort handler answers (its headers, a problem body)."""
    if request.method in ("POST", "PUT", "PATCH") and _malformed(request):
        answered = await forward(replace(request, body=b"{}").with_header(
            "content-type", "application/json"
        ))  # fmt: skip
        problem = {"type": "about:blank", "title": "Internal Server Error", "status": 500}
        return answered.with_json(problem, status=500).with_header(
            "content-type", "application/problem+json"
        )
    return await forward(request)


async def framework_not_found(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The hall answers an unknown resource with the web framework's own 404 body,
    ``{"detail": "Not Found"}`` as application/json, not the problem its interface declares."""
    response = await forward(request)
    if response.status == 404:
        return response.with_json({"detail": "Not Found"}).with_header(
            "content-type", "application/json"
        )
    return response


def id_number_in_problem(province: Province) -> Defect:
    """The hall's refusals quote a resident ID number in their detail."""
    number = sorted(province.id_numbers.values())[0]

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if response.status >= 400 and response.is_json and response.body:
            problem = response.json()
            if isinstance(problem, dict):
                detail = f"{problem.get('detail') or ''} (applicant {number})".strip()
                return response.with_json({**problem, "detail": detail})
        return response

    return defect


VARIANTS: tuple[Variant, ...] = (
    Variant("security-header-missing", "hall",
            "the hall's answers carry no Content-Security-Policy",
            frozenset({"SEC-HDR-001"}), lambda _province: csp_missing, REVIEWED),
    Variant("security-authorization-hole", "elicense",
            "a holder reads another holder's licence by its identifier",
            frozenset({"IC-LIC-003", "SEC-AZ-002"}), holder_check_missing, REVIEWED),
    Variant("security-malformed-body-500", "hall",
            "a body that is not JSON makes the hall answer 500",
            frozenset({"SEC-IN-001"}), lambda _province: error_on_malformed_body, REVIEWED),
    Variant("security-id-number-in-error", "hall",
            "the hall's problem details quote a resident ID number",
            frozenset({"SEC-PD-001"}), id_number_in_problem, REVIEWED),
    # Certified with the security suite, so the browser shows what the missing headers allow
    # (SEC-BR-001) besides the headers' own requirements.
    Variant("sign-in-frameable", "identity",
            "sign-in pages lack X-Frame-Options and CSP frame-ancestors",
            frozenset({"SEC-AUTH-003", "SEC-HDR-001", "SEC-BR-001"}),
            lambda _province: sign_in_frameable, REVIEWED),
    Variant("security-not-found-off-interface", "hall",
            "the hall answers unknown resources with the framework's 404 body, not a problem",
            # The hall suite asks for problem details on its refusals too (catalog items, a
            # withdrawn item, others' cases, supplements, ratings and follow-ups).
            frozenset({"SEC-IN-002", "IC-CAT-004", "IC-CAT-005", "IC-CASE-004", "IC-CASE-007",
                       "IC-EVAL-001", "IC-EVAL-003"}),
            lambda _province: framework_not_found, REVIEWED),
)  # fmt: skip
