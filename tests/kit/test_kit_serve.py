"""`zwfw serve`, `zwfw migrate` and `zwfw audit verify` as an operator runs them."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from zwfw.cli import app as cli
from zwfw.services import SERVICES

HERE = Path(__file__).resolve().parent
ZWFW = Path(sys.executable).with_name("zwfw")
TARGET = "kit_example_service:SERVICE"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    def __init__(self, process: subprocess.Popen[str], base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return self.process.returncode, stderr


def _start(config: Path, *extra: str, scheme: str = "http", **client: object) -> Served:
    port = _free_port()
    process = subprocess.Popen(
        [
            str(ZWFW),
            "serve",
            TARGET,
            "--app-dir",
            str(HERE),
            "--config",
            str(config),
            "--port",
            str(port),
            "--graceful-timeout",
            "5",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")},
    )
    served = Served(process, f"{scheme}://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            code, stderr = served.stop()
            pytest.fail(f"zwfw serve exited with {code}: {stderr}")
        try:
            httpx.get(f"{served.base_url}/healthz", timeout=1, **client)  # type: ignore[arg-type]
            return served
        except httpx.TransportError:
            time.sleep(0.2)
    served.stop()
    pytest.fail("zwfw serve did not answer within 30 s")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "example.yaml"
    path.write_text(f"database_url: sqlite:///{tmp_path / 'example.sqlite3'}\nlog_level: INFO\n")
    return path


def test_serve_runs_the_service_migrates_and_stops_gracefully(config: Path) -> None:
    served = _start(config)
    try:
        health = httpx.get(f"{served.base_url}/healthz", timeout=5)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "service": "example", "version": "0.0.1"}
        assert httpx.get(f"{served.base_url}/readyz", timeout=5).status_code == 200
        httpx.get(f"{served.base_url}/notes/110101199003074578", timeout=5)
    finally:
        code, stderr = served.stop()
    # uvicorn finishes its shutdown, then re-raises the signal it caught (as init systems expect).
    assert code in (0, -signal.SIGTERM), stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(r["logger"] == "zwfw.access" and r["route"] == "/notes/{code}" for r in lines)
    assert "110101199003074578" not in stderr
    assert any(r["message"] == "Application shutdown complete." for r in lines)


def test_serve_without_migrations_is_not_ready(config: Path) -> None:
    served = _start(config, "--no-migrate")
    try:
        response = httpx.get(f"{served.base_url}/readyz", timeout=5)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
    finally:
        served.stop()


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, object] | None,
    *,
    ca: bool = False,
    san: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address(san))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("zwfw test CA", ca_key, None, ca=True)
    _write(tmp_path / "ca", ca, ca_key)
    for name, san in (("server", "127.0.0.1"), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(tmp_path / name, _certificate(name, key, (ca, ca_key), san=san), key)
    return tmp_path


def test_serve_terminates_mutual_tls(config: Path, pki: Path) -> None:
    config.write_text(
        config.read_text()
        + f"""
tls:
  certfile: {pki / "server.crt"}
  keyfile: {pki / "server.key"}
  client_ca: {pki / "ca.crt"}
  client_cert: required
"""
    )
    import ssl

    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    served = _start(config, scheme="https", verify=context)
    try:
        response = httpx.get(f"{served.base_url}/healthz", verify=context, timeout=5)
        assert response.status_code == 200
        assert "max-age" in response.headers["strict-transport-security"]
        anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{served.base_url}/healthz", verify=anonymous, timeout=5)
    finally:
        served.stop()


def test_serve_unknown_service_lists_the_available_ones() -> None:
    outcome = CliRunner().invoke(cli, ["serve", "no-such-service"])
    assert outcome.exit_code == 2
    assert "unknown service 'no-such-service'" in outcome.output
    for name in SERVICES:
        assert name in outcome.output
    if not SERVICES:
        assert "none are registered yet" in outcome.output


def test_serve_with_a_bad_config_file_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("prot: 80\n")
    outcome = CliRunner().invoke(
        cli, ["serve", TARGET, "--app-dir", str(HERE), "--config", str(bad)]
    )
    assert outcome.exit_code == 2
    assert outcome.output.strip() == f"zwfw: {bad}: unknown key 'prot'"


def test_audit_verify_needs_a_database() -> None:
    outcome = CliRunner().invoke(cli, ["audit", "verify"])
    assert outcome.exit_code == 2
    assert "--config" in outcome.output


def test_audit_verify_reads_the_database_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "audit.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'a.sqlite3'}\n")
    runner = CliRunner()
    outcome = runner.invoke(cli, ["audit", "verify", "--config", str(config)])
    assert outcome.exit_code == 2
    assert "does not exist" in outcome.output
    assert not (tmp_path / "a.sqlite3").exists()
    (tmp_path / "a.sqlite3").touch()
    outcome = runner.invoke(cli, ["audit", "verify", "--config", str(config)])
    assert outcome.exit_code == 2
    assert "no audit log" in outcome.output
    assert (
        runner.invoke(
            cli, ["migrate", TARGET, "--app-dir", str(HERE), "--config", str(config)]
        ).exit_code
        == 0
    )
    outcome = runner.invoke(cli, ["audit", "verify", "--config", str(config)])
    assert outcome.exit_code == 0
    assert outcome.output.startswith("ok: 0 records, head 000")


def test_a_worker_killed_while_the_supervisor_waits_for_its_health_answer_is_seen_dead_at_once(
    tmp_path: Path,
) -> None:
    """A killed replica is replaced at once, not after the health-check bound (a minute): the
    supervisor's wait for the dead worker's answer ends with the worker."""
    import uvicorn

    from zwfw.services.kit.serve import WorkerProcess

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    try:
        worker = WorkerProcess(uvicorn.Config("zwfw.services.kit.serve:worker_app"), [listening])
        worker.start()
        worker.process.kill()
        worker.process.join()
        # Nothing can answer any more, and the supervisor's end of the pipe says so.
        assert worker.parent_conn.poll(0)
        assert worker.ping(timeout=60) is False
    finally:
        listening.close()
