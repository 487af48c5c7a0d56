"""Transport: every service the profile lists is served over https unless the profile declares
it `internal_only` (SEC-TLS-001; reachable only inside the operator's network, behind its TLS
gateway; see conformance/README.md, "Target profile"), and every https endpoint, scanned with
sslyze, offers TLS 1.2+ only with strong forward-secret suites (SEC-TLS-002, -003), a
certificate chaining to the profile's trust anchor for its host name (SEC-TLS-004) and HSTS
(SEC-TLS-005); the services the profile declares mutual TLS (`tls.mutual`) refuse clients
without a certificate or with one from an unknown issuer and serve the profile's own client
(SEC-TLS-006). The scans present the profile's client certificate where it has one.

A profile without any https endpoint leaves SEC-TLS-002..005 not tested, outside the run's
scope (`conftest.py`): there is nothing to scan, and the operator's gateway is then evidence
for the reviewer (clause 8.1.2.2 of the clause view), never a pass.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from zwfw.harness.profile import TargetProfile
from zwfw.harness.tls import (
    Endpoint,
    Finding,
    TlsScanError,
    find_sslyze,
    https_endpoints,
    judge,
    load_anchors,
    mutual_tls_findings,
    scan,
)

# Endpoints scanned at once: sslyze's own connections wait on the network, not the CPU.
PARALLEL_SCANS = 4


@pytest.mark.requirement("SEC-TLS-001", catches=("plain-http-endpoint",))
def test_every_endpoint_is_https_unless_internal(target: TargetProfile) -> None:
    services = target.services.configured()
    assert services, "the target profile lists no service"
    plain = [
        f"{name} {url}"
        for name, url in services.items()
        if urlsplit(url).scheme != "https" and name not in target.internal_only
    ]
    assert not plain, "served over plain http and not declared internal_only: " + ", ".join(plain)


ScanOutcome = list[Finding] | TlsScanError


@pytest.fixture(scope="session")
def tls_findings(target: TargetProfile) -> dict[str, ScanOutcome]:
    """Each https endpoint ("host:port (services)") and its findings, or why it could not be
    scanned."""
    services = {name: str(url) for name, url in target.services.configured().items()}
    endpoints = https_endpoints(services)
    if not endpoints:
        pytest.skip("the profile has no https endpoint to scan (every service is internal_only)")
    sslyze = find_sslyze()
    if sslyze is None:
        pytest.skip("sslyze is not installed: make sslyze, or set ZWFW_SSLYZE to its command")
    anchors = load_anchors(target.tls.ca_bundle)
    tls = target.tls
    presented = (tls.client_cert, tls.client_key) if tls.client_cert and tls.client_key else None

    def one(endpoint: Endpoint) -> ScanOutcome:
        try:
            return judge(scan(endpoint, sslyze, client_certificate=presented), endpoint, anchors)
        except TlsScanError as error:
            return error

    with ThreadPoolExecutor(max_workers=PARALLEL_SCANS) as pool:
        outcomes = list(pool.map(one, endpoints))
    return {
        f"{endpoint} ({', '.join(names)})": outcome
        for (endpoint, names), outcome in zip(endpoints.items(), outcomes, strict=True)
    }


def _assert_none_for(requirement: str, tls_findings: dict[str, ScanOutcome]) -> None:
    problems = []
    for where, outcome in tls_findings.items():
        if isinstance(outcome, TlsScanError):
            problems.append(f"{where}: not scanned: {outcome}")
            continue
        problems += [
            f"{where}: {finding.mode}: {finding.detail}"
            for finding in outcome
            if finding.requirement == requirement
        ]
    assert not problems, "; ".join(problems)


@pytest.mark.requirement("SEC-TLS-002", catches=("legacy-protocol",))
def test_https_endpoints_offer_tls_1_2_and_later_only(
    tls_findings: dict[str, ScanOutcome],
) -> None:
    _assert_none_for("SEC-TLS-002", tls_findings)


@pytest.mark.requirement("SEC-TLS-003", catches=("weak-suite", "no-forward-secrecy"))
def test_https_endpoints_offer_strong_forward_secret_suites_only(
    tls_findings: dict[str, ScanOutcome],
) -> None:
    _assert_none_for("SEC-TLS-003", tls_findings)


@pytest.mark.requirement(
    "SEC-TLS-004",
    catches=("untrusted-chain", "hostname-mismatch", "weak-key", "expiring-certificate"),
)
def test_https_certificates_chain_to_the_anchor_for_their_host(
    tls_findings: dict[str, ScanOutcome],
) -> None:
    _assert_none_for("SEC-TLS-004", tls_findings)


@pytest.mark.requirement("SEC-TLS-005", catches=("hsts-missing", "hsts-weak"))
def test_https_responses_carry_hsts(tls_findings: dict[str, ScanOutcome]) -> None:
    _assert_none_for("SEC-TLS-005", tls_findings)


@pytest.mark.requirement(
    "SEC-TLS-006",
    catches=("client-certificate-optional", "untrusted-client-certificate",
             "client-certificate-refused"),
)  # fmt: skip
def test_declared_mutual_tls_endpoints_take_only_trusted_client_certificates(
    target: TargetProfile,
) -> None:
    tls = target.tls
    if not tls.mutual or tls.client_cert is None or tls.client_key is None:
        # Out of scope (conftest.py); the profile holds no mutual without a client certificate.
        pytest.skip("the profile declares no mutual-TLS endpoint")
    services = target.services.configured()
    problems = [
        f"{name}: {finding.mode}: {finding.detail}"
        for name in tls.mutual
        for finding in mutual_tls_findings(
            services[name], tls.ca_bundle, (tls.client_cert, tls.client_key),
            target.timeout_seconds,
        )
    ]  # fmt: skip
    assert not problems, "; ".join(problems)
