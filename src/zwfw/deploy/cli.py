"""`zwfw deploy …`: steps the host deployment runs once its services answer, the fresh
credentials for ``zwfw certify`` against it, and the target profile of a Kubernetes
deployment from its stack outputs. Each prints one JSON line (``changed``: whether it
made anything new), so a playbook rerun stays changed=0."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

deploy_app = typer.Typer(
    help="Deployment steps: shared system clients, certification material, credentials, "
    "and the target profile of a Kubernetes deployment from its stack outputs.",
    no_args_is_help=True,
)

PlanOption = Annotated[
    Path,
    typer.Option("--plan", help="The certification role's plan (<state>/certify/plan.json)."),
]
GRANT_NAMES = {"token-exchange": "urn:ietf:params:oauth:grant-type:token-exchange"}


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"zwfw deploy: {message}", err=True)
    return typer.Exit(code)


def _load(plan_file: Path) -> object:
    from zwfw.deploy.certification import Certification, DeployError, Plan

    try:
        plan = Plan.load(plan_file)
    except DeployError as exc:
        raise _fail(str(exc), 2) from None
    # The services present certificates of the deployment's own CAs; every client made here
    # (including the sign-in helper's) verifies against them.
    os.environ["SSL_CERT_FILE"] = str(plan.ca_bundle)
    return Certification(plan)


AdminKeyOption = Annotated[
    Path,
    typer.Option(
        "--admin-key", help="The IdP's provisioning client key (its settings hold the public half)."
    ),
]
CaFileOption = Annotated[
    Path | None,
    typer.Option("--ca-file", help="CA certificates of the deployment (default: the system's)."),
]


def _idp(config: Path, admin_key: Path) -> object:
    """The running IdP whose settings are ``config``: its public URL and provisioning key."""
    import yaml

    from zwfw.deploy.certification import Endpoint

    try:
        settings = yaml.safe_load(config.read_text(encoding="utf-8"))
        url = str(settings["public_base_url"]).rstrip("/")
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise _fail(f"cannot read public_base_url from {config}: {exc}", 2) from None
    return Endpoint(url=url, config=config, admin_key=admin_key)


@deploy_app.command("key")
def key(
    key_file: Annotated[Path, typer.Argument(help="Private JWK file; made (0600) if absent.")],
    kid: Annotated[str | None, typer.Option("--kid", help="Key id of a new key.")] = None,
) -> None:
    """Make a client's private key (once) and print its public JWKS as JSON, for the settings
    of the IdP that registers the client (a provisioning client) or for a later
    ``zwfw deploy client``."""
    from zwfw.deploy.certification import load_or_create_key
    from zwfw.reference import keys

    try:
        jwk, made = load_or_create_key(key_file, kid or f"{key_file.stem}-1")
    except (OSError, ValueError) as exc:
        raise _fail(f"{key_file}: {' '.join(str(exc).split())[:300]}") from None
    typer.echo(json.dumps({"changed": made, "jwks": keys.public_jwks(jwk)}))


@deploy_app.command("client")
def client(
    client_id: Annotated[str, typer.Argument(help="The client's identifier.")],
    config: Annotated[Path, typer.Option("--config", help="The IdP instance's settings.")],
    admin_key: AdminKeyOption,
    key: Annotated[
        Path, typer.Option("--key", help="Private JWK file; made (0600) if it does not exist.")
    ],
    scope: Annotated[list[str] | None, typer.Option("--scope", help="Scope (repeatable).")] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option("--grant", help="Grant (repeatable): client_credentials, token-exchange."),
    ] = None,
    audience: Annotated[
        list[str] | None, typer.Option("--audience", help="Audience (repeatable).")
    ] = None,
    ca_file: CaFileOption = None,
) -> None:
    """Register a private_key_jwt client with an existing (or new) key at the running IdP,
    through its admin API, so one client can hold the same key at several IdPs (the hub at
    every province). A client registered so already is left alone."""
    from zwfw.deploy.certification import (
        DeployError,
        Endpoint,
        load_or_create_key,
        register_key_client,
    )

    idp = _idp(config, admin_key)
    assert isinstance(idp, Endpoint)
    try:
        jwk, made = load_or_create_key(key, f"{client_id}-1")
        registered = register_key_client(
            idp, client_id, jwk,
            grants=[GRANT_NAMES.get(g, g) for g in (grant or ["client_credentials"])],
            scopes=scope or [], audiences=audience or [], ca_bundle=ca_file,
        )  # fmt: skip
    except (OSError, ValueError, DeployError) as exc:
        raise _fail(f"{client_id} at {config.stem}: {' '.join(str(exc).split())[:300]}") from None
    typer.echo(json.dumps({"changed": made or registered, "client_id": client_id}))


@deploy_app.command("trust")
def trust(
    issuer: Annotated[str, typer.Argument(help="Issuer identifier of the trusted IdP.")],
    jwks_url: Annotated[str, typer.Argument(help="Where its signing keys are published.")],
    config: Annotated[Path, typer.Option("--config", help="The IdP instance's settings.")],
    admin_key: AdminKeyOption,
    max_level: Annotated[
        str | None, typer.Option(help="Highest assurance level carried over from its tokens.")
    ] = None,
    ca_file: CaFileOption = None,
) -> None:
    """Trust ISSUER's tokens for token exchange at the running IdP, through its admin API. An
    entry as given already is left alone."""
    from zwfw.deploy.certification import DeployError, Endpoint, provision
    from zwfw.provisioning import ProvisioningPlan
    from zwfw.provisioning.plan import TrustPlan

    idp = _idp(config, admin_key)
    assert isinstance(idp, Endpoint)
    entry = TrustPlan(issuer=issuer, jwks_uri=jwks_url, max_level=max_level)
    try:
        outcome = provision(
            ProvisioningPlan(realms=[idp.realm(config.stem, trust=[entry])]), ca_file
        )
    except DeployError as exc:
        raise _fail(f"{issuer} at {config.stem}: {' '.join(str(exc).split())[:300]}") from None
    result = outcome.changes[0].result
    typer.echo(json.dumps({"changed": outcome.changed, "issuer": issuer, "result": result}))


@deploy_app.command("prepare")
def prepare(
    plan: PlanOption,
    stage: Annotated[
        str,
        typer.Option(
            "--stage",
            help="platform: hub registrations and issuer seals; material: test accounts, "
            "seeds, profiles and credentials.",
        ),
    ],
) -> None:
    """One stage of the certification material (see zwfw.deploy.certification)."""
    import httpx

    from zwfw.deploy.certification import Certification, DeployError

    if stage not in ("platform", "material"):
        raise _fail("--stage must be platform or material", 2)
    certification = _load(plan)
    assert isinstance(certification, Certification)
    try:
        if stage == "platform":
            changed = certification.platform()
            written: list[str] = []
        else:
            changed = certification.seed()
            written = [str(p) for p in certification.write_profiles()]
            for province in certification.plan.provinces:
                written.append(str(certification.write_credentials(province)))
    except (DeployError, httpx.HTTPError, OSError) as exc:
        raise _fail(" ".join(str(exc).split())[:400]) from None
    typer.echo(json.dumps({"changed": changed, "stage": stage, "written": written}))


@deploy_app.command("credentials")
def credentials(
    plan: PlanOption,
    province: Annotated[
        str, typer.Option("--province", help="Site name or region code, e.g. province-a.")
    ],
) -> None:
    """Mint fresh tokens into the province's env file (0600) right before `zwfw certify`."""
    import httpx

    from zwfw.deploy.certification import Certification, DeployError

    certification = _load(plan)
    assert isinstance(certification, Certification)
    try:
        target = certification.plan.province(province)
        path = certification.write_credentials(target)
    except (DeployError, httpx.HTTPError, OSError) as exc:
        raise _fail(" ".join(str(exc).split())[:400]) from None
    typer.echo(json.dumps({"changed": False, "env": str(path),
                           "profile": str(certification.profile_path(target))}))  # fmt: skip


@deploy_app.command("profile")
def profile(
    from_stack: Annotated[
        Path,
        typer.Option(
            "--from-stack",
            help="The stack outputs of infra/ (pulumi stack output --json > outputs.json).",
        ),
    ],
    platform: Annotated[
        str, typer.Option("--platform", help="The province's platform name, e.g. province-a.")
    ],
    out: Annotated[Path, typer.Option("--out", help="The target profile to write (YAML).")],
    ca_bundle: Annotated[
        Path | None,
        typer.Option("--ca-bundle", help="CA certificates of the public entry (PEM)."),
    ] = None,
    client_cert: Annotated[
        Path | None,
        typer.Option("--client-cert", help="The province's client certificate to the hub intake."),
    ] = None,
    client_key: Annotated[
        Path | None, typer.Option("--client-key", help="Its private key (PEM).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The profile's name.")] = None,
    faults: Annotated[
        bool,
        typer.Option(
            "--faults",
            help="A certification sandbox: declare how the faults suite may disturb it "
            "(kubectl: delete pods, cut the hub's Service off, delete the database primary).",
        ),
    ] = False,
    kube_context: Annotated[
        str | None, typer.Option("--kube-context", help="kubectl context of the faults.")
    ] = None,
) -> None:
    """Write the certification target profile of a province deployed on Kubernetes from its
    stack outputs, for `zwfw certify --target PROFILE` as with a host deployment."""
    from zwfw.deploy.certification import DeployError
    from zwfw.deploy.stack import load_outputs, stack_profile, write_profile

    try:
        outputs = load_outputs(from_stack)
        document = stack_profile(
            outputs, platform, ca_bundle=ca_bundle, client_cert=client_cert,
            client_key=client_key, name=name, faults=faults, kube_context=kube_context,
        )  # fmt: skip
        changed = write_profile(document, out)
    except DeployError as exc:
        raise _fail(" ".join(str(exc).split())[:400], 2) from None
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc}", 1) from None
    typer.echo(json.dumps({"changed": changed, "profile": str(out),
                           "services": document["services"]}))  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
