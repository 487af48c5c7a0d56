"""Run the Pulumi program without a cluster or the Pulumi CLI, under Pulumi's mocks, and keep
what it would create: the Kubernetes objects (as YAML under ``out/k8s/<stack>/``), the Helm
releases of the prerequisites, and the stack outputs.

The deploy-time material a real operator sets with ``pulumi config set [--secret]`` (the
keys, the database passwords, the CA certificates) is generated here for the run and passed
through the mocks' config, as secret config where Pulumi would hold it as secret. Secret
values never reach the written files: they are replaced by a note of where they come from.

    python -m zwfw_infra.render --stack demo --out out/k8s
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks, set_all_config, set_mocks
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from zwfw_infra import program
from zwfw_infra.config import ConfigError, parse
from zwfw_infra.paths import REPOSITORY
from zwfw_infra.secrets import SECRETS_KEY, required_keys

INFRA = REPOSITORY / "infra"
# Pulumi's marker of a secret value in serialized properties.
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
REDACTED = "(secret: Pulumi secret config zwfw:secrets)"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


@dataclass
class Rendered:
    """What one stack would create."""

    stack: str
    objects: list[dict[str, Any]]
    # Paths (kind/namespace/name + key) of values that came from secret config.
    secret_paths: set[tuple[str, str, str, str]]
    helm_releases: list[dict[str, Any]]
    outputs: dict[str, Any]
    # The Pulumi type token of each object (same order), e.g. kubernetes:apps/v1:Deployment.
    types: list[str] = field(default_factory=list)
    # The URN of each object (same order): its parent components' types are in it.
    urns: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        for obj in self.objects:
            meta = obj["metadata"]
            if obj["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
                return obj
        raise KeyError(f"{kind} {namespace}/{name} not rendered")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]


def _plain(value: Any, secret: list[bool]) -> Any:
    """Serialized mock inputs → plain YAML-able data (secrets unwrapped, and noted)."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            secret.append(True)
            return _plain(value.get("value"), secret)
        return {k: _plain(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, secret) for v in value]
    # Numbers travel as floats; Kubernetes fields here are integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _Recorder(Mocks):
    def __init__(self) -> None:
        self.resources: list[MockResourceArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def stack_file(stack: str) -> Path:
    return INFRA / f"Pulumi.{stack}.yaml"


def stack_values(stack: str) -> dict[str, Any]:
    """The ``zwfw:*`` values of a stack file (namespace prefix removed)."""
    document = yaml.safe_load(stack_file(stack).read_text(encoding="utf-8")) or {}
    values: dict[str, Any] = {}
    for key, value in (document.get("config") or {}).items():
        namespace, _, name = key.partition(":")
        if namespace == program.NAMESPACE:
            values[name] = value
    return values


def _ca(common_name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        )
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key_pem


def _deploy_time_secret(key: str) -> str:
    if key in ("provisioning_key", "client_key"):
        private = ec.generate_private_key(ec.SECP256R1())
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    if key in ("db_password", "secret_access_key", "access_key_id"):
        return secrets.token_urlsafe(24)
    return secrets.token_hex(16)


async def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return await _resolve(await value.future())
    if isinstance(value, dict):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)([await _resolve(v) for v in value])
    return value


def deploy_time_values(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What an operator would set at deploy time for this stack: (plain config additions,
    the ``zwfw:secrets`` object), freshly generated."""
    values = dict(values)
    internal_ca, internal_key = _ca("zwfw internal CA")
    channel_ca, _ = _ca("zwfw interconnection channel CA")
    pki_values = dict(values.get("pki") or {})
    pki_values.setdefault("internalCaCertificate", internal_ca)
    if values.get("national") is not None:
        pki_values.setdefault("channelCaCertificate", channel_ca)
    values["pki"] = pki_values
    additions: dict[str, Any] = {"pki": pki_values}
    # The private halves of the channel identities made here, by province name.
    channel_keys: dict[str, dict[str, str]] = {}
    if values.get("national") is not None and values.get("provinces"):
        # Each province's channel identity (public certificates) the hub registers.
        provinces = [dict(p) for p in values["provinces"]]
        for province in provinces:
            if "channel" not in province:
                name = str(province.get("name", "province"))
                province["channel"], channel_keys[name] = _channel(name)
        values["provinces"] = additions["provinces"] = provinces
    # Parsing tells which platforms and services need which secrets.
    config = parse(values)
    generated: dict[str, Any] = {"pki": {"internal_ca": {"key": internal_key}}}
    for platform in config.platforms:
        groups: dict[str, dict[str, str]] = {}
        for group, keys in required_keys(platform).items():
            groups[group] = {key: _deploy_time_secret(key) for key in keys}
        if platform.name in channel_keys and "hall" in groups:
            groups["hall"].update(channel_keys[platform.name])
        generated[platform.name] = groups
    load = config.load_test
    if load is not None:
        # Test credentials of the target's sandbox, and the hub intake's client certificate.
        credentials = {name: secrets.token_urlsafe(24) for name in load.credentials}
        if load.client_certificate:
            client_pem, client_key = _ca("zwfw load generator")
            credentials.update(client_cert=client_pem, client_key=client_key)
        generated[load.target]["loadtest"] = credentials
    return additions, generated


def _channel(name: str) -> tuple[dict[str, str], dict[str, str]]:
    """A province's channel signing certificate (SM2, national channel CA) and hall intake
    client certificate, as the national CA would issue them (config), and their keys (the
    hall's secret config)."""
    from zwfw.reference.keys import NationalCA, tls_client_certificate

    signing = NationalCA().channel_identity(f"{name} channel")
    intake = tls_client_certificate(f"{name} hall")
    public = {
        "signingCertificate": signing.certificate.to_pem().decode(),
        "intakeCertificate": intake.certificate_pem.decode(),
    }
    private = {
        "channel_key": signing.key.to_pem().decode(),
        "intake_client_key": intake.key_pem.decode(),
    }
    return public, private


def render(
    stack: str,
    values: Mapping[str, Any] | None = None,
    secret_values: Mapping[str, Any] | None = None,
) -> Rendered:
    """Run the program for ``stack`` (its stack file, or ``values``) under mocks."""
    base = dict(stack_values(stack) if values is None else values)
    additions, generated = deploy_time_values(base)
    base.update(additions)
    if secret_values is not None:
        generated = dict(secret_values)
    config = {
        f"{program.NAMESPACE}:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in base.items()
    }
    secret_key = f"{program.NAMESPACE}:{SECRETS_KEY}"
    config[secret_key] = json.dumps(generated)
    recorder = _Recorder()
    monitor = MockMonitor(recorder)
    outputs: dict[str, Any] = {}

    def run() -> None:
        outputs.update(program.main())

    # The SDK runs on the thread's event loop; a fresh one, whatever earlier code left behind.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        set_all_config(config, [secret_key])
        set_mocks(recorder, project="zwfw", stack=stack, preview=False, monitor=monitor)
        # As pulumi.runtime.test does: nothing left over from an earlier (failed) run.
        SETTINGS.rpc_manager.clear()
        SETTINGS.outputs.clear()
        _sync_await(run_pulumi_func(run))
        # Outputs that wait on resources (a Job's name from its plan), as Pulumi exports them.
        resolved = _sync_await(_resolve(outputs))
        outputs.clear()
        outputs.update(resolved)
    finally:
        # A failed run leaves outputs waiting on what will never resolve: cancel them.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()
    objects: list[dict[str, Any]] = []
    secret_paths: set[tuple[str, str, str, str]] = set()
    releases: list[dict[str, Any]] = []
    types: list[str] = []
    urns: list[str] = []
    components: list[str] = []
    # The mocks see no URN; the monitor keyed each registration by one (type and name last).
    by_name: dict[tuple[str, str], str] = {}
    for urn in monitor.resources:
        _, _, qualified_type, name = urn.split("::", 3)
        key = (qualified_type.split("$")[-1], name)
        if key in by_name:
            raise RuntimeError(f"two resources are both {key}")
        by_name[key] = urn
    for resource in recorder.resources:
        urn = by_name[(resource.typ, resource.name)]
        if not resource.typ.startswith("kubernetes:"):
            components.append(resource.typ)
            continue
        marks: list[bool] = []
        body = _plain(resource.inputs, marks)
        if resource.typ == HELM_RELEASE:
            releases.append(body)
            continue
        obj = {"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind"), **body}
        if obj["kind"] == "Secret":
            meta = obj["metadata"]
            for field_name in ("stringData", "data"):
                data = resource.inputs.get(field_name)
                if isinstance(data, dict) and data.get(_SIG_KEY) == _SECRET_SIG:
                    for key in obj.get(field_name, {}):
                        secret_paths.add(("Secret", meta.get("namespace", ""), meta["name"], key))
        objects.append(obj)
        types.append(resource.typ)
        urns.append(urn)
    return Rendered(stack, objects, secret_paths, releases, outputs, types, urns, components)


def _redacted(obj: dict[str, Any], secret_paths: set[tuple[str, str, str, str]]) -> dict[str, Any]:
    if obj["kind"] != "Secret":
        return obj
    meta = obj["metadata"]
    copy = json.loads(json.dumps(obj))
    for field_name in ("stringData", "data"):
        for key in list(copy.get(field_name, {})):
            if ("Secret", meta.get("namespace", ""), meta["name"], key) in secret_paths:
                copy[field_name][key] = REDACTED
    return copy


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def ordered(obj: Mapping[str, Any]) -> dict[str, Any]:
    """apiVersion, kind and metadata first, every mapping's keys sorted: stable files."""
    head = ("apiVersion", "kind", "metadata")
    rest = {key: obj[key] for key in obj if key not in head}
    return {**{key: _sorted(obj[key]) for key in head if key in obj}, **_sorted(rest)}


def file_name(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def write(rendered: Rendered, out: Path) -> list[Path]:
    """One file per object under ``out/<stack>/<namespace or _cluster>/``; the Helm releases
    (not Kubernetes objects) and the stack outputs beside them."""
    root = out / rendered.stack
    if root.exists():
        for old in sorted(root.rglob("*"), reverse=True):
            old.unlink() if old.is_file() else old.rmdir()
    written: list[Path] = []
    for obj in rendered.objects:
        folder = root / (obj["metadata"].get("namespace") or "_cluster")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file_name(obj)
        if path.exists():
            raise RuntimeError(f"two objects would be written to {path}")
        path.write_text(
            yaml.safe_dump(
                _redacted(obj, rendered.secret_paths), sort_keys=False, allow_unicode=True
            ),
            encoding="utf-8",
        )
        written.append(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / "helm-releases.yaml").write_text(
        yaml.safe_dump({"releases": rendered.helm_releases}, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    (root / "stack-outputs.json").write_text(
        json.dumps(rendered.outputs, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return written


def stacks() -> list[str]:
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in INFRA.glob("Pulumi.*.yaml")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render zwfw stacks to Kubernetes YAML (mocks).")
    parser.add_argument("--stack", action="append", help="stack name (default: every stack file)")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "out" / "k8s")
    args = parser.parse_args(argv)
    for stack in args.stack or stacks():
        if not stack_file(stack).exists():
            print(f"render: no stack file {stack_file(stack)}", file=sys.stderr)
            return 2
        try:
            rendered = render(stack)
        except ConfigError as exc:
            print(f"render: {stack}: {exc}", file=sys.stderr)
            return 2
        written = write(rendered, args.out)
        releases = len(rendered.helm_releases)
        print(f"{stack}: {len(written)} objects, {releases} Helm releases -> {args.out / stack}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
