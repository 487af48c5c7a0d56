"""`zwfw identity …` commands against a configured instance."""

from __future__ import annotations

import json
import os
import stat
import urllib.parse
from pathlib import Path

import pyotp
import pytest
import typer
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from typer.testing import CliRunner

from zwfw.services.identity import IdentitySettings, build
from zwfw.services.identity.cli import register
from zwfw.services.kit import load_settings

from .processes import write_config
from .support import PASSWORD, client_assertion

runner = CliRunner()


@pytest.fixture
def zwfw() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """zwfw"""

    register(root)
    return root


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path, _ = write_config(tmp_path, "idp")
    return path


def test_bootstrap_admin_once(zwfw: typer.Typer, config: Path) -> None:
    args = ["identity", "bootstrap-admin", "--config", str(config), "--password-stdin"]
    r = runner.invoke(zwfw, args, input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert "administrator admin created" in r.output
    uri = r.output.split("TOTP enrolment (add to an authenticator app): ")[1].strip()
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]
    assert pyotp.TOTP(secret).now().isdigit()
    again = runner.invoke(zwfw, args, input=PASSWORD + "\n")
    assert again.exit_code == 2
    assert "an administrator exists already" in again.output


def test_bootstrap_admin_enforces_the_password_policy(zwfw: typer.Typer, config: Path) -> None:
    args = ["identity", "bootstrap-admin", "--config", str(config), "--password-stdin"]
    r = runner.invoke(zwfw, args, input="short\n")
    assert r.exit_code == 2
    assert "at least 12 characters" in r.output


def test_client_add_writes_a_private_key_that_authenticates(
    zwfw: typer.Typer, config: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "hub.jwk"
    issuer = load_settings(IdentitySettings, config).issuer
    r = runner.invoke(
        zwfw,
        [
            "identity", "client", "add", "hub", "--config", str(config),
            "--scope", "hub:sync", "--scope", "identity:admin", "--key-out", str(key_file),
            "--audience", issuer,
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "client hub registered: auth private_key_jwt, grants client_credentials" in r.output
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = ECKey.import_key(json.loads(key_file.read_text()))
    assert key.as_dict(private=True)["d"]

    settings = load_settings(IdentitySettings, config)
    with TestClient(build(settings), base_url=settings.issuer) as http:
        token = http.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "scope": "identity:admin",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client_assertion(key, "hub", settings.issuer + "/token"),
            },
        )
        assert token.status_code == 200, token.text
        listed = http.get(
            "/admin/clients", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
        )
        assert [c["client_id"] for c in listed.json()] == ["hub"]

    # The key file is never overwritten, and the client id is unique.
    again = runner.invoke(
        zwfw,
        ["identity", "client", "add", "hub", "--config", str(config), "--key-out", str(key_file)],
    )
    assert again.exit_code == 2
    assert "exists; refusing to overwrite a key" in again.output
    other = tmp_path / "hub2.jwk"
    dup = runner.invoke(
        zwfw, ["identity", "client", "add", "hub", "--config", str(config), "--key-out", str(other)]
    )
    assert dup.exit_code == 2
    assert "client hub exists" in dup.output
    assert not other.exists()


def test_client_add_refuses_bad_input(zwfw: typer.Typer, config: Path) -> None:
    no_key = runner.invoke(zwfw, ["identity", "client", "add", "hub", "--config", str(config)])
    assert no_key.exit_code == 2
    assert "needs --key-out" in no_key.output
    secret_cc = runner.invoke(
        zwfw,
        [
            "identity",
            "client",
            "add",
            "xy",
            "--config",
            str(config),
            "--auth",
            "client_secret_basic",
        ],
    )
    assert secret_cc.exit_code == 2
    assert "client_credentials needs private_key_jwt or mutual-TLS" in secret_cc.output
    rp = runner.invoke(
        zwfw,
        [
            "identity", "client", "add", "portal", "--config", str(config),
            "--auth", "client_secret_basic", "--grant", "authorization_code",
            "--redirect-uri", "https://portal.test/cb", "--scope", "openid",
        ],
    )  # fmt: skip
    assert rp.exit_code == 0, rp.output
    assert "client secret (shown once): " in rp.output
    listed = runner.invoke(zwfw, ["identity", "client", "list", "--config", str(config)])
    assert "portal\tclient_secret_basic\topenid" in listed.output


def test_trust_add_and_key_rotation(zwfw: typer.Typer, config: Path) -> None:
    r = runner.invoke(
        zwfw,
        [
            "identity", "trust", "add", "https://idp.gov.test", "https://idp.gov.test/jwks",
            "--config", str(config), "--max-level", "real_name",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "trusting https://idp.gov.test" in r.output
    listed = runner.invoke(zwfw, ["identity", "trust", "list", "--config", str(config)])
    assert "https://idp.gov.test\thttps://idp.gov.test/jwks\treal_name" in listed.output
    bad = runner.invoke(
        zwfw,
        ["identity", "trust", "add", "x", "y", "--config", str(config), "--max-level", "gold"],
    )
    assert bad.exit_code == 2
    bad_level = runner.invoke(
        zwfw,
        [
            "identity", "trust", "add", "https://a.test", "https://a.test/jwks",
            "--config", str(config), "--max-level", "gold",
        ],
    )  # fmt: skip
    assert bad_level.exit_code == 2
    assert "unknown assurance level gold" in bad_level.output

    first = runner.invoke(zwfw, ["identity", "keys", "rotate", "--config", str(config)])
    second = runner.invoke(zwfw, ["identity", "keys", "rotate", "--config", str(config)])
    assert first.exit_code == 0, first.output
    kid1 = first.output.split("active key ")[1].split(";")[0]
    kid2 = second.output.split("active key ")[1].split(";")[0]
    assert kid1 != kid2
    # The retired key stays published for tokens it already signed.
    assert kid1 in second.output.split("published ")[1]


def test_missing_config_is_a_one_line_error(zwfw: typer.Typer, tmp_path: Path) -> None:
    r = runner.invoke(zwfw, ["identity", "keys", "rotate", "--config", str(tmp_path / "no.yaml")])
    assert r.exit_code == 2
    assert "cannot read config file" in r.output


def test_openapi_command_writes_the_exported_document(zwfw: typer.Typer, tmp_path: Path) -> None:
    from zwfw.services.identity import openapi

    out = tmp_path / "identity.json"
    r = runner.invoke(zwfw, ["identity", "openapi", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text()) == openapi.document()
