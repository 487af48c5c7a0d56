"""The security suite's transport scans (SEC-TLS-002..006) against real TLS servers: nginx
configured well, with legacy protocols, a weak suite and no HSTS, and with a certificate for
another host that expires soon; and, for mutual TLS, requiring a client certificate from the
trust anchor, taking one only optionally, and taking one from any issuer. Each server is
scanned once by sslyze (a few seconds each, in parallel); the suite itself then runs against
profiles naming them."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from zwfw.harness.runner import _pytest_args, suites_root
from zwfw.harness.tls import (
    Endpoint,
    find_sslyze,
    forward_secret,
    hostname_matches,
    hsts_findings,
    https_endpoints,
    judge,
    scan,
    weakness,
)

REPO = Path(__file__).resolve().parents[2]
TLS_IDS = ("SEC-TLS-001", "SEC-TLS-002", "SEC-TLS-003", "SEC-TLS-004", "SEC-TLS-005")
MUTUAL = "SEC-TLS-006"
STRONG = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
HSTS = 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;'


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, name: str, cert: x509.Certificate, key: Any) -> None:
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write(directory, name, cert, key)
    return cert, key


def _server_cert(
    directory: Path,
    name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    host: str,
    days: int,
    key: Any = None,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> None:
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), False
        )
        .sign(ca[1], hashes.SHA256())
    )
    _write(directory, name, cert, key)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# name -> (certificate, nginx directives)
SERVERS = {
    "good": ("good", f"ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers {STRONG}; {HSTS}"),
    # OpenSSL 3 offers TLS 1.0/1.1 and SHA-1 suites only at security level 0.
    "legacy": (
        "good",
        f'ssl_protocols TLSv1 TLSv1.1 TLSv1.2; ssl_ciphers "{STRONG}:ECDHE-ECDSA-AES128-SHA:'
        '@SECLEVEL=0";',
    ),
    "certificate": ("wrong-host", f"ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers {STRONG}; {HSTS}"),
}
# Servers for mutual TLS ({ca} is the directory of the trust anchor): required from the
# anchor; optional (a client without one is served too); any issuer taken, none refused.
GOOD = f"ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers {STRONG}; {HSTS}"
MUTUAL_SERVERS = {
    "mutual": ("good", GOOD + " ssl_client_certificate {ca}/ca.pem; ssl_verify_client on;"),
    "mutual-optional": (
        "good",
        GOOD + " ssl_client_certificate {ca}/ca.pem; ssl_verify_client optional;",
    ),
    "mutual-any-issuer": (
        "good",
        GOOD + " ssl_verify_client optional_no_ca; if ($ssl_client_verify = NONE) { return 400; }",
    ),
}


def _missing(message: str) -> NoReturn:
    """CI must run these scans: a missing tool fails there, and is skipped on a workstation."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def sslyze() -> str:
    command = find_sslyze()
    if command is None:
        _missing("sslyze is not installed (make sslyze)")
    return command


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    """nginx serving the three configurations on loopback ports, and the directory holding
    their trust anchor (ca.pem) and another (other-ca.pem)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).is_file():
        _missing("nginx is not installed (apt-get install nginx)")
    directory = tmp_path_factory.mktemp("tls")
    ca = _ca(directory, "ca")
    _ca(directory, "other-ca")
    _server_cert(directory, "good", ca, "localhost", days=365)
    # For another host name, and expiring within the 30-day horizon.
    _server_cert(directory, "wrong-host", ca, "portal.example.gov.cn", days=10)
    _server_cert(directory, "client", ca, "province-a", 365, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    configured = SERVERS | {
        name: (cert, directives.replace("{ca}", str(directory)))
        for name, (cert, directives) in MUTUAL_SERVERS.items()
    }
    ports = {name: _free_port() for name in configured}
    blocks = "\n".join(
        f"server {{ listen 127.0.0.1:{ports[name]} ssl; "
        f"ssl_certificate {directory}/{cert}.pem; ssl_certificate_key {directory}/{cert}.key; "
        f"{directives} location / {{ return 200 'ok'; }} }}"
        for name, (cert, directives) in configured.items()
    )
    temp = directory / "temp"
    temp.mkdir()
    conf = directory / "nginx.conf"
    conf.write_text(
        f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log;\n"
        "events {}\n"
        f"http {{ access_log off; client_body_temp_path {temp}; proxy_temp_path {temp}; "
        f"fastcgi_temp_path {temp}; uwsgi_temp_path {temp}; scgi_temp_path {temp};\n"
        f"{blocks}\n}}\n"
    )
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(directory)])
    try:
        deadline = time.monotonic() + 10
        for port in ports.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log = (directory / "error.log").read_text(errors="replace")
                        pytest.fail(f"nginx did not start: {log}")
                    time.sleep(0.05)
        yield directory, ports
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def scans(servers: tuple[Path, dict[str, int]], sslyze: str) -> dict[str, dict[str, Any]]:
    _, ports = servers
    plain = {name: port for name, port in ports.items() if name in SERVERS}
    with ThreadPoolExecutor(max_workers=len(plain)) as pool:
        results = pool.map(lambda port: scan(Endpoint("localhost", port), sslyze), plain.values())
        return dict(zip(plain, results, strict=True))


def _anchors(directory: Path, name: str = "ca") -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates((directory / f"{name}.pem").read_bytes())


def _modes(
    scans: dict[str, dict[str, Any]], servers: tuple[Path, dict[str, int]], name: str,
    anchor: str = "ca",
) -> set[str]:  # fmt: skip
    directory, ports = servers
    found = judge(scans[name], Endpoint("localhost", ports[name]), _anchors(directory, anchor))
    return {finding.mode for finding in found}


def _scanned_chain(pem: str) -> dict[str, Any]:
    """An sslyze scan result made up around one received certificate."""
    return {
        "certificate_info": {
            "status": "COMPLETED",
            "result": {"certificate_deployments": [{"received_certificate_chain": [
                {"as_pem": pem}
            ]}]},
        }
    }  # fmt: skip


def test_a_well_configured_server_has_no_finding(
    scans: dict[str, dict[str, Any]], servers: tuple[Path, dict[str, int]]
) -> None:
    assert _modes(scans, servers, "good") == set()


def test_legacy_protocols_weak_suites_and_missing_hsts_are_found(
    scans: dict[str, dict[str, Any]], servers: tuple[Path, dict[str, int]]
) -> None:
    assert _modes(scans, servers, "legacy") == {"legacy-protocol", "weak-suite", "hsts-missing"}


def test_a_certificate_for_another_host_expiring_soon_is_found(
    scans: dict[str, dict[str, Any]], servers: tuple[Path, dict[str, int]]
) -> None:
    assert _modes(scans, servers, "certificate") == {"hostname-mismatch", "expiring-certificate"}


def test_a_chain_to_another_anchor_is_untrusted(
    scans: dict[str, dict[str, Any]], servers: tuple[Path, dict[str, int]]
) -> None:
    assert _modes(scans, servers, "good", anchor="other-ca") == {"untrusted-chain"}


def _run_suite(
    servers: tuple[Path, dict[str, int]], tmp_path: Path, services: dict[str, str],
    internal_only: tuple[str, ...] = (), mutual: tuple[str, ...] = (),
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The transport tests of the security suite against a profile; their results by ID.
    Services named in ``mutual`` are declared mutual TLS, with the anchor's client."""
    directory, _ = servers
    tls = {"ca_bundle": str(directory / "ca.pem")}
    if mutual:
        tls |= {
            "client_cert": str(directory / "client.pem"),
            "client_key": str(directory / "client.key"),
            "mutual": list(mutual),
        }
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "TLS scan province",
                "region_code": "340000",
                "services": services,
                "internal_only": list(internal_only),
                "tls": tls,
            }
        )
    )
    report = tmp_path / "report.json"
    args = [
        *_pytest_args(suites_root()),
        "--target", str(profile), "--zwfw-results", str(report), "--zwfw-partial",
        str(REPO / "security" / "test_transport.py"),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ},
    )
    assert report.is_file(), done.stdout + done.stderr
    document = json.loads(report.read_text(encoding="utf-8"))
    return {r["id"]: r for r in document["requirements"] if r["id"] in (*TLS_IDS, MUTUAL)}


def _failing(results: dict[str, dict[str, Any]]) -> set[str]:
    return {rid for rid, result in results.items() if result["status"] == "fail"}


@pytest.fixture(scope="module")
def suite_runs(
    servers: tuple[Path, dict[str, int]], sslyze: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, dict[str, Any]]]:
    """The suite's transport tests against a profile naming each server (the hub, declared
    mutual TLS, for the mutual ones), and against a profile on plain http only (every service
    internal_only); run side by side."""
    _, ports = servers
    Profile = tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]
    profiles: dict[str, Profile] = {
        name: ({"hall": f"https://localhost:{ports[name]}"}, (), ()) for name in SERVERS
    }
    profiles |= {
        name: ({"hub": f"https://localhost:{ports[name]}"}, (), ("hub",)) for name in MUTUAL_SERVERS
    }
    profiles["http-only"] = ({"hall": "http://127.0.0.1:9"}, ("hall",), ())
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = {
            name: pool.submit(
                _run_suite, servers, tmp_path_factory.mktemp(name), services, internal, mutual
            )
            for name, (services, internal, mutual) in profiles.items()
        }
        return {name: run.result() for name, run in runs.items()}


@pytest.mark.parametrize(
    ("server", "fails"),
    [
        ("good", set()),
        ("legacy", {"SEC-TLS-002", "SEC-TLS-003", "SEC-TLS-005"}),
        ("certificate", {"SEC-TLS-004"}),
    ],
)
def test_the_suite_fails_exactly_the_requirements_a_server_breaks(
    suite_runs: dict[str, dict[str, dict[str, Any]]], server: str, fails: set[str]
) -> None:
    results = suite_runs[server]
    assert _failing(results) == fails, {r: results[r]["reason"] for r in results}
    assert all(results[r]["status"] == "pass" for r in set(TLS_IDS) - fails)
    # No service declared mutual TLS: not tested and out of scope, never passed.
    assert (results[MUTUAL]["status"], results[MUTUAL]["in_scope"]) == ("not-tested", False)
    assert "no mutual-TLS endpoint" in results[MUTUAL]["reason"]


@pytest.mark.parametrize(
    ("server", "mode"),
    [
        ("mutual", None),
        ("mutual-optional", "client-certificate-optional"),
        ("mutual-any-issuer", "untrusted-client-certificate"),
    ],
)
def test_a_declared_mutual_tls_endpoint_must_take_only_the_anchors_clients(
    suite_runs: dict[str, dict[str, dict[str, Any]]], server: str, mode: str | None
) -> None:
    """Scanned with the profile's client certificate, every server passes the scans; SEC-TLS-006
    fails for the one that serves a client without a certificate, or with a stranger's."""
    results = suite_runs[server]
    assert _failing(results) == ({MUTUAL} if mode else set()), {
        r: results[r]["reason"] for r in results
    }
    assert all(results[r]["status"] == "pass" for r in TLS_IDS), results
    if mode:
        assert mode in results[MUTUAL]["reason"], results[MUTUAL]["reason"]
    else:
        assert (results[MUTUAL]["status"], results[MUTUAL]["in_scope"]) == ("pass", True)


def test_mutual_tls_probes_need_https_and_the_profiles_client(tmp_path: Path) -> None:
    from zwfw.harness.tls import mutual_tls_findings

    found = mutual_tls_findings("http://127.0.0.1:9", None, (tmp_path / "c", tmp_path / "k"))
    assert [(f.mode, f.requirement) for f in found] == [("client-certificate-refused", MUTUAL)]


def test_http_only_profiles_leave_the_scans_not_tested_and_out_of_scope(
    suite_runs: dict[str, dict[str, dict[str, Any]]],
) -> None:
    results = suite_runs["http-only"]
    assert results["SEC-TLS-001"]["status"] == "pass"
    for rid in TLS_IDS[1:]:
        assert results[rid]["status"] == "not-tested"
        assert results[rid]["in_scope"] is False
        assert "no https endpoint" in results[rid]["reason"]


@pytest.mark.parametrize(
    ("suite", "why"),
    [
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES/3DES"),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", "RC4"),
        ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", "export"),
        ("TLS_DH_anon_WITH_AES_128_CBC_SHA", "anonymous"),
        ("TLS_RSA_WITH_NULL_SHA256", "no encryption"),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "CBC with a SHA-1 MAC"),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", None),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", None),
    ],
)
def test_weak_suites_by_name(suite: str, why: str | None) -> None:
    assert weakness(suite) == why


def test_forward_secrecy_by_key_exchange() -> None:
    assert forward_secret("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2")
    assert forward_secret("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2")
    assert forward_secret("TLS_AES_128_GCM_SHA256", "TLS 1.3")
    assert not forward_secret("TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2")
    assert not forward_secret("TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2")


def test_hsts_values() -> None:
    assert hsts_findings("max-age=63072000; includeSubDomains", "x") == []
    assert [f.mode for f in hsts_findings(None, "x")] == ["hsts-missing"]
    assert [f.mode for f in hsts_findings("max-age=3600; includeSubDomains", "x")] == ["hsts-weak"]
    assert [f.mode for f in hsts_findings("max-age=63072000", "x")] == ["hsts-weak"]
    assert [f.mode for f in hsts_findings("includeSubDomains", "x")] == ["hsts-weak"]


def test_hostnames_and_keys(tmp_path: Path) -> None:
    ca = _ca(tmp_path, "ca")
    _server_cert(tmp_path, "wild", ca, "*.zwfw.example.gov.cn", days=365)
    leaf = x509.load_pem_x509_certificate((tmp_path / "wild.pem").read_bytes())
    assert hostname_matches(leaf, "hall.zwfw.example.gov.cn")
    assert not hostname_matches(leaf, "a.hall.zwfw.example.gov.cn")
    assert not hostname_matches(leaf, "zwfw.example.gov.cn")
    # A 1024-bit RSA key is weak; the scan result is made up around the certificate.
    _server_cert(tmp_path, "rsa", ca, "localhost", 365, rsa.generate_private_key(65537, 1024))
    pem = (tmp_path / "rsa.pem").read_text()
    scan_result = _scanned_chain(pem)
    from zwfw.harness.tls import certificate_findings

    found = certificate_findings(scan_result, "localhost", [ca[0]])
    assert [f.mode for f in found] == ["weak-key"]


def test_https_endpoints_are_deduplicated_and_http_ones_left_out() -> None:
    endpoints = https_endpoints(
        {
            "hall": "https://gw.example.gov.cn/hall",
            "elicense": "https://gw.example.gov.cn/elicense",
            "hub": "https://hub.example.gov.cn:8443",
            "eseal": "http://10.0.0.3:8080",
        }
    )
    assert endpoints == {
        Endpoint("gw.example.gov.cn", 443): ["hall", "elicense"],
        Endpoint("hub.example.gov.cn", 8443): ["hub"],
    }


def test_a_certificate_naming_no_valid_host_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """A name no host can have (a template's unexpanded backreference) beside valid ones: the
    chain is judged, and the junk name reported, rather than the whole check erroring."""
    from zwfw.harness.tls import certificate_findings

    ca = _ca(tmp_path, "ca")
    _server_cert(tmp_path, "junk", ca, "\\1.zwfw", days=365)
    pem = (tmp_path / "junk.pem").read_text()
    scan_result = _scanned_chain(pem)
    found = certificate_findings(scan_result, "localhost", [ca[0]])
    assert "untrusted-chain" in [f.mode for f in found]
    assert any("\\1.zwfw" in f.detail for f in found)
