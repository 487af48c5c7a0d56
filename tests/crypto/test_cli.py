from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from zwfw.crypto import ses
from zwfw.crypto.cli import register
from zwfw.crypto.keystore import DirectoryBlobStore, EncryptedKeyStore, KeyEncryptionKey
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import SM2Certificate

CONTENT = "<Licence>食品经营许可证</Licence>".encode()


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register(app)
    return app


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.delenv("ZWFW_KEK", raising=False)
    monkeypatch.delenv("ZWFW_KEK_FILE", raising=False)
    return CliRunner()


@pytest.fixture
def pki(tmp_path, cli, runner):
    """Root CA, seal maker and signer made through the CLI."""
    root = runner.invoke(
        cli, ["pki", "init-ca", "--name", "省级电子印章根CA", "--out", str(tmp_path / "root")]
    )
    assert root.exit_code == 0, root.output
    for profile, name in (("seal-maker", "制章者"), ("signer", "签章者")):
        done = runner.invoke(
            cli,
            ["pki", "issue", "--ca", str(tmp_path / "root"), "--profile", profile,
             "--name", name, "--out", str(tmp_path / profile)],
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        assert f"profile:  {profile}" in done.output
    return tmp_path


def _party(directory):
    cert = SM2Certificate.load((directory / "cert.pem").read_bytes())
    key = SM2PrivateKey.from_pem((directory / "key.pem").read_bytes())
    return cert, key


def _signed(pki, content: bytes = CONTENT) -> bytes:
    maker_cert, maker_key = _party(pki / "seal-maker")
    signer_cert, signer_key = _party(pki / "signer")
    now = datetime.now(UTC)
    seal_der = ses.make_seal(
        maker_cert=maker_cert, maker_key=maker_key, es_id="3400000000007", name="测试章",
        seal_type=1, signer_certs=[signer_cert], picture=ses.SealPicture("PNG", b"png", 30, 30),
        valid_start=now - timedelta(minutes=1), valid_end=now + timedelta(days=30),
    )  # fmt: skip
    return ses.sign(seal_der, signer_cert, signer_key, content=content)


def test_pki_writes_certificates_and_0600_keys(pki, run_openssl) -> None:
    for sub in ("root", "seal-maker", "signer"):
        assert stat.S_IMODE((pki / sub / "key.pem").stat().st_mode) == 0o600
    ok = run_openssl(
        "verify", "-vfyopt", "distid:1234567812345678", "-CAfile", pki / "root" / "cert.pem",
        pki / "seal-maker" / "cert.pem", pki / "signer" / "cert.pem",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_seal_verify_valid_base64_signature(pki, cli, runner) -> None:
    (pki / "doc.xml").write_bytes(CONTENT)
    (pki / "sig.b64").write_bytes(base64.b64encode(_signed(pki)) + b"\n")
    out = runner.invoke(
        cli, ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.b64"),
              "--trust", str(pki / "root" / "cert.pem")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.output.startswith("seal signature: VALID")
    for n, name in ses.STEP_NAMES.items():
        assert f"[{n}] {name}" in out.output
    assert "3400000000007 测试章" in out.output


def test_seal_verify_tampered_content_json(pki, cli, runner) -> None:
    (pki / "doc.xml").write_bytes(CONTENT + b"<!-- edited -->")
    (pki / "sig.der").write_bytes(_signed(pki))
    out = runner.invoke(
        cli, ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der"),
              "--trust", str(pki / "root" / "cert.pem"), "--json"],
    )  # fmt: skip
    assert out.exit_code == 1, out.output
    result = json.loads(out.output)
    assert result["valid"] is False
    assert [s["status"] for s in result["steps"]] == ["passed"] * 4 + ["failed"]
    assert result["steps"][4]["code"] == "hash_mismatch"


def test_seal_verify_untrusted_root_and_garbage(pki, cli, runner, other_ca) -> None:
    (pki / "doc.xml").write_bytes(CONTENT)
    (pki / "sig.der").write_bytes(_signed(pki))
    (pki / "other.pem").write_bytes(other_ca.certificate.to_pem())
    out = runner.invoke(
        cli, ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der"),
              "--trust", str(pki / "other.pem")],
    )  # fmt: skip
    assert out.exit_code == 1
    assert "INVALID" in out.output
    assert "[3] seal                FAILED" in out.output
    (pki / "junk").write_bytes(b"\x00\x01 not a signature")
    out = runner.invoke(
        cli, ["seal", "verify", str(pki / "doc.xml"), str(pki / "junk"),
              "--trust", str(pki / "root" / "cert.pem")],
    )  # fmt: skip
    assert out.exit_code == 1
    assert "[1] signature           FAILED" in out.output


def test_seal_verify_usage_errors_exit_2(pki, cli, runner) -> None:
    (pki / "doc.xml").write_bytes(CONTENT)
    (pki / "sig.der").write_bytes(_signed(pki))
    missing = runner.invoke(
        cli, ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der"),
              "--trust", str(pki / "nope.pem")],
    )  # fmt: skip
    assert missing.exit_code == 2
    assert "zwfw seal verify:" in missing.output
    bad_trust = runner.invoke(
        cli, ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der"),
              "--trust", str(pki / "doc.xml")],
    )  # fmt: skip
    assert bad_trust.exit_code == 2
    bad_time = runner.invoke(
        cli, ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der"),
              "--trust", str(pki / "root" / "cert.pem"), "--at", "yesterday"],
    )  # fmt: skip
    assert bad_time.exit_code == 2
    no_trust = runner.invoke(cli, ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der")])
    assert no_trust.exit_code == 2


def test_pki_refuses_to_overwrite_and_root_profile(pki, cli, runner) -> None:
    again = runner.invoke(cli, ["pki", "init-ca", "--name", "x", "--out", str(pki / "root")])
    assert again.exit_code == 2
    assert "not an empty directory" in again.output
    root_issue = runner.invoke(
        cli, ["pki", "issue", "--ca", str(pki / "root"), "--profile", "root-ca",
              "--name", "x", "--out", str(pki / "new")],
    )  # fmt: skip
    assert root_issue.exit_code == 2


def test_pki_with_kek_stores_keys_encrypted(tmp_path, cli, runner, monkeypatch) -> None:
    kek = KeyEncryptionKey.generate()
    monkeypatch.setenv("ZWFW_KEK", kek.to_text())
    made = runner.invoke(cli, ["pki", "init-ca", "--name", "root", "--out", str(tmp_path / "ca")])
    assert made.exit_code == 0, made.output
    assert not (tmp_path / "ca" / "key.pem").exists()
    assert "SM4-GCM" in made.output
    issued = runner.invoke(
        cli, ["pki", "issue", "--ca", str(tmp_path / "ca"), "--profile", "signer",
              "--name", "s", "--out", str(tmp_path / "s")],
    )  # fmt: skip
    assert issued.exit_code == 0, issued.output
    store = EncryptedKeyStore(DirectoryBlobStore(tmp_path / "s" / "keys"), kek)
    cert = SM2Certificate.load((tmp_path / "s" / "cert.pem").read_bytes())
    assert store.public_key("key") == cert.public_key
    # Without the KEK the encrypted CA key cannot be used.
    monkeypatch.delenv("ZWFW_KEK")
    denied = runner.invoke(
        cli, ["pki", "issue", "--ca", str(tmp_path / "ca"), "--profile", "signer",
              "--name", "t", "--out", str(tmp_path / "t")],
    )  # fmt: skip
    assert denied.exit_code == 2
    assert "ZWFW_KEK" in denied.output
    monkeypatch.setenv("ZWFW_KEK", KeyEncryptionKey.generate().to_text())
    wrong = runner.invoke(
        cli, ["pki", "issue", "--ca", str(tmp_path / "ca"), "--profile", "signer",
              "--name", "t", "--out", str(tmp_path / "t")],
    )  # fmt: skip
    assert wrong.exit_code == 2
    assert "wrapped under key-encryption key" in wrong.output


def _status_record(es_id: str, status: str, reason: str | None = None) -> dict[str, object]:
    return {"es_id": es_id, "status": status, "reason": reason, "changed_at": None,
            "valid_start": "2026-01-01T00:00:00+00:00", "valid_end": "2036-01-01T00:00:00+00:00",
            "within_validity": True}  # fmt: skip


def test_seal_verify_says_what_it_checked(pki, cli, runner) -> None:
    (pki / "doc.xml").write_bytes(CONTENT)
    (pki / "sig.der").write_bytes(_signed(pki))
    base = ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der"),
            "--trust", str(pki / "root" / "cert.pem")]  # fmt: skip
    offline = runner.invoke(cli, base)
    assert offline.exit_code == 0, offline.output
    assert offline.output.splitlines()[0] == (
        "seal signature: VALID as far as checked (not checked: seal status in the register)"
    )
    assert "offline: the seal's status in the register was not checked" in offline.output
    as_json = json.loads(runner.invoke(cli, [*base, "--json"]).output)
    assert as_json["not_checked"] == ["seal_status"]

    status = pki / "status.json"
    status.write_text(json.dumps(_status_record("3400000000007", "valid")))
    checked = runner.invoke(cli, [*base, "--status", str(status)])
    assert checked.exit_code == 0, checked.output
    assert checked.output.splitlines()[0] == "seal signature: VALID (every check made)"
    assert "status valid" in checked.output
    assert (
        json.loads(runner.invoke(cli, [*base, "--status", str(status), "--json"]).output)[
            "not_checked"
        ]
        == []
    )

    status.write_text(json.dumps(_status_record("3400000000007", "revoked", "印章遗失")))
    revoked = runner.invoke(cli, [*base, "--status", str(status)])
    assert revoked.exit_code == 1, revoked.output
    assert revoked.output.splitlines()[0].startswith("seal signature: INVALID: step 3 (seal): ")
    assert "revoked" in revoked.output.splitlines()[0]


def test_seal_verify_status_usage_errors_exit_2(pki, cli, runner) -> None:
    (pki / "doc.xml").write_bytes(CONTENT)
    (pki / "sig.der").write_bytes(_signed(pki))
    base = ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der"),
            "--trust", str(pki / "root" / "cert.pem")]  # fmt: skip
    other = pki / "other.json"
    other.write_text(json.dumps(_status_record("3400000000999", "valid")))
    wrong_seal = runner.invoke(cli, [*base, "--status", str(other)])
    assert wrong_seal.exit_code == 2
    assert "the status record is of seal 3400000000999" in wrong_seal.output
    (pki / "junk.json").write_text("[1, 2]")
    assert runner.invoke(cli, [*base, "--status", str(pki / "junk.json")]).exit_code == 2
    both = runner.invoke(cli, [*base, "--status", str(other), "--from-api", "http://127.0.0.1:9"])
    assert both.exit_code == 2
    unreachable = runner.invoke(cli, [*base, "--from-api", "http://127.0.0.1:9"])
    assert unreachable.exit_code == 2
    assert "unreachable" in unreachable.output


def test_seal_verify_from_api_reads_the_registered_status(pki, cli, runner) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers = {"/seals/3400000000007/status": _status_record("3400000000007", "suspended")}

    class Register(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook
            record = answers.get(self.path)
            body = json.dumps(record if record else {"detail": "no such seal"}).encode()
            self.send_response(200 if record else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Register)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (pki / "doc.xml").write_bytes(CONTENT)
        (pki / "sig.der").write_bytes(_signed(pki))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        base = ["seal", "verify", str(pki / "doc.xml"), str(pki / "sig.der"),
                "--trust", str(pki / "root" / "cert.pem"), "--from-api", url]  # fmt: skip
        suspended = runner.invoke(cli, base)
        assert suspended.exit_code == 1, suspended.output
        assert "is suspended" in suspended.output.splitlines()[0]
        assert f"status from GET {url}/seals/3400000000007/status as of" in suspended.output
        answers.clear()
        unknown = runner.invoke(cli, base)
        assert unknown.exit_code == 1, unknown.output
        assert "unknown to the status service" in unknown.output.splitlines()[0]
    finally:
        server.shutdown()
        server.server_close()
