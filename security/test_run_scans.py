"""Scans of the whole run, after every other test of the session (see conftest.py): every
response any suite received, and every evidence file written so far.

- SEC-HDR-*: the security headers and cookies of every response of the run;
- SEC-PD-001: resident ID numbers (valid GB 11643 check character) and mobile numbers in
  clear in any response body or header, or in any evidence file;
- SEC-PD-002: private keys and passwords in responses; tokens, passwords and private keys in
  evidence files (which the harness redacts: a hit is a secret that escaped redaction);
- SEC-TLS-005: Strict-Transport-Security on every response received over https (the sslyze
  scan of test_transport.py sees one answer per endpoint; this sees all of them).

Binary bodies (PDF, images) are not scanned; their text is not the service's to mask.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from zwfw.harness.security import (
    cookie_findings,
    header_findings,
    personal_findings,
    secret_findings,
)
from zwfw.harness.tls import hsts_findings

from .conftest import RunResponses, Seen

_TEXT_TYPES = ("application/json", "application/problem+json", "text/", "application/jwk")
LIMIT = 12


def _text(seen: Seen) -> str | None:
    if (
        not seen.body
        or not seen.media_type.startswith(_TEXT_TYPES)
        and "json" not in (seen.media_type)
    ):
        return None
    try:
        return seen.body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _where(seen: Seen) -> str:
    test = f" (in {seen.test})" if seen.test else ""
    return f"{seen.method} {seen.url} -> {seen.status}{test}"


def _report(found: list[str]) -> str:
    more = f" (and {len(found) - LIMIT} more)" if len(found) > LIMIT else ""
    return f"{len(found)} findings{more}: " + "; ".join(found[:LIMIT])


def _evidence_files(config: pytest.Config) -> list[Path]:
    directory = config.getoption("zwfw_evidence")
    return sorted(Path(directory).glob("*.json")) if directory else []


@pytest.mark.requirement(
    "SEC-HDR-001",
    catches=(
        "csp-missing",
        "frame-ancestors-missing",
        "inline-script-allowed",
        "nosniff-missing",
        "referrer-leak",
    ),
)
def test_every_response_of_the_run_carries_the_security_headers(
    run_responses: RunResponses,
) -> None:
    found = [
        f"{_where(seen)}: {what}"
        for seen in run_responses.responses
        for mode, what in header_findings(dict(seen.headers), authenticated=False)
        if mode.startswith("SEC-HDR-001")
    ]
    assert run_responses.responses, "the run made no request to the target"
    assert not found, _report(found)


@pytest.mark.requirement("SEC-HDR-002", catches=("cacheable-authenticated",))
def test_no_authenticated_response_of_the_run_is_cacheable(
    run_responses: RunResponses, public_call: Callable[[str, str], bool]
) -> None:
    found = [
        f"{_where(seen)}: {what}"
        for seen in run_responses.responses
        if seen.authenticated and not public_call(seen.method, seen.url)
        for mode, what in header_findings(dict(seen.headers), authenticated=True)
        if mode.startswith("SEC-HDR-002")
    ]
    assert not found, _report(found)


@pytest.mark.requirement(
    "SEC-HDR-003", catches=("cookie-not-httponly", "cookie-no-samesite", "cookie-not-secure")
)
def test_every_cookie_of_the_run_is_protected(run_responses: RunResponses) -> None:
    found = [
        f"{_where(seen)}: {what}"
        for seen in run_responses.responses
        for _, what in cookie_findings(seen.set_cookies, https=seen.url.startswith("https:"))
    ]
    assert not found, _report(found)


@pytest.mark.requirement(
    "SEC-PD-001", catches=("id-number-in-body", "id-number-in-header", "mobile-in-body")
)
def test_no_personal_number_in_clear_anywhere_in_the_run(
    run_responses: RunResponses, pytestconfig: pytest.Config
) -> None:
    found: list[str] = []
    for seen in run_responses.responses:
        for name, value in seen.headers:
            for kind, context in personal_findings(value):
                found.append(f"{_where(seen)}: header {name}: {kind}: …{context}…")
        text = _text(seen)
        if text is not None:
            for kind, context in personal_findings(text):
                found.append(f"{_where(seen)}: body: {kind}: …{context}…")
    for file in _evidence_files(pytestconfig):
        for kind, context in personal_findings(file.read_text(encoding="utf-8")):
            found.append(f"evidence/{file.name}: {kind}: …{context}…")
    assert run_responses.responses, "the run made no request to the target"
    assert not found, _report(found)


@pytest.mark.requirement(
    "SEC-PD-002",
    catches=("private-key-in-response", "password-in-response", "secret-in-evidence"),
)
def test_no_secret_in_any_response_or_evidence_of_the_run(
    run_responses: RunResponses, pytestconfig: pytest.Config
) -> None:
    found: list[str] = []
    for seen in run_responses.responses:
        text = _text(seen)
        if text is not None:
            found.extend(f"{_where(seen)}: {what}" for what in secret_findings(text, tokens=False))
    for file in _evidence_files(pytestconfig):
        text = file.read_text(encoding="utf-8")
        found.extend(f"evidence/{file.name}: {what}" for what in secret_findings(text, tokens=True))
    assert not found, _report(found)


@pytest.mark.requirement("SEC-TLS-005", catches=("hsts-missing", "hsts-weak"))
def test_every_https_response_of_the_run_carries_hsts(run_responses: RunResponses) -> None:
    found = [
        f"{finding.mode}: {finding.detail}"
        for seen in run_responses.responses
        if seen.url.startswith("https:")
        for finding in hsts_findings(
            next((v for k, v in seen.headers if k.lower() == "strict-transport-security"), None),
            _where(seen),
        )
    ]
    assert not found, _report(found)
