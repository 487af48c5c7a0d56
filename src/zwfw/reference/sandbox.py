"""``zwfw sandbox``: the national side (national IdP and hub) for certifying an external province.

The sandbox starts the national IdP and the hub on localhost (``zwfw.reference.national``),
registers the external province(s) its configuration names, and writes out everything the
province's integrators configure on their side, plus a target profile skeleton and an env file
for ``zwfw certify`` that point the hub suite at the sandbox.

Configuration (YAML, every key optional; without a file one province, 340000, on localhost)::

    token_ttl_seconds: 28800          # lifetime of the generated access tokens (60..86400)
    ready_timeout_seconds: 60         # how long each service may take to answer /readyz
    identity_port: 0                  # fixed ports of the national IdP and hub (0: free port)
    hub_port: 0
    provinces:
      - region_code: "340000"         # province level (xx0000)
        name: 安徽省
        endpoints:                     # base URLs as the province exposes them
          identity: http://127.0.0.1:8441
          hall: http://127.0.0.1:8442
          elicense: http://127.0.0.1:8443
          eseal: http://127.0.0.1:8444
        # The province's own SM2 channel signing certificate and the CA that issued it (the
        # hub then trusts that CA for channel certificates too). Absent: the sandbox issues
        # a key and certificate from its national CA.
        channel_certificate: certs/channel.pem
        channel_ca: certs/channel-ca.pem
        # The province's mutual-TLS client certificate (PEM); its SHA-256 fingerprint is
        # registered. Absent: the sandbox generates one.
        tls_client_certificate: certs/tls-client.pem
        declared:                      # copied into the profile skeleton (see the harness)
          implementation_codes: ["11340100MB00000023344219980600"]

Relative paths are relative to the configuration file. Everything is generated afresh on each
start; the state directory must be empty, or hold an earlier sandbox (which is replaced).

The licence suite's registry checks (IC-LIC-006) need what only the province can set up, and
the summary says so (``licence_suite``): a certification test issuer at its e-licence
service, with its own seal (never a licence seal of a real issuer) on whose signer list a
signing client of the province stands besides the e-licence service, and a valid licence of
that issuer held by the test holder; the province exports ``elicense_test_issuer_code`` and
``elicense_test_issuer_signer_token`` (that client's ``eseal:sign`` token), and for IC-LIC-007
``elicense_issuer_token`` (an ``elicense:issue`` token that may issue licences of that issuer)
and ``elicense_holder_subject`` (the test holder's ``sub``).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import typer
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from zwfw.crypto.x509 import CertificateError, SM2Certificate, load_pem_bundle, verify_chain
from zwfw.formats.channel import certificate_key_id
from zwfw.reference import keys
from zwfw.reference.national import (
    HUB_CLIENT,
    NATIONAL_OPS,
    PROVINCE_SCOPES,
    SUPERVISE_SCOPE,
    NationalSide,
    PlatformError,
    ProvinceRegistration,
)

EXIT_CONFIG_ERROR = 2
DEFAULT_STATE_DIR = Path("var/sandbox")
SUMMARY_FILE = "sandbox.json"
# What the state directory holds; only these are removed when an earlier sandbox is replaced.
_STATE_ENTRIES = ("config", "db", "logs", "profiles", "secrets", SUMMARY_FILE)
# Credentials of the hub and hall suites the province supplies itself (its own test persons
# and officers at its own IdP); the profile skeleton names them, the env file cannot fill them.
PROVINCE_SUPPLIED = (
    "hall_applicant_token", "hall_other_applicant_token", "hall_staff_token",
    "hall_catalog_editor_token",
)  # fmt: skip
# What the province sets up and exports for the licence suite's registry checks (IC-LIC-006).
LICENCE_SUITE = {
    "certification_test_issuer": (
        "an issuing authority for certification only at your e-licence service, with its own "
        "seal (never a real issuer's licence seal) whose signers are your e-licence service "
        "and a signing client of yours; the test holder holds a valid licence of it; an "
        "issuing client of yours may issue and revoke licences of it (IC-LIC-007)"
    ),
    "credentials": [
        "elicense_test_issuer_code",
        "elicense_test_issuer_signer_token",
        "elicense_issuer_token",
        "elicense_holder_subject",
    ],
}


class SandboxConfigError(ValueError):
    """The sandbox configuration is unusable (exit 2, one line)."""


class Endpoints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identity: str
    hall: str
    elicense: str
    eseal: str

    @field_validator("identity", "hall", "elicense", "eseal")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or "?" in value or "#" in value:
            raise ValueError("must be an http(s) base URL without query or fragment")
        return value.rstrip("/")


class ProvinceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    region_code: str = Field(pattern=r"^\d{2}0000$")
    name: str = Field(min_length=1, max_length=100)
    endpoints: Endpoints
    channel_certificate: Path | None = None
    channel_ca: Path | None = None
    tls_client_certificate: Path | None = None
    declared: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("region_code")
    @classmethod
    def _not_national(cls, value: str) -> str:
        if value == "100000":
            raise ValueError("100000 is the national side, not a province")
        return value


def _default_provinces() -> list[ProvinceConfig]:
    return [
        ProvinceConfig(
            region_code="340000",
            name="安徽省",
            endpoints=Endpoints(
                identity="http://127.0.0.1:8441",
                hall="http://127.0.0.1:8442",
                elicense="http://127.0.0.1:8443",
                eseal="http://127.0.0.1:8444",
            ),
        )
    ]


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_ttl_seconds: int = Field(default=8 * 3600, ge=60, le=86400)
    ready_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    identity_port: int = Field(default=0, ge=0, le=65535)
    hub_port: int = Field(default=0, ge=0, le=65535)
    provinces: list[ProvinceConfig] = Field(default_factory=_default_provinces, min_length=1)

    @field_validator("provinces")
    @classmethod
    def _distinct(cls, value: list[ProvinceConfig]) -> list[ProvinceConfig]:
        regions = [p.region_code for p in value]
        if len(set(regions)) != len(regions):
            raise ValueError("region codes must be distinct")
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> SandboxConfig:
        if self.identity_port and self.identity_port == self.hub_port:
            raise ValueError("identity_port and hub_port must differ")
        return self


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "(top level)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def load_config(path: Path | None) -> SandboxConfig:
    """The configuration from ``path`` (defaults when None), with its files checked."""
    if path is None:
        return SandboxConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SandboxConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SandboxConfigError(f"{path} is not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SandboxConfigError(f"{path}: expected a mapping at the top level")
    try:
        config = SandboxConfig.model_validate(raw)
    except ValidationError as exc:
        raise SandboxConfigError(f"{path}: {_one_line(exc)}") from None
    base = path.resolve().parent
    for province in config.provinces:
        for attribute in ("channel_certificate", "channel_ca", "tls_client_certificate"):
            value = getattr(province, attribute)
            if value is not None and not value.is_absolute():
                setattr(province, attribute, base / value)
        _check_province_files(province)
    return config


def _check_province_files(province: ProvinceConfig) -> None:
    region = province.region_code
    if (province.channel_certificate is None) != (province.channel_ca is None):
        raise SandboxConfigError(
            f"province {region}: give channel_certificate and channel_ca together"
        )
    if province.channel_certificate is not None and province.channel_ca is not None:
        try:
            certificate = SM2Certificate.load(province.channel_certificate.read_bytes())
            roots = load_pem_bundle(province.channel_ca.read_bytes())
            verify_chain(certificate, roots)
        except OSError as exc:
            raise SandboxConfigError(
                f"province {region}: cannot read {exc.filename}: {exc.strerror}"
            ) from None
        except (CertificateError, ValueError) as exc:
            raise SandboxConfigError(
                f"province {region}: channel_certificate is not a valid SM2 certificate "
                f"under channel_ca: {exc}"
            ) from None
    if province.tls_client_certificate is not None:
        _tls_identity(province)


def _tls_identity(province: ProvinceConfig) -> tuple[str, str]:
    """SHA-256 fingerprint and subject of the province's own TLS client certificate."""
    assert province.tls_client_certificate is not None
    try:
        certificate = x509.load_pem_x509_certificate(province.tls_client_certificate.read_bytes())
    except OSError as exc:
        raise SandboxConfigError(
            f"province {province.region_code}: cannot read {exc.filename}: {exc.strerror}"
        ) from None
    except ValueError:
        raise SandboxConfigError(
            f"province {province.region_code}: tls_client_certificate is not a PEM certificate"
        ) from None
    der = certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest(), certificate.subject.rfc4514_string()


@dataclass
class ExternalProvince:
    """An external province as the sandbox set it up."""

    config: ProvinceConfig
    channel_certificate: SM2Certificate
    channel_key_pem: bytes | None  # None when the province brought its own certificate
    tls_fingerprint: str
    tls_subject: str
    tls_material: keys.TLSClientCertificate | None  # generated by the sandbox, if it did

    @property
    def region(self) -> str:
        return self.config.region_code

    @property
    def key_id(self) -> str:
        return certificate_key_id(self.channel_certificate)


def prepare_state_dir(state_dir: Path) -> None:
    """Empty or an earlier sandbox's: remove what an earlier run left (only its own entries)."""
    if state_dir.exists() and not state_dir.is_dir():
        raise SandboxConfigError(f"state directory {state_dir} is not a directory")
    if not state_dir.exists():
        state_dir.mkdir(parents=True)
        return
    entries = {entry.name for entry in state_dir.iterdir()}
    if not entries:
        return
    if SUMMARY_FILE not in entries or entries - set(_STATE_ENTRIES):
        raise SandboxConfigError(
            f"state directory {state_dir} is neither empty nor an earlier sandbox's"
        )
    for name in _STATE_ENTRIES:
        path = state_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


class Sandbox(NationalSide):
    """The national side set up for the external provinces of ``config``."""

    def __init__(
        self, state_dir: Path, config: SandboxConfig, *, log_level: str = "WARNING"
    ) -> None:
        channel_roots = b"".join(
            p.channel_ca.read_bytes().strip() + b"\n"
            for p in config.provinces
            if p.channel_ca is not None
        )
        super().__init__(
            state_dir,
            ready_timeout=config.ready_timeout_seconds,
            token_ttl=config.token_ttl_seconds,
            log_level=log_level,
            extra_channel_roots=channel_roots,
        )
        self.config = config
        self.external: dict[str, ExternalProvince] = {}

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            self._prepare_directories()
            self._plan_national()
            for service, port in (
                ("identity", self.config.identity_port),
                ("hub", self.config.hub_port),
            ):
                if port:
                    self.national[service].port = port
            self._plan_provinces()
            self._bootstrap_national(
                list(self.external),
                [p.config.endpoints.identity for p in self.external.values()],
            )
            self._start_national()
            self.write_outputs()
        except BaseException:
            self.stop()
            raise

    def _plan_provinces(self) -> None:
        registrations = []
        for config in self.config.provinces:
            region = config.region_code
            key_pem: bytes | None = None
            if config.channel_certificate is not None:
                certificate = SM2Certificate.load(config.channel_certificate.read_bytes())
            else:
                identity = self.issue_channel_identity(f"{region} channel")
                certificate, key_pem = identity.certificate, identity.key.to_pem()
            material = None
            if config.tls_client_certificate is not None:
                fingerprint, subject = _tls_identity(config)
            else:
                material = keys.tls_client_certificate(f"platform.{region}.zwfw.local")
                fingerprint, subject = material.fingerprint, material.subject
            self.external[region] = ExternalProvince(
                config, certificate, key_pem, fingerprint, subject, material
            )
            registrations.append(
                ProvinceRegistration(
                    region_code=region,
                    name=config.name,
                    endpoints=config.endpoints.model_dump(),
                    channel_certificate_pem=certificate.to_pem().decode(),
                    tls_fingerprint=fingerprint,
                    tls_subject=subject,
                )
            )
        self.registrations = tuple(registrations)

    # --- what the integrator configures --------------------------------------------------

    def profile_path(self, region: str) -> Path:
        return self.state_dir / "profiles" / f"{region}.yaml"

    def env_path(self, region: str) -> Path:
        return self.secrets / f"certify-{region}.env"

    @property
    def summary_path(self) -> Path:
        return self.state_dir / SUMMARY_FILE

    def env_name(self, region: str, credential: str) -> str:
        return f"ZWFW_SANDBOX_{region}_{credential.upper()}"

    def credentials(self, region: str) -> dict[str, str]:
        """What the sandbox can give the province's profile (fresh tokens each call)."""
        province = self.external[region]
        client = f"province-{region}"
        values = {
            "hub_report_token": self.national_token(client, "hub:report"),
            "hub_exchange_token": self.national_token(client, "hub:exchange"),
            "hub_supervise_token": self.national_token(NATIONAL_OPS, SUPERVISE_SCOPE),
            "channel_key_id": province.key_id,
        }
        if province.channel_key_pem is not None:
            values["channel_signing_key"] = province.channel_key_pem.decode()
        return {self.env_name(region, name): value for name, value in values.items()}

    def write_env_file(self, region: str) -> Path:
        env = self.credentials(region)
        lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())]
        return keys.write_private(self.env_path(region), "\n".join(lines) + "\n")

    def refresh_env_files(self) -> None:
        for region in self.external:
            self.write_env_file(region)

    def write_outputs(self) -> dict[str, Any]:
        config_dir = self.state_dir / "config"
        hub_client_jwks = config_dir / "hub-client-jwks.json"
        hub_client_jwks.write_text(json.dumps(keys.public_jwks(self.hub_client_key), indent=2))
        assert self.citizen is not None
        citizen_file = keys.write_private(
            self.secrets / "test-citizen.json",
            json.dumps({"username": self.citizen.username, "password": self.citizen.password}),
        )
        issuer = self.url("national", "identity")
        hub = self.url("national", "hub")
        summary: dict[str, Any] = {
            "hub": {
                "url": hub,
                "channel_recipient": "hub",
                "channel_certificate_file": str(config_dir / "hub-channel.pem"),
                "channel_key_id": self.hub_channel.key_id,
                "report_paths": ["/reports/catalog", "/reports/cases", "/reports/evaluations"],
            },
            "national_idp": {
                "issuer": issuer,
                "jwks_url": f"{issuer}/jwks",
                "token_endpoint": f"{issuer}/token",
                "discovery_url": f"{issuer}/.well-known/openid-configuration",
            },
            "trust_anchors": {
                "national_ca_file": str(self.national_ca_path),
                "national_ca_sm3": self._ca.ca.certificate.fingerprint.hex(),
                "hub_channel_certificate_sm3": self.hub_channel.key_id,
            },
            "hub_client_at_province_idp": {
                "client_id": HUB_CLIENT,
                "jwks_file": str(hub_client_jwks),
                "grant_types": [
                    "client_credentials",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ],
                "scopes": ["elicense:share", "elicense:consent"],
            },
            "test_citizen": {
                "username": self.citizen.username,
                "credentials_file": str(citizen_file),
            },
            "provinces": [self._write_province(p) for p in self.external.values()],
            "licence_suite": LICENCE_SUITE,
        }
        self.summary_path.write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return summary

    def _write_province(self, province: ExternalProvince) -> dict[str, Any]:
        region = province.region
        config_dir = self.state_dir / "config"
        client = self.national_clients[f"province-{region}"]
        certificate_file = config_dir / f"{region}-channel.pem"
        certificate_file.write_bytes(province.channel_certificate.to_pem())
        key_file = None
        if province.channel_key_pem is not None:
            key_file = keys.write_private(
                self.secrets / f"{region}-channel.key", province.channel_key_pem
            )
        tls: dict[str, Any] = {
            "fingerprint_sha256": province.tls_fingerprint,
            "subject": province.tls_subject,
        }
        if province.tls_material is not None:
            tls_cert = config_dir / f"{region}-tls.pem"
            tls_cert.write_bytes(province.tls_material.certificate_pem)
            tls["certificate_file"] = str(tls_cert)
            tls["key_file"] = str(
                keys.write_private(
                    self.secrets / f"{region}-tls.key", province.tls_material.key_pem
                )
            )
        token_endpoint = self.url("national", "identity") + "/token"
        # The `hub:` section of a zwfw hall's configuration, ready to use.
        hall_hub = {
            "base_url": self.url("national", "hub"),
            "token_url": token_endpoint,
            "client_id": client.client_id,
            "client_key_file": str(client.key_file),
            "scope": "hub:report",
            "exchange_scope": "hub:exchange",
            "signing_key_file": str(key_file) if key_file else None,
            "signing_cert_file": str(certificate_file),
        }
        hall_hub_file = config_dir / f"{region}-hall-hub.yaml"
        hall_hub_file.write_text(
            yaml.safe_dump({"hub": hall_hub}, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )
        self.write_env_file(region)
        self._write_profile(province)
        return {
            "region_code": region,
            "name": province.config.name,
            "endpoints": province.config.endpoints.model_dump(),
            "oauth": {
                "client_id": client.client_id,
                "auth_method": "private_key_jwt",
                "private_key_file": str(client.key_file),
                "key_id": client.key.kid,
                "token_endpoint": token_endpoint,
                "scopes": list(PROVINCE_SCOPES),
            },
            "channel": {
                "sender": region,
                "key_id": province.key_id,
                "certificate_file": str(certificate_file),
                "signing_key_file": str(key_file) if key_file else None,
                "issued_by_sandbox": key_file is not None,
            },
            "tls_client": tls,
            "hall_hub_config_file": str(hall_hub_file),
            "profile": str(self.profile_path(region)),
            "env_file": str(self.env_path(region)),
        }

    def _write_profile(self, province: ExternalProvince) -> None:
        region = province.region
        provided = sorted(
            n.removeprefix(f"ZWFW_SANDBOX_{region}_").lower() for n in self.credentials(region)
        )
        supplied = [*PROVINCE_SUPPLIED]
        if province.channel_key_pem is None:
            supplied.append("channel_signing_key")
        names = sorted({*provided, *supplied})
        profile = {
            "name": f"{province.config.name} ({region}) against the zwfw sandbox",
            "region_code": region,
            "services": {
                **province.config.endpoints.model_dump(),
                "hub": self.url("national", "hub"),
            },
            "credentials": {n: {"env": self.env_name(region, n)} for n in names},
            "declared": province.config.declared,
            "timeout_seconds": 30,
        }
        header = (
            "# Target profile skeleton written by `zwfw sandbox` (hub suite against the sandbox).\n"
            f"# The sandbox's credentials: source {self.env_path(region)}\n"
            "# The province exports these itself (its own test persons and keys):\n"
            + "".join(f"#   {self.env_name(region, n)}\n" for n in supplied)
        )
        self.profile_path(region).write_text(
            header + yaml.safe_dump(profile, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )


# --- printing ----------------------------------------------------------------------------


def summary_rows(summary: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What the integrator configures, as (setting, value) rows; never a secret value."""
    hub, idp, anchors = summary["hub"], summary["national_idp"], summary["trust_anchors"]
    yield "hub URL", hub["url"]
    yield "hub channel recipient", hub["channel_recipient"]
    yield "national IdP issuer", idp["issuer"]
    yield "national IdP JWKS URL", idp["jwks_url"]
    yield "national IdP token endpoint", idp["token_endpoint"]
    yield "trust anchor: national CA (PEM)", anchors["national_ca_file"]
    yield "trust anchor: national CA SM3", anchors["national_ca_sm3"]
    yield "trust anchor: hub channel cert SM3", anchors["hub_channel_certificate_sm3"]
    yield "hub client at your IdP", summary["hub_client_at_province_idp"]["client_id"]
    yield "hub client public JWKS", summary["hub_client_at_province_idp"]["jwks_file"]
    licence_suite = summary["licence_suite"]
    yield "licence suite: certification test issuer", licence_suite["certification_test_issuer"]
    yield "licence suite: you export", ", ".join(licence_suite["credentials"])
    for province in summary["provinces"]:
        region = province["region_code"]
        oauth, channel = province["oauth"], province["channel"]
        yield f"[{region}] client_id (private_key_jwt)", oauth["client_id"]
        yield f"[{region}] client private key (JWK)", oauth["private_key_file"]
        yield f"[{region}] scopes", " ".join(oauth["scopes"])
        yield f"[{region}] channel sender", channel["sender"]
        yield f"[{region}] channel key id", channel["key_id"]
        yield f"[{region}] channel certificate", channel["certificate_file"]
        yield (
            f"[{region}] channel signing key",
            channel["signing_key_file"] or "(your own key, certificate as configured)",
        )
        tls = province["tls_client"]
        yield f"[{region}] TLS client fingerprint", tls["fingerprint_sha256"]
        if "certificate_file" in tls:
            yield f"[{region}] TLS client certificate", tls["certificate_file"]
            yield f"[{region}] TLS client key", tls["key_file"]
        yield f"[{region}] zwfw hall `hub:` settings", province["hall_hub_config_file"]
        yield f"[{region}] certify profile", province["profile"]
        yield f"[{region}] certify env file", province["env_file"]


def print_summary(summary: dict[str, Any], summary_path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="zwfw sandbox: configure your province with", title_justify="left")
    table.add_column("setting", no_wrap=True)
    table.add_column("value", overflow="fold")
    for setting, value in summary_rows(summary):
        table.add_row(setting, value)
    console = Console(width=max(Console().width, 140))
    console.print(table)
    console.print(f"machine-readable: {summary_path}")


# --- the command -------------------------------------------------------------------------


def verify_ready(sandbox: Sandbox) -> None:
    """Readiness beyond /readyz: the IdP issues tokens and the hub lists the provinces."""
    import httpx

    token = sandbox.national_token(NATIONAL_OPS, SUPERVISE_SCOPE)
    response = httpx.get(
        sandbox.url("national", "hub") + "/provinces",
        headers={"Authorization": f"Bearer {token}"},
        timeout=20.0,
    )
    if response.status_code != 200:
        raise PlatformError(f"the hub answered /provinces with HTTP {response.status_code}")
    registered = {p["region_code"]: p for p in response.json()}
    for region, province in sandbox.external.items():
        entry = registered.get(region)
        if entry is None or entry["signing_key_id"] != province.key_id:
            raise PlatformError(f"province {region} is not registered at the hub as configured")


class _Stop:
    """SIGTERM and SIGINT end the foreground run."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


def sandbox(
    config: Path | None = typer.Option(
        None, "--config", metavar="FILE", help="Sandbox configuration (YAML); defaults if absent."
    ),
    state_dir: Path = typer.Option(
        DEFAULT_STATE_DIR,
        "--state-dir",
        metavar="DIR",
        help="Where keys, databases, logs and outputs go (empty, or an earlier sandbox's).",
    ),
    check: bool = typer.Option(
        False, "--check", help="Start, print, verify readiness, stop and exit 0."
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="Log level of the services."),
) -> None:
    """Run the national side (national IdP and hub) for certifying an external province."""
    try:
        settings = load_config(config)
        prepare_state_dir(state_dir)
    except SandboxConfigError as exc:
        typer.echo(f"zwfw sandbox: error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    stop = _Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    running = Sandbox(state_dir, settings, log_level=log_level)
    try:
        running.start()
        summary = json.loads(running.summary_path.read_text(encoding="utf-8"))
        print_summary(summary, running.summary_path)
        verify_ready(running)
        if check:
            typer.echo("sandbox ready (check passed)")
            return
        typer.echo("sandbox ready; Ctrl-C or SIGTERM stops it")
        sys.stdout.flush()
        _serve(running, stop)
    except PlatformError as exc:
        typer.echo(f"zwfw sandbox: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        running.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(running: Sandbox, stop: _Stop) -> None:
    # Tokens in the env files are renewed at half their lifetime; a service that dies ends
    # the run (non-zero) instead of leaving a half sandbox behind.
    renew_every = max(30.0, running.token_ttl / 2)
    renewed = time.monotonic()
    while not stop.event.wait(1.0):
        dead = [p.name for p in running.national.values() if not p.running]
        if dead:
            raise PlatformError(
                f"{', '.join(dead)} stopped unexpectedly; see {running.state_dir}/logs"
            )
        if time.monotonic() - renewed >= renew_every:
            running.refresh_env_files()
            renewed = time.monotonic()
    typer.echo("sandbox stopping")


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox)
