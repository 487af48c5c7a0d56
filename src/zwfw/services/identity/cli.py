"""`zwfw identity …`: bootstrap the first administrator and system clients, manage the trust
list and rotate signing keys, straight against the instance's database (`--config FILE`)."""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="The instance's YAML settings (ZWFW_* environment variables win)."
    ),
]

identity_app = typer.Typer(
    help="The unified identity service (统一身份认证): administrators, clients, trust, keys.",
    no_args_is_help=True,
)
client_app = typer.Typer(help="Relying parties and system clients.", no_args_is_help=True)
trust_app = typer.Typer(help="Issuers whose tokens are exchanged here.", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys (ES256).", no_args_is_help=True)
identity_app.add_typer(client_app, name="client")
identity_app.add_typer(trust_app, name="trust")
identity_app.add_typer(keys_app, name="keys")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"zwfw identity: {message}", err=True)
    return typer.Exit(code)


def _operator() -> str:
    # Recorded as the audit actor of changes made from the command line.
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli"


@contextmanager
def _instance(config: Path) -> Iterator[tuple[Any, Session]]:
    """The instance's service object and one transaction on its (migrated) database."""
    from zwfw.services.identity import IdentitySettings, build
    from zwfw.services.identity.clients import ClientError
    from zwfw.services.identity.trust import TrustError
    from zwfw.services.kit import Problem, SettingsError, load_settings, migrate

    try:
        settings = load_settings(IdentitySettings, config)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    app = build(settings)
    try:
        migrate(app)
        with app.state.kit.sessions.begin() as db:
            yield app.state.identity, db
    except Problem as problem:
        raise _fail(problem.detail or problem.title) from None
    except (ClientError, TrustError) as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {str(exc).splitlines()[0]}", 1) from None
    finally:
        app.state.kit.engine.dispose()


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


@identity_app.command("bootstrap-admin")
def bootstrap_admin(
    config: ConfigOption,
    username: Annotated[str, typer.Option(help="Login name of the administrator.")] = "admin",
    name: Annotated[str, typer.Option(help="Display name.")] = "系统管理员",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create the first administrator (password + TOTP); refused once one exists."""
    from zwfw.services.identity.accounts import AccountError
    from zwfw.services.identity.events import record
    from zwfw.services.identity.models import Account
    from zwfw.services.identity.security import PasswordPolicyError, totp_uri

    password = _password(password_stdin)
    with _instance(config) as (svc, db):
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
        issuer = svc.settings.issuer
    typer.echo(f"administrator {username} created (sub {account.sub})")
    typer.echo(
        f"TOTP enrolment (add to an authenticator app): {totp_uri(secret, username, issuer)}"
    )


GRANT_NAMES = {"token-exchange": "urn:ietf:params:oauth:grant-type:token-exchange"}


@client_app.command("add")
def client_add(
    client_id: Annotated[str, typer.Argument(help="The client's identifier.")],
    config: ConfigOption,
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
        typer.Option(help="private_key_jwt: write the generated private JWK here (mode 0600)."),
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
) -> None:
    """Register a client. private_key_jwt clients get a fresh P-256 key pair: the public half is
    stored, the private JWK is written to --key-out and nowhere else."""
    from joserfc.jwk import ECKey

    from zwfw.services.identity.clients import ClientIn, register_client
    from zwfw.services.identity.security import CertificateError, certificate_fingerprint

    grants = [GRANT_NAMES.get(g, g) for g in (grant or ["client_credentials"])]
    fields: dict[str, Any] = {}
    private_jwk: str | None = None
    if auth == "private_key_jwt":
        if key_out is None:
            raise _fail("private_key_jwt needs --key-out FILE for the generated private key")
        kid = f"{client_id}-{time.strftime('%Y%m%d')}"
        key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})
        fields["jwks"] = {"keys": [key.as_dict(private=False)]}
        private_jwk = json.dumps(key.as_dict(private=True), indent=2) + "\n"
    elif auth == "self_signed_tls_client_auth":
        if tls_cert is None:
            raise _fail("self_signed_tls_client_auth needs --tls-cert FILE")
        try:
            fields["tls_thumbprint"] = certificate_fingerprint(tls_cert.read_text())
        except (OSError, CertificateError) as exc:
            raise _fail(f"--tls-cert {tls_cert}: {exc}") from None
    try:
        body = ClientIn(
            client_id=client_id,
            name=name or client_id,
            auth_method=auth,
            grant_types=grants,
            scopes=scope or [],
            redirect_uris=redirect_uri or [],
            audiences=audience or [],
            **fields,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _fail(f"invalid client: {where}: {first['msg']}") from None
    if key_out is not None and key_out.exists():
        raise _fail(f"{key_out} exists; refusing to overwrite a key")
    with _instance(config) as (_svc, db):
        out = register_client(db, body, actor=_operator())
        # Written inside the transaction: a failed key write leaves no half-made client.
        if private_jwk is not None and key_out is not None:
            _write_private(key_out, private_jwk)
    typer.echo(
        f"client {client_id} registered: auth {auth}, grants {' '.join(grants)}, "
        f"scopes {' '.join(scope or []) or '-'}"
    )
    if key_out is not None:
        typer.echo(f"private key written to {key_out} (keep it secret; it is not stored here)")
    if out.client_secret:
        typer.echo(f"client secret (shown once): {out.client_secret}")


@client_app.command("list")
def client_list(config: ConfigOption) -> None:
    """The registered clients."""
    from zwfw.services.identity.clients import list_clients

    with _instance(config) as (_svc, db):
        rows = list_clients(db)
        lines = [
            f"{r.client_id}\t{r.auth_method}\t{' '.join(r.scopes) or '-'}"
            + ("\tdisabled" if r.disabled else "")
            for r in rows
        ]
    typer.echo("\n".join(lines) if lines else "no clients")


@trust_app.command("add")
def trust_add(
    issuer: Annotated[str, typer.Argument(help="Issuer identifier of the trusted IdP.")],
    jwks_url: Annotated[str, typer.Argument(help="Where its signing keys are published.")],
    config: ConfigOption,
    max_level: Annotated[
        str | None, typer.Option(help="Highest assurance level carried over from its tokens.")
    ] = None,
) -> None:
    """Trust ISSUER's tokens for token exchange, verified with the keys at JWKS_URL."""
    from zwfw.services.identity.trust import TrustIn, put_issuer

    for label, value in (("issuer", issuer), ("JWKS URL", jwks_url)):
        if not value.startswith(("https://", "http://")):
            raise _fail(f"{label} must be an http(s) URL, got {value!r}")
    with _instance(config) as (svc, db):
        entry = TrustIn(issuer=issuer, jwks_uri=jwks_url, max_level=max_level)
        put_issuer(db, svc.settings, entry, actor=_operator())
    cap = f" (levels up to {max_level})" if max_level else ""
    typer.echo(f"trusting {issuer} with keys from {jwks_url}{cap}")


@trust_app.command("list")
def trust_list(config: ConfigOption) -> None:
    """The trust list."""
    from zwfw.services.identity.trust import list_issuers

    with _instance(config) as (_svc, db):
        rows = list_issuers(db)
        lines = [f"{r.issuer}\t{r.jwks_uri or 'inline JWKS'}\t{r.max_level or '-'}" for r in rows]
    typer.echo("\n".join(lines) if lines else "no trusted issuers")


@keys_app.command("rotate")
def keys_rotate(config: ConfigOption) -> None:
    """Sign with a new key from now on; earlier keys stay published until their tokens expire."""
    from zwfw.services.identity.events import record

    with _instance(config) as (svc, db):
        kid = svc.provider.keys.rotate(db)
        published = [k["kid"] for k in svc.provider.keys.published(db)]
        record(db, "admin.keys.rotate", "success", actor=_operator(), kid=kid)
    typer.echo(f"active key {kid}; published {', '.join(published)}")


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
