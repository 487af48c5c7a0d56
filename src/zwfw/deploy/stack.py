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


def stack_profile(
    outputs: dict[str, Any],
    platform: str,
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    name: str | None = None,
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
