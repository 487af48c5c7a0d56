"""The nginx gateway template: nginx accepts it, it says what matters, and a running gateway
keeps answering when a replica dies, hides /metrics, refuses weak TLS and limits rates."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "gateway"
TEMPLATE = ROLE / "templates" / "nginx.conf.j2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _self_signed(openssl: str, directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def _variables(state: Path, cert: Path, key: Path, **overrides: Any) -> dict[str, Any]:
    """The role's defaults, with the paths a deployment would fill in."""
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    values.update(
        gateway_state_dir=str(state),
        gateway_user="root" if os.geteuid() == 0 else "",
        gateway_tls_certificate=str(cert),
        gateway_tls_key=str(key),
        gateway_upstream_tls={"ca": str(cert)},
        gateway_sites=[
            {"name": "zwfw_hall_340000", "server_name": "hall.340000.zwfw.test",
             "listen": 18443, "replicas": ["127.0.0.1:18301", "127.0.0.1:18302"]},
            {"name": "zwfw_identity_340000", "server_name": "identity.340000.zwfw.test",
             "listen": 18444, "replicas": ["127.0.0.1:18201", "127.0.0.1:18202"]},
        ],
    )  # fmt: skip
    values.update(overrides)
    return values


def render(values: dict[str, Any], out: Path) -> Path:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(**values)
    state = Path(values["gateway_state_dir"])
    for sub in ("log", "tmp"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def nginx_test(nginx: str, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx, "-t", "-q", "-p", str(conf.parent), "-c", str(conf)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def certificate(openssl: str, tmp_path: Path) -> tuple[Path, Path]:
    return _self_signed(openssl, tmp_path, "gateway")


@pytest.fixture
def rendered(tmp_path: Path, certificate: tuple[Path, Path]) -> str:
    conf = render(_variables(tmp_path / "state", *certificate), tmp_path / "nginx.conf")
    return conf.read_text(encoding="utf-8")


def test_nginx_accepts_the_rendered_configuration(
    nginx: str, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    conf = render(_variables(tmp_path / "state", *certificate), tmp_path / "nginx.conf")
    result = nginx_test(nginx, conf)
    assert result.returncode == 0, result.stderr


def test_nginx_rejects_a_missing_certificate(
    nginx: str, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    values = _variables(tmp_path / "state", tmp_path / "absent.pem", certificate[1])
    result = nginx_test(nginx, render(values, tmp_path / "nginx.conf"))
    assert result.returncode != 0
    assert "absent.pem" in result.stderr


def test_rendering_without_a_required_value_fails(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    values = _variables(tmp_path / "state", *certificate)
    del values["gateway_tls_key"]
    with pytest.raises(jinja2.UndefinedError, match="gateway_tls_key"):
        render(values, tmp_path / "nginx.conf")


def test_only_tls_1_2_and_1_3_with_forward_secret_aead_suites(rendered: str, openssl: str) -> None:
    protocols = re.findall(r"^\s*ssl_protocols (.+);$", rendered, re.M)
    assert protocols == ["TLSv1.2 TLSv1.3"]
    (ciphers,) = re.findall(r"^\s*ssl_ciphers (.+);$", rendered, re.M)
    listed = subprocess.run(
        [openssl, "ciphers", "-v", "-tls1_2", ciphers],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.splitlines()  # fmt: skip
    assert listed
    for line in listed:
        name, version, kx, _auth, enc, _mac = line.split()[:6]
        if version == "TLSv1.3":
            continue  # TLS 1.3 suites are all AEAD with ephemeral key exchange
        assert kx == "Kx=ECDH", line
        assert enc.startswith(("Enc=AESGCM", "Enc=CHACHA20")), line
    assert re.search(r"^\s*ssl_session_tickets off;", rendered, re.M)


def test_headers_rate_limits_and_failover_are_configured(rendered: str) -> None:
    assert re.search(
        r'add_header Strict-Transport-Security "max-age=\d{8,}; includeSubDomains" always;',
        rendered,
    )
    for header in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert f"add_header {header} " in rendered
    assert re.search(
        r"limit_req_zone \$binary_remote_addr zone=zwfw_per_client:\S+ rate=", rendered
    )
    assert rendered.count("limit_req zone=") == 4  # general + sign-in, on each of two sites
    assert "proxy_next_upstream error timeout http_502 http_503;" in rendered
    upstreams = re.findall(r"upstream (\w+) \{(.*?)\}", rendered, re.S)
    assert [name for name, _ in upstreams] == ["zwfw_hall_340000", "zwfw_identity_340000"]
    for _, body in upstreams:
        servers = re.findall(r"server (\S+) max_fails=\d+ fail_timeout=\S+;", body)
        assert len(servers) == 2


def test_metrics_is_not_served(rendered: str) -> None:
    assert len(re.findall(r"location = /metrics \{\s*return 404;", rendered)) == 2


# --- a running gateway ---------------------------------------------------------------------


class Replica:
    """A stand-in upstream (python -m http.server) that also has a /metrics page."""

    def __init__(self, root: Path, name: str) -> None:
        self.port = _free_port()
        self.dir = root / name
        self.dir.mkdir()
        (self.dir / "index.html").write_text(name, encoding="utf-8")
        (self.dir / "metrics").write_text("zwfw_http_requests_total 1\n", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
             "--directory", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_port(self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def gateway(
    nginx: str, tmp_path: Path, certificate: tuple[Path, Path], request: pytest.FixtureRequest
) -> Iterator[tuple[int, list[Replica]]]:
    # Indirect parametrisation adds template variables.
    extra: dict[str, Any] = getattr(request, "param", {})
    replicas = [Replica(tmp_path, "replica-a"), Replica(tmp_path, "replica-b")]
    listen = _free_port()
    values = _variables(
        tmp_path / "state",
        *certificate,
        gateway_upstream_tls=None,
        gateway_worker_processes=1,
        gateway_rate_per_client="5r/s",
        gateway_burst_per_client=5,
        gateway_sites=[
            {"name": "zwfw_hall_340000", "server_name": "localhost", "listen": listen,
             "upstream_scheme": "http",
             "replicas": [f"127.0.0.1:{r.port}" for r in replicas]},
        ],
        **extra,
    )  # fmt: skip
    conf = render(values, tmp_path / "nginx.conf")
    started = subprocess.run(
        [nginx, "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        _wait_for_port(listen)
        yield listen, replicas
    finally:
        subprocess.run(
            [nginx, "-p", str(tmp_path), "-c", str(conf), "-s", "quit"],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        for replica in replicas:
            replica.stop()


def _client_context(cafile: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False
    return context


def _get(
    port: int, path: str, context: ssl.SSLContext, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_gateway_fails_over_when_a_replica_dies(
    gateway: tuple[int, list[Replica]], certificate: tuple[Path, Path]
) -> None:
    port, replicas = gateway
    context = _client_context(certificate[0])
    seen = set()
    for _ in range(4):
        status, headers, body = _get(port, "/", context)
        assert status == 200
        assert headers["strict-transport-security"].startswith("max-age=")
        seen.add(body.decode())
        time.sleep(0.25)  # stay under the 5 r/s limit of this fixture
    assert seen == {"replica-a", "replica-b"}  # both replicas take traffic
    replicas[0].stop()
    for _ in range(4):
        status, _headers, body = _get(port, "/", context)
        assert (status, body) == (200, b"replica-b")
        time.sleep(0.25)


def test_gateway_answers_problem_json_when_no_replica_is_left(
    gateway: tuple[int, list[Replica]], certificate: tuple[Path, Path]
) -> None:
    port, replicas = gateway
    for replica in replicas:
        replica.stop()
    status, headers, body = _get(port, "/", _client_context(certificate[0]))
    assert status == 503
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 503


def test_gateway_hides_metrics(
    gateway: tuple[int, list[Replica]], certificate: tuple[Path, Path]
) -> None:
    port, replicas = gateway
    # The replica itself serves it (Prometheus scrapes there) ...
    direct = http.client.HTTPConnection("127.0.0.1", replicas[0].port, timeout=10)
    direct.request("GET", "/metrics")
    assert direct.getresponse().status == 200
    direct.close()
    # ... the public side does not.
    status, headers, body = _get(port, "/metrics", _client_context(certificate[0]))
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 404


def test_gateway_limits_the_request_rate(
    gateway: tuple[int, list[Replica]], certificate: tuple[Path, Path]
) -> None:
    port, _ = gateway
    context = _client_context(certificate[0])
    answers = [_get(port, "/", context) for _ in range(20)]
    statuses = [status for status, _, _ in answers]
    assert 200 in statuses
    assert 429 in statuses
    limited = next(a for a in answers if a[0] == 429)
    assert limited[1]["content-type"] == "application/problem+json"
    assert limited[1]["retry-after"] == "1"


def _handshake(port: int, version: ssl.TLSVersion, ciphers: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = version
    context.maximum_version = version
    context.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw),
    ):
        pass


def test_gateway_accepts_tls_1_2_with_ecdhe_aes_gcm(gateway: tuple[int, list[Replica]]) -> None:
    _handshake(gateway[0], ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("version", "ciphers"),
    [
        (ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0"),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA"),
    ],
    ids=["tls1.1", "tls1.2-cbc"],
)
def test_gateway_refuses_weak_tls(
    gateway: tuple[int, list[Replica]], version: ssl.TLSVersion, ciphers: str
) -> None:
    with pytest.raises(ssl.SSLError):
        _handshake(gateway[0], version, ciphers)


def test_replicas_are_verified_under_their_service_name(rendered: str) -> None:
    """Upstream TLS is checked against the name the replicas' certificates carry (the
    service's), not the upstream block's name, which no certificate has."""
    assert re.search(r"^\s*proxy_ssl_verify on;", rendered, re.M)
    names = re.findall(r"^\s*proxy_ssl_name (\S+);", rendered, re.M)
    assert names == ["hall.340000.zwfw.test", "identity.340000.zwfw.test"]
    assert rendered.count("proxy_ssl_server_name on;") == 2


def test_plain_http_upstreams_get_no_tls_names(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    values = _variables(tmp_path / "state", *certificate, gateway_upstream_tls=None)
    text = render(values, tmp_path / "nginx.conf").read_text(encoding="utf-8")
    assert "proxy_ssl_" not in text


def test_exempt_networks_are_not_counted_by_the_limits(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    values = _variables(
        tmp_path / "state", *certificate, gateway_rate_limit_exempt=["10.20.0.0/16"]
    )
    text = render(values, tmp_path / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"geo \$zwfw_rate_limited \{\s*default 1;\s*10\.20\.0\.0/16 0;", text)
    assert len(re.findall(r"limit_(?:req|conn)_zone \$zwfw_client ", text)) == 3
    assert "$binary_remote_addr zone=" not in text


@pytest.mark.parametrize(
    "gateway", [{"gateway_rate_limit_exempt": ["127.0.0.1/32"]}], indirect=True
)
def test_gateway_does_not_limit_an_exempt_network(
    gateway: tuple[int, list[Replica]], certificate: tuple[Path, Path]
) -> None:
    port, _ = gateway
    context = _client_context(certificate[0])
    exempt = [_get(port, "/", context)[0] for _ in range(20)]
    assert exempt == [200] * 20
    # Any other client address still is (the loopback network answers on 127.0.0.2 too).
    other = [_get(port, "/", context, source="127.0.0.2")[0] for _ in range(20)]
    assert 429 in other
