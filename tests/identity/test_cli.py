"""`zwfw identity …`: the admin commands against a running IdP over HTTP, authenticated as a
provisioning client of its settings; `bootstrap-admin` against the instance's database."""

from __future__ import annotations

import json
import os
import stat
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
import typer
from joserfc.jwk import ECKey
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from zwfw.services.identity.cli import register
from zwfw.services.kit import audit

from .processes import IdpProcess, running, write_config
from .support import PASSWORD, client_assertion

runner = CliRunner()
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ID_NUMBER = "11010519491231002X"


@pytest.fixture(scope="module")
def zwfw() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """zwfw"""

    register(root)
    return root


class Admin:
    """A running IdP and the options that reach its admin API."""

    def __init__(self, idp: IdpProcess, key_file: Path) -> None:
        self.idp = idp
        self.key_file = key_file

    @property
    def env(self) -> dict[str, str]:
        return {
            "ZWFW_IDENTITY_URL": self.idp.url,
            "ZWFW_IDENTITY_CLIENT_ID": "ansible",
            "ZWFW_IDENTITY_KEY_FILE": str(self.key_file),
        }

    def run(self, zwfw: typer.Typer, *args: str, stdin: str | None = None):  # noqa: ANN201
        return runner.invoke(zwfw, ["identity", *args], input=stdin, env=self.env)

    def audit_actions(self) -> list[tuple[str, str]]:
        engine = create_engine(self.idp.settings.database_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(select(audit.audit_log).order_by(audit.audit_log.c.seq))
                return [(r.actor, r.action) for r in rows]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    directory = tmp_path_factory.mktemp("idp")
    key = ECKey.generate_key("P-256", parameters={"kid": "ansible-1"})
    key_file = directory / "ansible.jwk"
    key_file.write_text(json.dumps(key.as_dict(private=True)), encoding="utf-8")
    config, _ = write_config(
        directory,
        "idp",
        provisioning_clients=[
            {"client_id": "ansible", "jwks": {"keys": [key.as_dict(private=False)]}}
        ],
    )
    with running(config) as idp:
        yield Admin(idp, key_file)


# --- the first administrator, locally ------------------------------------------------------


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


def test_missing_config_is_a_one_line_error(zwfw: typer.Typer, tmp_path: Path) -> None:
    r = runner.invoke(
        zwfw,
        ["identity", "bootstrap-admin", "--config", str(tmp_path / "no.yaml"), "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 2
    assert "cannot read config file" in r.output


# --- clients -------------------------------------------------------------------------------


def test_client_add_writes_a_private_key_that_authenticates(
    zwfw: typer.Typer, admin: Admin, tmp_path: Path
) -> None:
    key_file = tmp_path / "hub.jwk"
    r = admin.run(zwfw, "client", "add", "hub", "--scope", "hub:sync", "--key-out", str(key_file))
    assert r.exit_code == 0, r.output
    assert "client hub registered: auth private_key_jwt, grants client_credentials" in r.output
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = ECKey.import_key(json.loads(key_file.read_text()))
    assert key.as_dict(private=True)["d"]
    token = httpx.post(
        admin.idp.url + "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "hub:sync",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, "hub", admin.idp.url + "/token"),
        },
    )
    assert token.status_code == 200, token.text
    # The change is the provisioning client's, in the IdP's audit log.
    assert ("ansible", "admin.client.create") in admin.audit_actions()

    # The key file is never overwritten, and the client id is unique: a refused registration
    # leaves no key file behind.
    again = admin.run(zwfw, "client", "add", "hub", "--key-out", str(key_file))
    assert again.exit_code == 2
    assert "exists; refusing to overwrite a key" in again.output
    other = tmp_path / "hub2.jwk"
    dup = admin.run(zwfw, "client", "add", "hub", "--key-out", str(other))
    assert dup.exit_code == 2
    assert "client hub exists" in dup.output
    assert not other.exists()


def test_client_add_with_existing_public_keys(
    zwfw: typer.Typer, admin: Admin, tmp_path: Path
) -> None:
    key = ECKey.generate_key("P-256")
    public = tmp_path / "elicense.json"
    public.write_text(json.dumps(key.as_dict(private=False)), encoding="utf-8")
    r = admin.run(zwfw, "client", "add", "elicense-1", "--jwks", str(public))
    assert r.exit_code == 0, r.output
    shown = admin.run(zwfw, "client", "show", "elicense-1")
    assert json.loads(shown.output)["jwks"]["keys"][0]["x"] == key.as_dict(private=False)["x"]
    # A private key is refused: whoever holds that file has exposed it.
    private = tmp_path / "leaked.json"
    private.write_text(json.dumps(key.as_dict(private=True)), encoding="utf-8")
    leaked = admin.run(zwfw, "client", "add", "elicense-2", "--jwks", str(private))
    assert leaked.exit_code == 2
    assert "private key material" in leaked.output
    assert len(leaked.output.strip().splitlines()) == 1


def test_client_add_refuses_bad_input(zwfw: typer.Typer, admin: Admin) -> None:
    no_key = admin.run(zwfw, "client", "add", "hub-x")
    assert no_key.exit_code == 2
    assert "needs --key-out FILE (a new key) or --jwks FILE" in no_key.output
    secret_cc = admin.run(zwfw, "client", "add", "xy", "--auth", "client_secret_basic")
    assert secret_cc.exit_code == 2
    assert "client_credentials needs private_key_jwt or mutual-TLS" in secret_cc.output
    rp = admin.run(
        zwfw, "client", "add", "portal", "--auth", "client_secret_basic",
        "--grant", "authorization_code", "--redirect-uri", "https://portal.test/cb",
        "--scope", "openid",
    )  # fmt: skip
    assert rp.exit_code == 0, rp.output
    assert "client secret (shown once): " in rp.output
    listed = admin.run(zwfw, "client", "list")
    assert "portal\tclient_secret_basic\topenid" in listed.output
    assert "ansible\tprivate_key_jwt\tidentity:admin" in listed.output


def test_client_disable(zwfw: typer.Typer, admin: Admin, tmp_path: Path) -> None:
    assert admin.run(zwfw, "client", "add", "old", "--key-out", str(tmp_path / "k")).exit_code == 0
    r = admin.run(zwfw, "client", "disable", "old")
    assert r.exit_code == 0, r.output
    assert "old\tprivate_key_jwt\t-\tdisabled" in admin.run(zwfw, "client", "list").output
    unknown = admin.run(zwfw, "client", "disable", "nobody")
    assert unknown.exit_code == 1
    assert "client nobody does not exist" in unknown.output
    # The settings' own client cannot be disabled from here.
    own = admin.run(zwfw, "client", "disable", "ansible")
    assert own.exit_code == 2
    assert "provisioning_clients" in own.output


# --- accounts ------------------------------------------------------------------------------


def test_accounts(zwfw: typer.Typer, admin: Admin) -> None:
    added = admin.run(
        zwfw, "account", "add", "zhangsan", "--name", "张三", "--id-number", ID_NUMBER,
        "--phone", "13812345678", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "account zhangsan created: sub " in added.output
    shown = admin.run(zwfw, "account", "show", "zhangsan")
    assert shown.exit_code == 0, shown.output
    assert "level\tregistered" in shown.output
    assert ID_NUMBER not in shown.output
    low = admin.run(
        zwfw, "account", "level", "zhangsan", "real_name", "--verified", "id_number",
        "--evidence", "v-1",
    )  # fmt: skip
    assert low.exit_code == 2
    assert "at least 3 verified attributes" in low.output
    raised = admin.run(
        zwfw, "account", "level", "zhangsan", "real_name", "--verified", "id_number",
        "--verified", "name", "--verified", "phone", "--evidence", "v-1",
    )  # fmt: skip
    assert raised.exit_code == 0, raised.output
    assert "zhangsan is at level real_name" in raised.output
    totp = admin.run(zwfw, "account", "totp", "zhangsan")
    assert totp.exit_code == 0, totp.output
    assert "otpauth://totp/" in totp.output
    assert "second factors\ttotp" in admin.run(zwfw, "account", "show", "zhangsan").output
    missing = admin.run(zwfw, "account", "show", "nobody")
    assert missing.exit_code == 1
    assert "no account has the login name nobody" in missing.output
    taken = admin.run(
        zwfw, "account", "add", "zhangsan", "--name", "x", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert taken.exit_code == 2
    assert "login name zhangsan is taken" in taken.output


# --- trust list and keys -------------------------------------------------------------------


def test_trust_list_and_key_rotation(zwfw: typer.Typer, admin: Admin) -> None:
    args = ["trust", "add", "https://idp.gov.test", "https://idp.gov.test/jwks"]
    r = admin.run(zwfw, *args, "--max-level", "real_name")
    assert r.exit_code == 0, r.output
    assert "trusting https://idp.gov.test" in r.output
    assert r.output.strip().endswith(": created")
    assert admin.run(zwfw, *args, "--max-level", "real_name").output.strip().endswith(": unchanged")
    listed = admin.run(zwfw, "trust", "list")
    assert "https://idp.gov.test\thttps://idp.gov.test/jwks\treal_name" in listed.output
    bad = admin.run(zwfw, "trust", "add", "x", "y")
    assert bad.exit_code == 2
    assert "issuer must be an absolute http(s) URL" in bad.output
    bad_level = admin.run(
        zwfw, "trust", "add", "https://a.test", "https://a.test/jwks", "--max-level", "gold"
    )
    assert bad_level.exit_code == 2
    assert "unknown assurance level gold" in bad_level.output
    removed = admin.run(zwfw, "trust", "remove", "https://idp.gov.test")
    assert removed.exit_code == 0, removed.output
    assert admin.run(zwfw, "trust", "list").output.strip() == "no trusted issuers"
    assert admin.run(zwfw, "trust", "remove", "https://never.test").exit_code == 1

    first = admin.run(zwfw, "keys", "rotate")
    second = admin.run(zwfw, "keys", "rotate")
    assert first.exit_code == 0, first.output
    kid1 = first.output.split("active key ")[1].split(";")[0]
    kid2 = second.output.split("active key ")[1].split(";")[0]
    assert kid1 != kid2
    # The retired key stays published for tokens it already signed.
    assert kid1 in second.output.split("published ")[1]


def test_key_rotation_in_the_database_takes_effect_at_once(zwfw: typer.Typer, admin: Admin) -> None:
    # Where only the IdP's own container can reach its database (kubectl exec).
    before = {key["kid"] for key in admin.idp.jwks()["keys"]}
    args = ["identity", "keys", "rotate", "--config", str(admin.idp.config)]
    r = runner.invoke(zwfw, args)
    assert r.exit_code == 0, r.output
    kid = r.output.split("active key ")[1].split(";")[0]
    published = {key["kid"] for key in admin.idp.jwks()["keys"]}
    assert kid not in before
    assert published == before | {kid}, "the running IdP does not publish the new key with the old"
    assert admin.audit_actions()[-1][1] == "admin.keys.rotate"
    assert admin.audit_actions()[-1][0].startswith("cli")
    bad = runner.invoke(zwfw, ["identity", "keys", "rotate", "--config", "/nonexistent.yaml"])
    assert bad.exit_code == 2
    assert "cannot read config file" in bad.output


# --- reaching the IdP ----------------------------------------------------------------------


def test_options_override_the_environment(zwfw: typer.Typer, admin: Admin) -> None:
    r = runner.invoke(
        zwfw,
        [
            "identity", "client", "list", "--url", admin.idp.url, "--client-id", "ansible",
            "--key-file", str(admin.key_file),
        ],
        env={"ZWFW_IDENTITY_URL": "http://127.0.0.1:9", "ZWFW_IDENTITY_CLIENT_ID": "other"},
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "ansible\tprivate_key_jwt" in r.output


def test_connection_and_credential_errors_are_one_line(
    zwfw: typer.Typer, admin: Admin, tmp_path: Path
) -> None:
    env = dict.fromkeys(admin.env, "")
    unset = runner.invoke(zwfw, ["identity", "client", "list"], env=env)
    assert unset.exit_code == 2
    assert "give --url (or ZWFW_IDENTITY_URL)" in unset.output

    unreachable = runner.invoke(
        zwfw,
        ["identity", "client", "list"],
        env={**admin.env, "ZWFW_IDENTITY_URL": "http://127.0.0.1:9"},
    )
    assert unreachable.exit_code == 2
    assert "cannot reach http://127.0.0.1:9" in unreachable.output

    stranger = tmp_path / "stranger.jwk"
    stranger.write_text(json.dumps(ECKey.generate_key("P-256").as_dict(private=True)))
    refused = runner.invoke(
        zwfw,
        ["identity", "client", "list"],
        env={**admin.env, "ZWFW_IDENTITY_KEY_FILE": str(stranger)},
    )
    assert refused.exit_code == 2
    assert "cannot obtain an admin token" in refused.output
    assert "refused the token request" in refused.output

    no_key = runner.invoke(
        zwfw,
        ["identity", "client", "list"],
        env={**admin.env, "ZWFW_IDENTITY_KEY_FILE": str(tmp_path / "none")},
    )
    assert no_key.exit_code == 2
    assert "cannot read the admin key" in no_key.output
    for result in (unset, unreachable, refused, no_key):
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_openapi_command_writes_the_exported_document(zwfw: typer.Typer, tmp_path: Path) -> None:
    from zwfw.services.identity import openapi

    out = tmp_path / "identity.json"
    r = runner.invoke(zwfw, ["identity", "openapi", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text()) == openapi.document()
