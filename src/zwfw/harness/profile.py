"""Target profiles: the province under test, as one YAML file without any secret in it.

```yaml
name: Anhui provincial platform
region_code: "340000"
services: {hall: "https://hall.example.gov.cn", hub: "https://hub.example.gov.cn"}
tls: {ca_bundle: certs/ca.pem, client_cert: certs/client.pem, client_key: certs/client.key}
credentials:
  hub_client_secret: {env: ZWFW_HUB_CLIENT_SECRET}
declared:
  credit_codes: ["11370800MB28559184"]
```

Paths are relative to the profile file. Secrets are only ever named by environment variable
and read when a test asks for them, so a missing variable fails only the tests that need it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from zwfw.harness.errors import ProfileError, describe_validation_error

ServiceName = Literal["identity", "hall", "elicense", "eseal", "hub"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("identity", "hall", "elicense", "eseal", "hub")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretUnavailable(LookupError):
    """A credential the test needs cannot be resolved; fails that test only."""


class EnvSecret(BaseModel):
    """A secret named by the environment variable that holds it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # A password in a URL is a literal secret in the file.
        raise ValueError("must not carry user or password; use credentials with {env: VAR_NAME}")
    if parts.query or parts.fragment:
        raise ValueError("must be a base URL without query or fragment")
    return value.rstrip("/")


class Services(BaseModel):
    """Base URL of each service the target runs; a service left out is not tested."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str | None = None
    hall: str | None = None
    elicense: str | None = None
    eseal: str | None = None
    hub: str | None = None

    @field_validator(*SERVICE_NAMES)
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _base_url(value)

    def configured(self) -> dict[ServiceName, str]:
        return {name: url for name in SERVICE_NAMES if (url := getattr(self, name)) is not None}


def _existing_file(value: str | Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    base_dir: Path = (info.context or {}).get("base_dir", Path.cwd())
    path = (base_dir / Path(value).expanduser()).resolve()
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


def _modified(path: Path | None) -> int | None:
    try:
        return path.stat().st_mtime_ns if path else None
    except OSError:
        return None  # loading the file below reports it


@functools.lru_cache(maxsize=16)
def _ssl_context(
    cafile: str | None,
    client_cert: str | None,
    client_key: str | None,
    stamps: tuple[int | None, ...],  # part of the key only: a file rewritten is loaded again
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    if client_cert and client_key:
        context.load_cert_chain(client_cert, client_key)
    return context


class TLSSettings(BaseModel):
    """Trust anchors for the target's servers and the client certificate for mutual TLS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    # Services whose endpoint requires a client certificate (the hub's report intake where
    # the national gateway demands it): the security suite checks that (SEC-TLS-006).
    mutual: list[ServiceName] = Field(default_factory=list)

    @field_validator("ca_bundle", "client_cert", "client_key", mode="before")
    @classmethod
    def _relative_to_profile(cls, value: str | Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)

    @model_validator(mode="after")
    def _cert_with_key(self) -> TLSSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key must be given together")
        if self.mutual and self.client_cert is None:
            raise ValueError("mutual needs client_cert and client_key: the harness presents them")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        """Context verifying servers against `ca_bundle` (system store if none).

        One context per set of files (and their modification times) is shared by every client
        of the run: loading a trust store costs tens of milliseconds, and a run makes hundreds
        of clients."""
        files = (self.ca_bundle, self.client_cert, self.client_key)
        stamps = tuple(_modified(path) for path in files)
        return _ssl_context(*(str(path) if path else None for path in files), stamps)


class Declared(BaseModel):
    """Values the province declares for the format checks, until live suites fetch them."""

    # YAML reads unquoted all-digit codes as integers; none of these codes starts with 0.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    division_codes: list[str] = Field(default_factory=list)
    credit_codes: list[str] = Field(default_factory=list)
    implementation_codes: list[str] = Field(default_factory=list)
    handling_item_codes: list[str] = Field(default_factory=list)
    case_numbers: list[str] = Field(default_factory=list)
    licence_identifiers: list[str] = Field(default_factory=list)


DeclaredKind = Literal[
    "division_codes",
    "credit_codes",
    "implementation_codes",
    "handling_item_codes",
    "case_numbers",
    "licence_identifiers",
]


# --- faults the harness may cause (the faults suite, FT-*) ------------------------------------


class FaultCommand(BaseModel):
    """How to cause, undo or check a fault: a shell command run on this host (`run`), the
    same over ssh (`ssh: [user@]host` with `run`), or `kubectl` arguments. Commands are
    instructions to the deployment, not secrets: they are part of the certified profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: str | None = Field(default=None, min_length=1)
    ssh: str | None = Field(default=None, min_length=1)
    kubectl: list[str] | None = None
    context: str | None = Field(default=None, min_length=1)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_way(self) -> FaultCommand:
        if (self.run is None) == (self.kubectl is None):
            raise ValueError("give either run (a shell command, with ssh for a remote host) "
                             "or kubectl (its arguments)")  # fmt: skip
        if self.ssh is not None and self.run is None:
            raise ValueError("ssh needs run, the command to run on that host")
        if self.context is not None and self.kubectl is None:
            raise ValueError("context belongs to a kubectl command")
        if self.kubectl is not None and not self.kubectl:
            raise ValueError("kubectl needs its arguments")
        if self.ssh is not None and (self.ssh.startswith("-") or " " in self.ssh):
            raise ValueError("ssh is a [user@]host, not options")
        return self

    def argv(self) -> list[str]:
        """The command line to execute on this host."""
        if self.kubectl is not None:
            context = ["--context", self.context] if self.context else []
            return ["kubectl", *context, *self.kubectl]
        assert self.run is not None
        if self.ssh is not None:
            # Never prompt: a fault run is unattended and bounded in time.
            return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", self.ssh, "--",
                    self.run]  # fmt: skip
        return ["/bin/sh", "-c", self.run]

    def describe(self) -> str:
        if self.kubectl is not None:
            return " ".join(self.argv())
        return f"ssh {self.ssh}: {self.run}" if self.ssh else str(self.run)


class ReplicaFault(BaseModel):
    """One replica of a service killed (SIGKILL); its supervisor restarts it. `recovered`
    exits 0 once the service runs its full count of replicas again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: FaultCommand
    recovered: FaultCommand | None = None


class OutageFault(BaseModel):
    """A dependency made unreachable by `cause` for `hold_seconds`, then restored by `undo`;
    `recovered` (optional) exits 0 once it answers again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: FaultCommand
    undo: FaultCommand
    hold_seconds: float = Field(default=20.0, gt=0, le=600)
    recovered: FaultCommand | None = None


class ClockSkewFault(BaseModel):
    """The province's clock set `skew_seconds` off by `cause` (further than the hub's channel
    freshness window, 300 s by default) for `hold_seconds`, then set right by `undo`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: FaultCommand
    undo: FaultCommand
    skew_seconds: float = Field(gt=0, le=7 * 86400)
    hold_seconds: float = Field(default=15.0, gt=0, le=600)


class DatabaseRestartFault(BaseModel):
    """The services' database restarted by `cause` (e.g. `pg_ctl restart -m fast`, or a
    fail-over to the standby). With `undo`, the database stays down for `hold_seconds` after
    `cause` (a stop) and `undo` starts it again. `recovered` (optional) exits 0 once the
    database takes connections again; without it, the harness waits for every service's
    `/readyz`. A request that meets the restart may fail, as 503 within `answer_seconds`,
    never by hanging."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: FaultCommand
    undo: FaultCommand | None = None
    hold_seconds: float = Field(default=0.0, ge=0, le=600)
    recovered: FaultCommand | None = None
    answer_seconds: float = Field(default=5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _held_until_undone(self) -> DatabaseRestartFault:
        if self.hold_seconds and self.undo is None:
            raise ValueError("hold_seconds needs undo, the command that starts the database again")
        return self


class SlowDatabaseFault(BaseModel):
    """The services' database made slow by `cause` for `hold_seconds` (e.g. a lock held on a
    table the workload writes, as a long migration or maintenance does), and fast again by
    `undo`. Meanwhile every request is answered within `answer_seconds`: a success, or a 503
    once the service stops waiting, never a hang."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: FaultCommand
    undo: FaultCommand
    hold_seconds: float = Field(default=15.0, gt=0, le=600)
    answer_seconds: float = Field(default=5.0, gt=0, le=120)


class Faults(BaseModel):
    """The faults the harness may cause in this deployment, and what it must withstand.

    A scenario whose fault is not declared is not run: its requirements are inconclusive
    with that reason (the deployment did not say how the fault is caused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The share of requests that must succeed while a fault lasts (7x24 tender practice).
    success_threshold: float = Field(default=0.995, gt=0, le=1)
    # How long a replica or dependency may take to be back before the scenario fails.
    recovery_seconds: float = Field(default=60.0, gt=0, le=900)
    # Load kept on after recovery, inside the judged window (stragglers of the fault).
    settle_seconds: float = Field(default=5.0, ge=0, le=300)
    # How long queued writes (the halls' outbox) may take to arrive after recovery.
    delivery_seconds: float = Field(default=90.0, gt=0, le=900)
    # Seconds between killing one service's replica and the next one's.
    spacing_seconds: float = Field(default=6.0, gt=0, le=120)
    replica: dict[ServiceName, ReplicaFault] = Field(default_factory=dict)
    hub_outage: OutageFault | None = None
    clock_skew: ClockSkewFault | None = None
    database_restart: DatabaseRestartFault | None = None
    slow_database: SlowDatabaseFault | None = None

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Operations(BaseModel):
    """Routine operations the harness performs on the deployment to check what must survive
    them: ``rotate_signing_key`` makes the IdP sign with a new key from then on (IC-ID-002,
    OpenID Connect Core 10.1.1). Declared like fault commands, and part of the fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rotate_signing_key: FaultCommand | None = None

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _province_level(code: str) -> str:
    from zwfw.codes import KINDS, CodeError

    try:
        KINDS["division"](code)
    except CodeError as error:
        raise ValueError(str(error)) from None
    if not code.endswith("0000"):
        raise ValueError(f"{code} is not a province-level division code (expected ..0000)")
    return code


def _existing_dir(value: str | Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    base_dir: Path = (info.context or {}).get("base_dir", Path.cwd())
    path = (base_dir / Path(value).expanduser()).resolve()
    if not path.is_dir():
        raise ValueError(f"directory not found: {path}")
    return path


class Deployment(BaseModel):
    """The host deployment behind the target, for the security suite's static checks
    (SEC-DEP-*, `zwfw security static`): the playbooks' state directory on this host, the
    user owning its secrets, and optionally the playbooks (ansible-lint) and the Kubernetes
    target's rendered manifests (checkov). Without it those requirements are out of scope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: Path
    service_user: str | None = Field(default=None, min_length=1)
    playbooks: Path | None = None
    manifests: Path | None = None

    @field_validator("state_dir", "playbooks", "manifests", mode="before")
    @classmethod
    def _relative_to_profile(cls, value: str | Path | None, info: ValidationInfo) -> Path | None:
        return _existing_dir(value, info)

    def canonical(self) -> dict[str, Any]:
        return {
            "service_user": self.service_user,
            "playbooks": self.playbooks is not None,
            "manifests": self.manifests is not None,
        }


class TargetProfile(BaseModel):
    """The platform under test."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    name: str = Field(min_length=1)
    region_code: str
    services: Services = Field(default_factory=Services)
    tls: TLSSettings = Field(default_factory=TLSSettings)
    credentials: dict[str, EnvSecret] = Field(default_factory=dict)
    declared: Declared = Field(default_factory=Declared)
    # Services reachable only inside the operator's network (behind its TLS gateway): the
    # security suite accepts plain http for them (SEC-TLS-001).
    internal_only: list[ServiceName] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0)
    faults: Faults | None = None
    operations: Operations | None = None
    deployment: Deployment | None = None
    # Where the profile was read from; not part of what is certified.
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("region_code")
    @classmethod
    def _region(cls, value: str) -> str:
        return _province_level(value)

    @field_validator("credentials", mode="before")
    @classmethod
    def _only_env_references(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("must map credential names to {env: VAR_NAME}")
        for key, ref in value.items():
            if not isinstance(ref, dict):
                # Never echo the value: it is probably the secret itself.
                raise ValueError(
                    f"{key}: literal secrets are not allowed in a profile; "
                    "give {env: VAR_NAME} and set the variable"
                )
        return value

    @model_validator(mode="after")
    def _internal_services_listed(self) -> TargetProfile:
        configured = self.services.configured()
        for name in self.internal_only:
            if name not in configured:
                raise ValueError(f"internal_only names {name}, which services does not list")
        for name in self.tls.mutual:
            if name not in configured:
                raise ValueError(f"tls.mutual names {name}, which services does not list")
        return self

    @property
    def source(self) -> Path | None:
        return self._source

    def base_url(self, service: ServiceName) -> str | None:
        return self.services.configured().get(service)

    def secret(self, name: str) -> str:
        """The credential's value from its environment variable, read now."""
        ref = self.credentials.get(name)
        if ref is None:
            raise SecretUnavailable(f"the target profile declares no credential {name!r}")
        value = os.environ.get(ref.env)
        if not value:
            raise SecretUnavailable(
                f"credential {name!r}: environment variable {ref.env} is not set"
            )
        return value

    def available_secrets(self) -> list[str]:
        """The values of the declared credentials whose variables are set (for redaction)."""
        values = []
        for name in self.credentials:
            try:
                values.append(self.secret(name))
            except SecretUnavailable:
                continue
        return values

    def canonical(self) -> dict[str, Any]:
        """The profile as certified: public material only, independent of file locations."""
        return {
            "name": self.name,
            "region_code": self.region_code,
            "services": dict(sorted(self.services.configured().items())),
            "tls": {
                "ca_bundle": _file_digest(self.tls.ca_bundle),
                "client_cert": _file_digest(self.tls.client_cert),
                # The key's content is secret; only whether one is used counts.
                "client_key": self.tls.client_key is not None,
                "mutual": sorted(self.tls.mutual),
            },
            "credentials": {name: ref.env for name, ref in sorted(self.credentials.items())},
            "declared": self.declared.model_dump(),
            "internal_only": sorted(self.internal_only),
            "timeout_seconds": self.timeout_seconds,
            # Only when declared: profiles without faults keep their fingerprint.
            **({"faults": self.faults.canonical()} if self.faults is not None else {}),
            **({"operations": self.operations.canonical()} if self.operations is not None else {}),
            # Where the deployment lies is a location; what is checked is what counts.
            **({"deployment": self.deployment.canonical()} if self.deployment is not None else {}),
        }

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON form; never covers a secret value."""
        canonical = json.dumps(
            self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _file_digest(path: Path | None) -> str | None:
    return None if path is None else "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def load_profile(path: str | Path) -> TargetProfile:
    """Read and validate a profile; any problem raises `ProfileError` with a one-line reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"profile {path}: file not found") from None
    except IsADirectoryError:
        raise ProfileError(f"profile {path}: is a directory, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ProfileError(f"profile {path}: cannot read: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise ProfileError(f"profile {path}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path}: expected a mapping of profile fields")
    base_dir = path.resolve().parent
    try:
        profile = TargetProfile.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        raise ProfileError(f"profile {path}: {describe_validation_error(error)}") from None
    try:
        profile.tls.ssl_context()
    except (ssl.SSLError, OSError) as error:
        raise ProfileError(f"profile {path}: tls: cannot load certificates: {error}") from None
    profile._source = path.resolve()
    return profile
