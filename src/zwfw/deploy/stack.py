"""The certification target profile of a province deployed on Kubernetes (``infra/``), from
its stack outputs (``pulumi stack output --json``), so ``zwfw certify`` runs against it as
against a host-deployed one.

The outputs name, per platform, its region code and each service's public URL; the
province's profile takes its own services and the stack's national hub. Credentials are
named by the same variables as a host deployment's profile (``ZWFW_DEPLOY_<region>_*``), so
the same suites find them; the stack makes no test accounts, so they are set by whoever
prepares the certification sandbox. Nothing secret is read or written."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from zwfw.deploy.certification import (
    CREDENTIALS,
    CROSS_PROVINCE_CREDENTIALS,
    ENV_PREFIX,
    DeployError,
)
from zwfw.harness.errors import describe_validation_error
from zwfw.harness.profile import SERVICE_NAMES, TargetProfile

PROVINCE_SERVICES = ("identity", "hall", "elicense", "eseal")
# The selector a hub outage adds to the hub's Service so that it selects no pod.
OUTAGE_LABEL = "zwfw.gov.cn/fault-outage"
# The stack's labels (infra/zwfw_infra/labels.py): a service's serving pods, and the pods of
# a CloudNativePG cluster.
# Where a service's container reads its settings (infra/zwfw_infra/service.py).
POD_SETTINGS = "/etc/zwfw/settings.yaml"
SERVING_PODS = "app.kubernetes.io/name={service},app.kubernetes.io/component=service"
CNPG_PRIMARY = "cnpg.io/cluster={cluster},cnpg.io/instanceRole=primary"


def load_outputs(path: Path) -> dict[str, Any]:
    """The stack outputs document; one-line ``DeployError`` when it is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"stack outputs {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"stack outputs {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DeployError(
            f"stack outputs {path}: not JSON (line {exc.lineno}): {exc.msg}; "
            "write it with pulumi stack output --json"
        ) from None
    platforms = document.get("platforms") if isinstance(document, dict) else None
    if not isinstance(platforms, dict) or not platforms:
        raise DeployError(
            f"stack outputs {path}: no platforms; is it pulumi stack output --json of infra/?"
        )
    return document


def _services(platform: dict[str, Any], name: str) -> dict[str, str]:
    services = platform.get("services")
    if not isinstance(services, dict):
        raise DeployError(f"platform {name}: the stack outputs list no services")
    urls: dict[str, str] = {}
    for service, values in services.items():
        url = values.get("public_url") if isinstance(values, dict) else None
        if service in SERVICE_NAMES and isinstance(url, str):
            urls[service] = url
    return urls


def _kubectl(context: str | None, *argv: str) -> dict[str, Any]:
    return {"kubectl": list(argv), **({"context": context} if context else {})}


def _shell_kubectl(context: str | None, namespace: str, arguments: str) -> str:
    """A kubectl command line for a shell step (one that needs a pipe)."""
    options = f"--context {shlex.quote(context)} " if context else ""
    return f"kubectl {options}-n {shlex.quote(namespace)} {arguments}"


def stack_faults(
    outputs: dict[str, Any], platform: str, context: str | None = None
) -> dict[str, Any]:
    """The profile's `faults:` section for a province of the stack (a certification sandbox):
    one pod of each of its services and of the national hub deleted at once (grace period 0:
    SIGKILL; its Deployment replaces it), recovered when the Deployment's rollout is complete
    again; the hub cut off by pointing its Service at no pod and back (ingress answers 503, as
    for a dead link); the province's database cluster's primary deleted (CloudNativePG fails
    over to a standby where the cluster has one, else restarts it), recovered when the
    Cluster is Ready. The clock skew is not declared: a pod's clock is the node's."""
    platforms: dict[str, Any] = outputs["platforms"]
    found = platforms[platform]
    sides = [(platform, found)] + [
        (n, p) for n, p in platforms.items()
        if isinstance(p, dict) and p.get("kind") == "national" and "hub" in _services(p, n)
    ][:1]  # fmt: skip
    replica: dict[str, Any] = {}
    hub_namespace: str | None = None
    for side_name, side in sides:
        for service, values in side["services"].items():
            wanted = PROVINCE_SERVICES if side is found else ("hub",)
            if service not in wanted:
                continue
            namespace = str(values.get("namespace") or side.get("namespace") or "")
            if not namespace:
                raise DeployError(f"platform {side_name}: the stack outputs give no namespace")
            pod = _shell_kubectl(
                context, namespace,
                f"get pod -l {shlex.quote(SERVING_PODS.format(service=service))} -o name",
            )  # fmt: skip
            replica[service] = {
                "cause": {"run": f"{_shell_kubectl(context, namespace, 'delete')} "
                                 f"$({pod} | head -n 1) --grace-period=0 --force --wait=false"},
                "recovered": _kubectl(context, "-n", namespace, "rollout", "status",
                                      f"deployment/{service}", "--timeout=5s"),
            }  # fmt: skip
            if service == "hub":
                hub_namespace = namespace
    section: dict[str, Any] = {"replica": replica}
    if hub_namespace is not None:
        outage = json.dumps({"spec": {"selector": {OUTAGE_LABEL: "true"}}})
        restore = json.dumps(
            [
                {
                    "op": "remove",
                    "path": "/spec/selector/" + OUTAGE_LABEL.replace("~", "~0").replace("/", "~1"),
                }
            ]
        )
        section["hub_outage"] = {
            "cause": _kubectl(context, "-n", hub_namespace, "patch", "service", "hub",
                              "--type=merge", "-p", outage),
            "undo": _kubectl(context, "-n", hub_namespace, "patch", "service", "hub",
                             "--type=json", "-p", restore),
            "hold_seconds": 15,
        }  # fmt: skip
    cluster = found.get("database_cluster")
    namespace = found.get("namespace")
    if cluster and namespace:
        primary = CNPG_PRIMARY.format(cluster=cluster)
        section["database_restart"] = {
            "cause": _kubectl(context, "-n", namespace, "delete", "pod", "-l", primary,
                              "--grace-period=0", "--force", "--wait=false"),
            "recovered": _kubectl(context, "-n", namespace, "wait", f"cluster/{cluster}",
                                  "--for=condition=Ready", "--timeout=5s"),
        }  # fmt: skip
    return section


def stack_operations(
    outputs: dict[str, Any], platform: str, context: str | None = None
) -> dict[str, Any]:
    """The profile's `operations:` section for a province of the stack: the signing key of its
    IdP rotated by the IdP's own container, in its database (`kubectl exec`: the settings
    and database credentials are the container's)."""
    found = outputs["platforms"][platform]
    values = found["services"]["identity"]
    namespace = str(values.get("namespace") or found.get("namespace") or "")
    if not namespace:
        raise DeployError(f"platform {platform}: the stack outputs give no namespace")
    rotate = _kubectl(context, "-n", namespace, "exec", "deployment/identity", "-c",
                      "identity", "--", "zwfw", "identity", "keys", "rotate", "--config",
                      POD_SETTINGS)  # fmt: skip
    return {"rotate_signing_key": rotate}


def stack_profile(
    outputs: dict[str, Any],
    platform: str,
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    name: str | None = None,
    faults: bool = False,
    kube_context: str | None = None,
) -> dict[str, Any]:
    """The target profile of ``platform`` (a province of the stack) as a mapping; file paths
    absolute, so the profile can be written anywhere."""
    platforms: dict[str, Any] = outputs["platforms"]
    found = platforms.get(platform)
    if not isinstance(found, dict):
        known = ", ".join(sorted(platforms))
        raise DeployError(f"no platform {platform} in the stack outputs (it has {known})")
    if found.get("kind") != "province":
        raise DeployError(
            f"platform {platform} is the {found.get('kind', 'unknown')} side; "
            "certify a province (its profile names the stack's national hub)"
        )
    region = str(found.get("region_code", ""))
    urls = {s: u for s, u in _services(found, platform).items() if s in PROVINCE_SERVICES}
    missing = [s for s in PROVINCE_SERVICES if s not in urls]
    if missing:
        raise DeployError(f"platform {platform} runs no {', '.join(missing)}")
    hubs = [
        _services(p, n)["hub"]
        for n, p in platforms.items()
        if isinstance(p, dict) and p.get("kind") == "national" and "hub" in _services(p, n)
    ]
    if hubs:
        urls["hub"] = hubs[0]
    names = list(CREDENTIALS)
    if sum(isinstance(p, dict) and p.get("kind") == "province" for p in platforms.values()) > 1:
        names += CROSS_PROVINCE_CREDENTIALS
    tls: dict[str, str] = {}
    for key, path in (("ca_bundle", ca_bundle), ("client_cert", client_cert),
                      ("client_key", client_key)):  # fmt: skip
        if path is not None:
            tls[key] = str(path.resolve())
    environment = outputs.get("environment", "")
    return {
        "name": name or f"{platform} ({region}), deployed by infra/ ({environment} stack)",
        "region_code": region,
        "services": dict(sorted(urls.items())),
        "tls": tls,
        "credentials": {n: {"env": f"{ENV_PREFIX}_{region}_{n.upper()}"} for n in sorted(names)},
        **({"faults": stack_faults(outputs, platform, kube_context)} if faults else {}),
        "operations": stack_operations(outputs, platform, kube_context),
        "declared": {"division_codes": [region]},
        "timeout_seconds": 30,
    }


def write_profile(profile: dict[str, Any], out: Path) -> bool:
    """Check ``profile`` as the harness reads it, then write it (YAML) unless ``out`` already
    holds it; True when written."""
    try:
        TargetProfile.model_validate(profile, context={"base_dir": out.resolve().parent})
    except ValidationError as exc:
        raise DeployError(f"profile {out}: {describe_validation_error(exc)}") from None
    text = yaml.safe_dump(profile, allow_unicode=True, sort_keys=False)
    if out.is_file() and out.read_text(encoding="utf-8") == text:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    # Never a half-written profile for a certification run to pick up.
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return True
