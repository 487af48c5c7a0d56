"""`zwfw identity …`: administer a running IdP through its admin API, and bootstrap the first
administrator locally.

Every command but ``bootstrap-admin`` and ``openapi`` talks HTTP to the IdP at ``--url``,
authenticated as an admin client (``--client-id`` with its private key in ``--key-file``:
private_key_jwt, scope identity:admin), e.g. a provisioning client of the IdP's settings.
Each option falls back to an environment variable (``ZWFW_IDENTITY_URL``,
``ZWFW_IDENTITY_CLIENT_ID``, ``ZWFW_IDENTITY_KEY_FILE``, ``ZWFW_IDENTITY_CA_FILE``).

Exit codes: 0 done; 1 the named client, account or issuer does not exist; 2 usage or
configuration errors, an IdP that cannot be reached or refuses the caller, and refused input
(the IdP's reason in one line).
"""

from __future__ import annotations

import getpass
import json
import os
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.orm import Session

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="The instance's YAML settings (ZWFW_* environment variables win)."
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="ZWFW_IDENTITY_URL", help="The IdP's issuer URL."),
]
ClientIdOption = Annotated[
    str | None,
    typer.Option(
        "--client-id", envvar="ZWFW_IDENTITY_CLIENT_ID", help="Admin client (identity:admin)."
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="ZWFW_IDENTITY_KEY_FILE",
        help="The admin client's private key (JWK or PEM).",
    ),
]
CaFileOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="ZWFW_IDENTITY_CA_FILE",
        help="CA certificates to verify the IdP's TLS certificate with (default: the system's).",
    ),
]

GRANT_NAMES = {"token-exchange": "urn:ietf:params:oauth:grant-type:token-exchange"}
EXIT_MISSING = 1
EXIT_USAGE = 2

identity_app = typer.Typer(
    help="The unified identity service (统一身份认证): administrators, clients, accounts, trust, "
    "keys.",
    no_args_is_help=True,
)
client_app = typer.Typer(help="Relying parties and system clients.", no_args_is_help=True)
account_app = typer.Typer(help="Natural- and legal-person accounts.", no_args_is_help=True)
trust_app = typer.Typer(help="Issuers whose tokens are exchanged here.", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys (ES256).", no_args_is_help=True)
identity_app.add_typer(client_app, name="client")
identity_app.add_typer(account_app, name="account")
identity_app.add_typer(trust_app, name="trust")
identity_app.add_typer(keys_app, name="keys")


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"zwfw identity: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


class AdminApi:
    """The admin API of one IdP, called with a cached identity:admin client-credentials token
    (the kit's ``ClientCredentials``)."""

    def __init__(
        self,
        url: str | None,
        client_id: str | None,
        key_file: Path | None,
        ca_file: Path | None,
    ) -> None:
        from zwfw.services.identity.oauth.profile import ADMIN_SCOPE
        from zwfw.services.kit.tokens import ClientCredentials, load_client_key

        if not url or not client_id or key_file is None:
            missing = [
                f"{option} (or {variable})"
                for value, option, variable in (
                    (url, "--url", "ZWFW_IDENTITY_URL"),
                    (client_id, "--client-id", "ZWFW_IDENTITY_CLIENT_ID"),
                    (key_file, "--key-file", "ZWFW_IDENTITY_KEY_FILE"),
                )
                if not value
            ]
            raise _fail(f"give {', '.join(missing)}")
        if not url.startswith(("https://", "http://")):
            raise _fail(f"--url must be an http(s) URL, got {url!r}")
        try:
            key = load_client_key(key_file)
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read the admin key {key_file}: {exc}") from None
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise _fail(f"cannot read --ca-file {ca_file}: {exc}") from None
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, verify=verify, timeout=20.0)
        discovery = self._send("GET", "/.well-known/openid-configuration")
        if discovery.status_code != 200:
            raise _fail(f"{self.url} is not an IdP (discovery: HTTP {discovery.status_code})")
        token_endpoint = str(discovery.json().get("token_endpoint", f"{self.url}/token"))
        self.tokens = ClientCredentials(token_endpoint, client_id, key, ADMIN_SCOPE, http=self.http)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _fail(f"cannot reach {self.url}: {exc}") from None

    def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """The IdP's answer when it is a success; otherwise exit with its reason."""
        from zwfw.services.kit.tokens import TokenRequestError

        try:
            token = self.tokens()
        except TokenRequestError as exc:
            raise _fail(f"cannot obtain an admin token: {exc}") from None
        response = self._send(
            method, path, json=json, params=params, headers={"Authorization": f"Bearer {token}"}
        )
        if response.is_success:
            return response
        try:
            body = response.json()
            reason = body.get("detail") or body.get("title") or response.reason_phrase
            errors = body.get("errors")
            if errors and isinstance(errors, list):
                # Invalid fields (422): the first one with what is wrong with it.
                reason = f"{errors[0].get('field')}: {errors[0].get('message')}"
        except (ValueError, AttributeError):
            reason = f"HTTP {response.status_code}"
        code = EXIT_MISSING if response.status_code == 404 else EXIT_USAGE
        raise _fail(f"{method} {path}: {reason}", code)

    def account(self, username: str) -> dict[str, Any]:
        found = self.call("GET", "/admin/accounts", params={"username": username}).json()
        if not found:
            raise _fail(f"no account has the login name {username}", EXIT_MISSING)
        return dict(found[0])


def _write_private(path: Path, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _fail(f"{path} exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise _fail(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _operator() -> str:
    # Recorded as the audit actor of what the local bootstrap does.
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli"


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {what} {path}: {exc}") from None


# --- the first administrator (local) ----------------------------------------------------------


@identity_app.command("bootstrap-admin")
def bootstrap_admin(
    config: ConfigOption,
    username: Annotated[str, typer.Option(help="Login name of the administrator.")] = "admin",
    name: Annotated[str, typer.Option(help="Display name.")] = "系统管理员",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create the first administrator (password + TOTP) in the instance's database; refused
    once one exists. Run it where the IdP's database is, before or after the IdP starts."""
    from sqlalchemy import select

    from zwfw.services.identity.accounts import AccountError
    from zwfw.services.identity.events import record
    from zwfw.services.identity.models import Account
    from zwfw.services.identity.security import PasswordPolicyError, totp_uri

    password = _password(password_stdin)
    with _local_instance(config, migrated=True) as (app, db):
        svc = app.state.identity
        if db.scalars(select(Account.id).where(Account.is_admin.is_(True))).first():
            raise _fail("an administrator exists already; add others through the admin API")
        try:
            account = svc.accounts.create_person(
                db, username=username, password=password, name=name, is_admin=True
            )
        except (AccountError, PasswordPolicyError) as exc:
            raise _fail(str(exc)) from None
        # 等保 level 3: administrators sign in with two factors.
        secret = svc.accounts.enrol_totp(account)
        record(db, "admin.bootstrap", "success", actor=_operator(), subject=account.sub)
        issuer = app.state.identity.settings.issuer
    typer.echo(f"administrator {username} created (sub {account.sub})")
    typer.echo(
        f"TOTP enrolment (add to an authenticator app): {totp_uri(secret, username, issuer)}"
    )


# --- clients ---------------------------------------------------------------------------------


@client_app.command("add")
def client_add(
    client_id: Annotated[str, typer.Argument(help="The client's identifier.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Allowed scope (repeatable).")
    ] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            help="Grant type (repeatable): client_credentials (default), authorization_code, "
            "refresh_token, token-exchange.",
        ),
    ] = None,
    auth: Annotated[
        str,
        typer.Option(
            help="Client authentication: private_key_jwt (default), self_signed_tls_client_auth, "
            "client_secret_basic or none."
        ),
    ] = "private_key_jwt",
    key_out: Annotated[
        Path | None,
        typer.Option(help="private_key_jwt: make a key pair; the private JWK goes here (0600)."),
    ] = None,
    jwks: Annotated[
        Path | None,
        typer.Option(help="private_key_jwt: the client's existing public JWKS (JSON file)."),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="self_signed_tls_client_auth: the client's certificate.")
    ] = None,
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="Redirect URI (repeatable).")
    ] = None,
    audience: Annotated[
        list[str] | None,
        typer.Option("--audience", help="Extra audience of its tokens (repeatable)."),
    ] = None,
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Register a new client (refused if the id is taken). A private_key_jwt client either
    gets a fresh P-256 key pair (--key-out: the private JWK is written there and nowhere else)
    or is registered with its own public keys (--jwks)."""
    from joserfc.jwk import ECKey

    from zwfw.services.identity.security import CertificateError, certificate_fingerprint

    grants = [GRANT_NAMES.get(g, g) for g in (grant or ["client_credentials"])]
    body: dict[str, Any] = {
        "client_id": client_id,
        "name": name or client_id,
        "auth_method": auth,
        "grant_types": grants,
        "scopes": scope or [],
        "redirect_uris": redirect_uri or [],
        "audiences": audience or [],
    }
    private_jwk: str | None = None
    if auth == "private_key_jwt":
        if (key_out is None) == (jwks is None):
            raise _fail("private_key_jwt needs --key-out FILE (a new key) or --jwks FILE")
        if key_out is not None:
            if key_out.exists():
                raise _fail(f"{key_out} exists; refusing to overwrite a key")
            kid = f"{client_id}-{time.strftime('%Y%m%d')}"
            key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})
            body["jwks"] = {"keys": [key.as_dict(private=False)]}
            private_jwk = json.dumps(key.as_dict(private=True), indent=2) + "\n"
        else:
            assert jwks is not None
            document = _read_json(jwks, "the JWKS")
            # A single JWK is taken as a set of one.
            body["jwks"] = document if "keys" in document else {"keys": [document]}
    elif key_out is not None or jwks is not None:
        raise _fail("--key-out and --jwks are for private_key_jwt clients")
    if auth == "self_signed_tls_client_auth":
        if tls_cert is None:
            raise _fail("self_signed_tls_client_auth needs --tls-cert FILE")
        try:
            body["tls_thumbprint"] = certificate_fingerprint(tls_cert.read_text())
        except (OSError, CertificateError) as exc:
            raise _fail(f"--tls-cert {tls_cert}: {exc}") from None
    api = AdminApi(url, admin_client, key_file, ca_file)
    if private_jwk is not None and key_out is not None:
        # Written first: if the registration is refused the key is removed again, and a
        # registered client never lacks its key.
        _write_private(key_out, private_jwk)
    try:
        out = api.call("POST", "/admin/clients", json=body).json()
    except typer.Exit:
        if private_jwk is not None and key_out is not None:
            key_out.unlink(missing_ok=True)
        raise
    typer.echo(
        f"client {client_id} registered: auth {auth}, grants {' '.join(grants)}, "
        f"scopes {' '.join(scope or []) or '-'}"
    )
    if key_out is not None:
        typer.echo(f"private key written to {key_out} (keep it secret; it is not stored here)")
    if out.get("client_secret"):
        typer.echo(f"client secret (shown once): {out['client_secret']}")


@client_app.command("list")
def client_list(
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """The registered clients: id, authentication, scopes, and whether disabled."""
    rows = AdminApi(url, admin_client, key_file, ca_file).call("GET", "/admin/clients").json()
    lines = [
        f"{r['client_id']}\t{r['auth_method']}\t{' '.join(r['scopes']) or '-'}"
        + ("\tdisabled" if r["disabled"] else "")
        for r in rows
    ]
    typer.echo("\n".join(lines) if lines else "no clients")


@client_app.command("show")
def client_show(
    client_id: Annotated[str, typer.Argument(help="The client's identifier.")],
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """One client's registration, as JSON."""
    api = AdminApi(url, admin_client, key_file, ca_file)
    out = api.call("GET", f"/admin/clients/{client_id}").json()
    out.pop("client_secret", None)
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))


@client_app.command("disable")
def client_disable(
    client_id: Annotated[str, typer.Argument(help="The client's identifier.")],
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Disable a client; its tokens stop working at once."""
    AdminApi(url, admin_client, key_file, ca_file).call("DELETE", f"/admin/clients/{client_id}")
    typer.echo(f"client {client_id} is disabled and its tokens are revoked")


# --- accounts --------------------------------------------------------------------------------


@account_app.command("add")
def account_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    name: Annotated[str, typer.Option(help="The person's or organisation's name.")],
    kind: Annotated[str, typer.Option(help="person (default) or legal_person.")] = "person",
    id_number: Annotated[str | None, typer.Option(help="Resident ID number (a person).")] = None,
    phone: Annotated[str | None, typer.Option(help="Mainland mobile number.")] = None,
    credit_code: Annotated[
        str | None, typer.Option(help="Unified social credit code (a legal person).")
    ] = None,
    legal_representative: Annotated[
        str | None, typer.Option(help="Legal representative (a legal person).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Open an account (refused if the login name, ID number or credit code has one)."""
    api = AdminApi(url, admin_client, key_file, ca_file)
    body = {
        "kind": kind,
        "username": username,
        "password": _password(password_stdin),
        "name": name,
        "id_number": id_number,
        "phone": phone,
        "credit_code": credit_code,
        "legal_representative": legal_representative,
    }
    out = api.call("POST", "/admin/accounts", json=body).json()
    typer.echo(f"account {username} created: sub {out['sub']}, level {out['level']}")


@account_app.command("show")
def account_show(
    username: Annotated[str, typer.Argument(help="Login name.")],
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """An account found by its login name (exit 1 when there is none)."""
    account = AdminApi(url, admin_client, key_file, ca_file).account(username)
    for field in ("sub", "kind", "username", "name", "level", "region"):
        typer.echo(f"{field}\t{account[field]}")
    typer.echo(f"second factors\t{' '.join(account['second_factors']) or '-'}")
    flags = [flag for flag in ("admin", "disabled") if account[flag]]
    typer.echo(f"flags\t{' '.join(flags) or '-'}")


@account_app.command("level")
def account_level(
    username: Annotated[str, typer.Argument(help="Login name.")],
    level: Annotated[str, typer.Argument(help="The assurance level to set.")],
    evidence: Annotated[
        str, typer.Option(help="Reference of the verification record (kept in the audit log).")
    ],
    verified: Annotated[
        list[str] | None,
        typer.Option(
            "--verified", help="Attribute that was verified (repeatable), e.g. id_number."
        ),
    ] = None,
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Set an account's assurance level; raising it needs what the level asks to be verified."""
    api = AdminApi(url, admin_client, key_file, ca_file)
    sub = api.account(username)["sub"]
    body = {"level": level, "verified_attributes": verified or [], "evidence_ref": evidence}
    out = api.call("POST", f"/admin/accounts/{sub}/level", json=body).json()
    typer.echo(f"{username} is at level {out['level']}")


@account_app.command("totp")
def account_totp(
    username: Annotated[str, typer.Argument(help="Login name.")],
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Enrol a new TOTP second factor (the previous one stops working); prints its URI once."""
    from zwfw.services.identity.security import totp_uri

    api = AdminApi(url, admin_client, key_file, ca_file)
    sub = api.account(username)["sub"]
    secret = api.call("POST", f"/admin/accounts/{sub}/totp").json()["totp_secret"]
    typer.echo(
        f"TOTP enrolment (add to an authenticator app): {totp_uri(secret, username, api.url)}"
    )


# --- trust list ------------------------------------------------------------------------------


@trust_app.command("add")
def trust_add(
    issuer: Annotated[str, typer.Argument(help="Issuer identifier of the trusted IdP.")],
    jwks_url: Annotated[str, typer.Argument(help="Where its signing keys are published.")],
    max_level: Annotated[
        str | None, typer.Option(help="Highest assurance level carried over from its tokens.")
    ] = None,
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Trust ISSUER's tokens for token exchange, verified with the keys at JWKS_URL (again:
    changes nothing, or updates the entry)."""
    api = AdminApi(url, admin_client, key_file, ca_file)
    body = {"issuer": issuer, "jwks_uri": jwks_url, "max_level": max_level}
    result = api.call("PUT", "/admin/trust", json=body).json()["result"]
    cap = f" (levels up to {max_level})" if max_level else ""
    typer.echo(f"trusting {issuer} with keys from {jwks_url}{cap}: {result}")


@trust_app.command("list")
def trust_list(
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """The trust list: issuer, where its keys are, highest level carried over."""
    rows = AdminApi(url, admin_client, key_file, ca_file).call("GET", "/admin/trust").json()
    lines = [
        f"{r['issuer']}\t{r['jwks_uri'] or 'inline JWKS'}\t{r['max_level'] or '-'}" for r in rows
    ]
    typer.echo("\n".join(lines) if lines else "no trusted issuers")


@trust_app.command("remove")
def trust_remove(
    issuer: Annotated[str, typer.Argument(help="Issuer identifier of the trusted IdP.")],
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Stop exchanging ISSUER's tokens."""
    api = AdminApi(url, admin_client, key_file, ca_file)
    api.call("DELETE", "/admin/trust", params={"issuer": issuer})
    typer.echo(f"no longer trusting {issuer}")


# --- signing keys ----------------------------------------------------------------------------


@keys_app.command("rotate")
def keys_rotate(
    url: UrlOption = None,
    admin_client: ClientIdOption = None,
    key_file: KeyFileOption = None,
    ca_file: CaFileOption = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Rotate in the instance's database, by its YAML settings, instead of through "
            "the admin API (where the IdP runs, e.g. in its container).",
        ),
    ] = None,
) -> None:
    """Sign with a new key from now on; earlier keys stay published until their tokens expire."""
    if config is None:
        api = AdminApi(url, admin_client, key_file, ca_file)
        out = api.call("POST", "/admin/keys/rotate").json()
        active, published = out["active_kid"], out["published"]
    else:
        active, published = _rotate_locally(config)
    typer.echo(f"active key {active}; published {', '.join(published)}")


def _rotate_locally(config: Path) -> tuple[str, list[str]]:
    from zwfw.services.identity.events import record

    with _local_instance(config) as (app, db):
        keys = app.state.identity.provider.keys
        kid = keys.rotate(db)
        record(db, "admin.keys.rotate", "success", actor=_operator(), kid=kid)
        published = [str(key["kid"]) for key in keys.published(db)]
    return kid, published


@contextmanager
def _local_instance(config: Path, *, migrated: bool = False) -> Iterator[tuple[FastAPI, Session]]:
    """The instance of ``config`` (its app and one transaction in its database), for commands
    run where the IdP's database is; settings and database errors end the command in one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from zwfw.services.identity import IdentitySettings, build
    from zwfw.services.kit import SettingsError, load_settings, migrate

    try:
        settings = load_settings(IdentitySettings, config)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    app = build(settings)
    try:
        if migrated:
            migrate(app)
        with app.state.kit.sessions.begin() as db:
            yield app, db
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {str(exc).splitlines()[0]}", 1) from None
    finally:
        app.state.kit.engine.dispose()


@identity_app.command("openapi")
def openapi(
    out: Annotated[
        Path | None, typer.Option(help="Write the document here instead of standard output.")
    ] = None,
) -> None:
    """Print or write the service's OpenAPI document (conformance/spec/openapi/identity.json)."""
    from zwfw.services.identity import openapi as spec
    from zwfw.services.kit.openapi import render

    if out is None:
        typer.echo(render(spec.document()), nl=False)
        return
    try:
        spec.write(out)
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror}") from None
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Attach `zwfw identity …` to the root command."""
    app.add_typer(identity_app, name="identity")
