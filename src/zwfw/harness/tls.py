"""Transport scans of the security suite (SEC-TLS-002..005): each https endpoint of a profile
scanned with `sslyze`, and the scan judged against GB/T 22239-2019 level 3 8.1.2.2 and
8.1.4.8, GB/T 39786-2021 level 3 network and communication, and OWASP ASVS 4.0 V9. Endpoints
the profile declares mutual TLS are probed as three clients: without a certificate, with one
from an unknown issuer and with the profile's own (SEC-TLS-006).

sslyze runs in its own virtualenv (`make sslyze`: `.venv-sslyze`), because its pins (its
`cryptography` among them) do not fit the project's; the harness calls its command and reads
its JSON output. `$ZWFW_SSLYZE` names another sslyze command.

The certificate chain is validated here, against the profile's trust anchor (`tls.ca_bundle`,
else the system store), separately from the hostname, so that each defect fails its own mode.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from zwfw.crypto.tls_client import tls_client_certificate
from zwfw.harness.errors import HarnessConfigError

SSLYZE_ENV = "ZWFW_SSLYZE"
SSLYZE_VENV = ".venv-sslyze"
# A certificate must stay valid this long after the scan: time to renew before users see errors.
EXPIRY_HORIZON = timedelta(days=30)
# OWASP ASVS 4.0 V14.4.5's figure (about six months).
HSTS_MIN_AGE = 15_724_800
# GB/T 39786-2021 and NIST SP 800-57 figures: RSA/DSA below 2048 bits, EC below 256 bits.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
# A scan of one endpoint: six protocol versions, the certificate and one HTTP request.
SCAN_TIMEOUT = 120.0

LEGACY_PROTOCOLS = {
    "ssl_2_0_cipher_suites": "SSL 2.0",
    "ssl_3_0_cipher_suites": "SSL 3.0",
    "tls_1_0_cipher_suites": "TLS 1.0",
    "tls_1_1_cipher_suites": "TLS 1.1",
}
CURRENT_PROTOCOLS = {"tls_1_2_cipher_suites": "TLS 1.2", "tls_1_3_cipher_suites": "TLS 1.3"}
PROTOCOLS = {**LEGACY_PROTOCOLS, **CURRENT_PROTOCOLS}
# The requirement of each failure mode this module finds.
MODES = {
    "legacy-protocol": "SEC-TLS-002",
    "weak-suite": "SEC-TLS-003",
    "no-forward-secrecy": "SEC-TLS-003",
    "untrusted-chain": "SEC-TLS-004",
    "hostname-mismatch": "SEC-TLS-004",
    "weak-key": "SEC-TLS-004",
    "expiring-certificate": "SEC-TLS-004",
    "hsts-missing": "SEC-TLS-005",
    "hsts-weak": "SEC-TLS-005",
    "client-certificate-optional": "SEC-TLS-006",
    "untrusted-client-certificate": "SEC-TLS-006",
    "client-certificate-refused": "SEC-TLS-006",
}
# The public path each mutual-TLS probe asks for: a refusal is then the transport's, never the
# service's answer to a missing token.
MUTUAL_PROBE_PATH = "/healthz"


class TlsScanError(Exception):
    """sslyze could not scan an endpoint (unreachable, no TLS, or sslyze itself failed)."""


@dataclass(frozen=True, order=True)
class Endpoint:
    """One https endpoint: the host name clients use and its port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Finding:
    """One defect of an endpoint: its failure mode and what was seen."""

    mode: str
    detail: str

    @property
    def requirement(self) -> str:
        return MODES[self.mode]


def https_endpoints(services: Mapping[str, str]) -> dict[Endpoint, list[str]]:
    """The distinct https endpoints of a profile's services, with the services behind each."""
    endpoints: dict[Endpoint, list[str]] = {}
    for name, url in services.items():
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            continue
        endpoint = Endpoint(parts.hostname, parts.port or 443)
        endpoints.setdefault(endpoint, []).append(name)
    return dict(sorted(endpoints.items()))


def find_sslyze() -> str | None:
    """The sslyze command: `$ZWFW_SSLYZE`, the checkout's `.venv-sslyze`, else `sslyze` on
    PATH."""
    override = os.environ.get(SSLYZE_ENV)
    if override:
        return override
    from zwfw.harness.requirements import conformance_dir

    try:
        checkout = conformance_dir().parent
    except HarnessConfigError:
        checkout = None
    if checkout is not None:
        local = checkout / SSLYZE_VENV / "bin" / "sslyze"
        if local.is_file():
            return str(local)
    return shutil.which("sslyze")


def _target(endpoint: Endpoint) -> str:
    """sslyze's `host:port{ip}`: the address pinned to IPv4 when the name has one, so a name
    like localhost is not tried on an IPv6 address the server does not listen on."""
    try:
        ipaddress.ip_address(endpoint.host)
        return f"{endpoint.host}:{endpoint.port}"
    except ValueError:
        pass
    try:
        address = socket.gethostbyname(endpoint.host)
    except OSError:
        return f"{endpoint.host}:{endpoint.port}"
    return f"{endpoint.host}:{endpoint.port}{{{address}}}"


def scan(
    endpoint: Endpoint,
    sslyze: str,
    timeout: float = SCAN_TIMEOUT,
    client_certificate: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """sslyze's result for one endpoint (its `scan_result` member), or TlsScanError. With
    ``client_certificate`` (certificate chain, key), sslyze presents it where the server asks
    for one, so an endpoint requiring mutual TLS is scanned as its clients see it."""
    commands = [f"--{flag}" for flag in ("sslv2", "sslv3", "tlsv1", "tlsv1_1", "tlsv1_2")]
    commands += ["--tlsv1_3", "--certinfo", "--http_headers"]
    if client_certificate is not None:
        commands += [f"--cert={client_certificate[0]}", f"--key={client_certificate[1]}"]
    with tempfile.TemporaryDirectory(prefix="zwfw-sslyze-") as scratch:
        out = Path(scratch) / "scan.json"
        try:
            done = subprocess.run(
                [sslyze, "--quiet", f"--json_out={out}", *commands, _target(endpoint)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TlsScanError(f"{endpoint}: sslyze did not finish: {error}") from None
        if not out.is_file():
            why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise TlsScanError(f"{endpoint}: sslyze wrote no result: {why}")
        document = json.loads(out.read_text(encoding="utf-8"))
    results = document.get("server_scan_results") or []
    if not results:
        raise TlsScanError(f"{endpoint}: sslyze returned no result")
    result = results[0]
    if result.get("connectivity_status") != "COMPLETED" or not result.get("scan_result"):
        why = result.get("connectivity_error_trace") or result.get("connectivity_status")
        raise TlsScanError(f"{endpoint}: no TLS connection: {why}")
    scan_result: dict[str, Any] = result["scan_result"]
    return scan_result


def _accepted(scan_result: Mapping[str, Any], member: str) -> list[dict[str, Any]]:
    entry = scan_result.get(member) or {}
    if entry.get("status") != "COMPLETED":
        why = entry.get("error_reason") or entry.get("status") or "not run"
        raise TlsScanError(f"sslyze could not test {PROTOCOLS[member]}: {why}")
    accepted: list[dict[str, Any]] = entry["result"].get("accepted_cipher_suites") or []
    return accepted


def weakness(name: str, anonymous: bool = False) -> str | None:
    """Why an IANA cipher suite name is weak (anonymous, export, RC4, DES/3DES, NULL, MD5, CBC
    with a SHA-1 MAC), or None."""
    upper = name.upper()
    if anonymous or "_ANON_" in upper or upper.startswith("TLS_NULL"):
        return "anonymous"
    checks = (
        ("EXPORT" in upper, "export"),
        ("_RC4_" in upper, "RC4"),
        ("3DES" in upper or "_DES_" in upper or "_DES40_" in upper, "DES/3DES"),
        ("WITH_NULL" in upper, "no encryption"),
        (upper.endswith("_MD5"), "MD5"),
        ("_CBC_" in upper and upper.endswith("_SHA"), "CBC with a SHA-1 MAC"),
    )
    return next((why for hit, why in checks if hit), None)


def forward_secret(name: str, protocol: str) -> bool:
    """Whether a suite's key exchange is ephemeral (every TLS 1.3 suite is)."""
    upper = name.upper()
    return protocol == "TLS 1.3" or upper.startswith(("TLS_ECDHE_", "TLS_DHE_"))


def protocol_findings(scan_result: Mapping[str, Any]) -> list[Finding]:
    """SEC-TLS-002 and -003: legacy protocol versions, weak suites, no forward secrecy."""
    findings: list[Finding] = []
    weak: dict[str, list[str]] = {}
    static: list[str] = []
    for member, protocol in PROTOCOLS.items():
        accepted = _accepted(scan_result, member)
        if accepted and member in LEGACY_PROTOCOLS:
            findings.append(Finding("legacy-protocol", f"{protocol} is accepted"))
        for suite in accepted:
            name = str(suite["cipher_suite"]["name"])
            why = weakness(name, bool(suite["cipher_suite"].get("is_anonymous")))
            if why is not None:
                weak.setdefault(f"{name} ({why})", []).append(protocol)
            if not forward_secret(name, protocol):
                static.append(f"{name} ({protocol})")
    findings += [
        Finding("weak-suite", f"{suite} accepted over {', '.join(protocols)}")
        for suite, protocols in weak.items()
    ]
    if static:
        listed = ", ".join(static[:5]) + (f" and {len(static) - 5} more" if len(static) > 5 else "")
        findings.append(Finding("no-forward-secrecy", f"static key exchange accepted: {listed}"))
    return findings


def load_anchors(ca_bundle: Path | None) -> list[x509.Certificate]:
    """The trust anchors: the profile's `tls.ca_bundle`, else the system store."""
    path = ca_bundle or Path(
        ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    )
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as error:
        raise HarnessConfigError(f"cannot read the trust anchors {path}: {error}") from None


def _names(leaf: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = [str(name).lower() for name in san.get_values_for_type(x509.DNSName)]
    return dns, [str(address) for address in san.get_values_for_type(x509.IPAddress)]


def hostname_matches(leaf: x509.Certificate, host: str) -> bool:
    """RFC 6125: the host among the certificate's subject alternative names (a wildcard
    stands for one left-most label); the common name is not consulted."""
    dns, addresses = _names(leaf)
    try:
        return str(ipaddress.ip_address(host)) in addresses
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for name in dns:
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _key_weakness(leaf: x509.Certificate) -> str | None:
    try:
        key = leaf.public_key()
    except (UnsupportedAlgorithm, ValueError):
        # A key this library cannot read (an SM2 key of a TLCP certificate) is not judged weak.
        return None
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"{type(key).__name__.removesuffix('PublicKey')} key of {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return f"EC key on {key.curve.name} ({key.curve.key_size} bits)"
    return None


def _chain_error(
    chain: Sequence[x509.Certificate], anchors: list[x509.Certificate], now: datetime
) -> str | None:
    """Why the chain does not lead to an anchor (the hostname aside: it is checked on its own,
    so the leaf is validated for a name it carries), or None."""
    leaf, intermediates = chain[0], list(chain[1:])
    dns, addresses = _names(leaf)
    if not dns and not addresses:
        return "the certificate names no host (no subject alternative name)"
    # A wildcard name is validated for one host it covers.
    subjects: list[x509.DNSName | x509.IPAddress] = [
        x509.DNSName("host." + name[2:] if name.startswith("*.") else name) for name in dns
    ]
    subjects += [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    policy = PolicyBuilder().store(Store(anchors)).time(now)
    invalid: list[str] = []
    for subject in subjects:
        try:
            verifier = policy.build_server_verifier(subject)
            break
        except ValueError:
            # A name that is no host name at all (a template left unexpanded, say).
            invalid.append(str(subject.value))
    else:
        return f"the certificate names no valid host: {', '.join(invalid)}"
    if invalid:
        return f"the certificate names invalid hosts: {', '.join(sorted(set(invalid)))}"
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as error:
        return str(error)
    return None


def certificate_findings(
    scan_result: Mapping[str, Any],
    host: str,
    anchors: list[x509.Certificate],
    now: datetime | None = None,
    horizon: timedelta = EXPIRY_HORIZON,
) -> list[Finding]:
    """SEC-TLS-004: chain to the trust anchor, hostname, key size, expiry horizon."""
    now = now or datetime.now(UTC)
    entry = scan_result.get("certificate_info") or {}
    if entry.get("status") != "COMPLETED":
        why = entry.get("error_reason") or entry.get("status") or "not run"
        raise TlsScanError(f"sslyze could not read the certificate: {why}")
    findings: list[Finding] = []
    for deployment in entry["result"]["certificate_deployments"]:
        chain = [
            x509.load_pem_x509_certificate(str(cert["as_pem"]).encode())
            for cert in deployment["received_certificate_chain"]
        ]
        leaf = chain[0]
        subject = leaf.subject.rfc4514_string()
        # The chain is judged at the scan's time; the horizon is judged below on its own.
        if (error := _chain_error(chain, anchors, min(now, leaf.not_valid_after_utc))) is not None:
            findings.append(Finding("untrusted-chain", f"{subject}: {error}"))
        if not hostname_matches(leaf, host):
            dns, addresses = _names(leaf)
            names = ", ".join(dns + addresses) or "none"
            findings.append(Finding("hostname-mismatch", f"{subject} names {names}, not {host}"))
        if (weak := _key_weakness(leaf)) is not None:
            findings.append(Finding("weak-key", f"{subject}: {weak}"))
        expires = leaf.not_valid_after_utc
        if expires - now < horizon:
            left = "expired" if expires <= now else f"expires in {(expires - now).days} days"
            findings.append(
                Finding(
                    "expiring-certificate",
                    f"{subject} {left} ({expires:%Y-%m-%d}; horizon {horizon.days} days)",
                )
            )
    return findings


def hsts_findings(value: str | None, where: str) -> list[Finding]:
    """SEC-TLS-005: a Strict-Transport-Security value with max-age of at least HSTS_MIN_AGE
    and includeSubDomains."""
    if not value:
        return [Finding("hsts-missing", f"{where}: no Strict-Transport-Security")]
    directives = {
        name.strip().lower(): argument.strip().strip('"')
        for name, _, argument in (part.partition("=") for part in value.split(";"))
    }
    try:
        age = int(directives.get("max-age", ""))
    except ValueError:
        age = -1
    problems = []
    if age < HSTS_MIN_AGE:
        problems.append(f"max-age {age if age >= 0 else 'missing'} < {HSTS_MIN_AGE}")
    if "includesubdomains" not in directives:
        problems.append("no includeSubDomains")
    return [Finding("hsts-weak", f"{where}: {'; '.join(problems)}")] if problems else []


def scanned_hsts(scan_result: Mapping[str, Any]) -> str | None:
    """The Strict-Transport-Security sslyze saw on the endpoint's answer to GET /, rebuilt as
    a header value (None when absent)."""
    entry = scan_result.get("http_headers") or {}
    if entry.get("status") != "COMPLETED":
        why = entry.get("error_reason") or entry.get("status") or "not run"
        raise TlsScanError(f"sslyze could not send an HTTP request: {why}")
    result = entry["result"]
    if result.get("http_error_trace"):
        raise TlsScanError(f"no HTTP answer over TLS: {result['http_error_trace']}")
    header = result.get("strict_transport_security_header")
    if not header:
        return None
    value = f"max-age={header.get('max_age')}"
    if header.get("include_subdomains"):
        value += "; includeSubDomains"
    if header.get("preload"):
        value += "; preload"
    return value


def judge(
    scan_result: Mapping[str, Any],
    endpoint: Endpoint,
    anchors: list[x509.Certificate],
    now: datetime | None = None,
) -> list[Finding]:
    """Every finding of one endpoint's scan."""
    return [
        *protocol_findings(scan_result),
        *certificate_findings(scan_result, endpoint.host, anchors, now),
        *hsts_findings(scanned_hsts(scan_result), f"{endpoint} GET /"),
    ]


def _stranger_certificate(directory: Path) -> tuple[Path, Path]:
    """A client certificate no trust anchor of the target can know: self-signed, made now."""
    stranger = tls_client_certificate("zwfw unknown client")
    cert_path, key_path = directory / "stranger.pem", directory / "stranger.key"
    cert_path.write_bytes(stranger.certificate_pem)
    key_path.write_bytes(stranger.key_pem)
    return cert_path, key_path


def _served(url: str, context: ssl.SSLContext, timeout: float) -> tuple[bool, str]:
    """Whether ``url`` answered 2xx/3xx to a client with ``context``, and what happened."""
    try:
        with httpx.Client(verify=context, timeout=timeout) as client:
            answer = client.get(url)
    except httpx.HTTPError as error:
        return False, f"{type(error).__name__}: {error}"
    return answer.status_code < 400, f"HTTP {answer.status_code}"


def mutual_tls_findings(
    url: str,
    ca_bundle: Path | None,
    client_certificate: tuple[Path, Path],
    timeout: float = 10.0,
) -> list[Finding]:
    """SEC-TLS-006 for one service declared mutual TLS: a client without a certificate and
    one with a certificate from an unknown issuer are refused, the profile's client is served.
    """
    if urlsplit(url).scheme != "https":
        return [Finding("client-certificate-refused", f"{url}: declared mutual TLS, not https")]
    probe = url.rstrip("/") + MUTUAL_PROBE_PATH
    cafile = str(ca_bundle) if ca_bundle else None
    found = []
    with tempfile.TemporaryDirectory(prefix="zwfw-mtls-") as scratch:
        stranger = _stranger_certificate(Path(scratch))
        clients = {}
        for name, chain in (("none", None), ("stranger", stranger), ("own", client_certificate)):
            context = ssl.create_default_context(cafile=cafile)
            if chain is not None:
                context.load_cert_chain(str(chain[0]), str(chain[1]))
            clients[name] = _served(probe, context, timeout)
    if clients["none"][0]:
        found.append(Finding(
            "client-certificate-optional",
            f"GET {probe} without a client certificate: {clients['none'][1]}",
        ))  # fmt: skip
    if clients["stranger"][0]:
        found.append(Finding(
            "untrusted-client-certificate",
            f"GET {probe} with a self-signed client certificate: {clients['stranger'][1]}",
        ))  # fmt: skip
    if not clients["own"][0]:
        found.append(Finding(
            "client-certificate-refused",
            f"GET {probe} with the profile's client certificate: {clients['own'][1]}",
        ))  # fmt: skip
    return found
