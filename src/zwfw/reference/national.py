"""The national side of a platform on localhost: the national IdP (identity service in the
national role) and the hub, each a separate ``zwfw serve NAME --config FILE`` process on its own
free port with its own database (a SQLite file under ``db/``, or what ``database_url_for`` gives
it, e.g. a PostgreSQL database), plus the launcher machinery the provinces share.

``NationalSide`` starts on its own (what ``zwfw sandbox`` runs for an external province) or as
the base of ``ReferencePlatform``, which adds reference provinces around it. Start-up of the
national side, in order:

1. keys: the national CA, the hub's SM2 channel certificate, ES256 JWKs of the private_key_jwt
   clients (the national operator, one client per province, the hub's own client at province
   IdPs); everything secret goes to ``secrets/`` (0600);
2. the national IdP starts with a provisioning client in its settings, through whose admin
   API ``zwfw.provisioning`` registers the system clients, the national portal and a test
   citizen;
3. the hub starts and every province is registered (``zwfw.provisioning`` again) with its
   endpoints, OAuth client, TLS fingerprint and channel signing certificate.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml
from joserfc.jwk import ECKey

from zwfw.codes.personal import build_resident_id
from zwfw.provisioning import Outcome, ProvisioningError, ProvisioningPlan, apply_plan
from zwfw.provisioning.plan import (
    ClientPlan,
    HubPlan,
    Operator,
    PersonPlan,
    ProvinceRegistrationPlan,
    RealmPlan,
)
from zwfw.reference import keys
from zwfw.reference.signin import sign_in
from zwfw.services.kit.tokens import ClientCredentials, TokenRequestError

log = logging.getLogger("zwfw.reference")

NATIONAL_REGION = "100000"
HUB_CLIENT = "national-hub"
NATIONAL_OPS = "national-ops"
# The client every IdP of the platform registers from its settings for the provisioning.
PROVISIONING_CLIENT = "provisioning"
# What a province's client at the national IdP may ask for.
PROVINCE_SCOPES = ("hub:report", "hub:exchange")
NATIONAL_OPS_SCOPES = ("hub:provinces:write", "hub:provinces:read", "hub:supervise")
# A supervisor's view of what arrived: reports and cases, and the registry they are checked
# against (the registered channel key).
SUPERVISE_SCOPE = "hub:supervise hub:provinces:read"

_SERVICE_TARGETS = {
    "identity": "zwfw.services.identity:SERVICE",
    "hall": "zwfw.services.hall:SERVICE",
    "elicense": "zwfw.services.elicense:SERVICE",
    "eseal": "zwfw.services.eseal:SERVICE",
    "hub": "zwfw.services.hub:SERVICE",
}
PROVINCE_SERVICES = ("identity", "hall", "elicense", "eseal")


class PlatformError(RuntimeError):
    """The platform could not be started: names the service and the reason."""


# Ports handed out by `free_port` on this machine: one file each, naming the process that took
# it. A port is chosen seconds before its service binds it, and platforms started at the same
# moment (several on one machine) were otherwise given the same port now and then: the second
# service could not bind it, and the first one answered in its place.
_PORT_CLAIMS = Path(tempfile.gettempdir()) / f"zwfw-port-claims-{os.getuid()}"


def free_port() -> int:
    """A free loopback port that no other living process was given by this function."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if _claim(port):
            return port
    raise PlatformError("no free port could be claimed")


def _claim(port: int) -> bool:
    try:
        _PORT_CLAIMS.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return True  # nowhere to record claims: the kernel's choice alone, as before
    claim = _PORT_CLAIMS / str(port)
    for _ in range(2):
        try:
            descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                owner = int(claim.read_text(encoding="ascii") or "0")
            except (OSError, ValueError):
                return False
            # 0: the claim's owner has not written its number yet.
            if owner <= 0 or owner == os.getpid() or _alive(owner):
                return False
            claim.unlink(missing_ok=True)  # its owner has ended: the claim is void
            continue
        except OSError:
            return True
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(str(os.getpid()))
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


@dataclass
class ServiceProcess:
    """One ``zwfw serve`` process of the platform."""

    name: str  # e.g. "340000-hall", "national-identity", "hub"
    service: str  # identity | hall | elicense | eseal | hub
    port: int
    config: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, zwfw: str, timeout: float) -> None:
        if self.running:
            return
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")}
        environment.update(self.env)
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [zwfw, "serve", _SERVICE_TARGETS[self.service], "--config", str(self.config),
                 "--graceful-timeout", "5"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.config.parent,
                start_new_session=True,
            )  # fmt: skip
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise PlatformError(f"{self.name} exited at start: {self._log_tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise PlatformError(f"{self.name} not ready within {timeout:.0f}s: {self._log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            # The whole session: worker processes too (and a group stopped by a fault run).
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


@dataclass
class Person:
    """A test person at one IdP: login and password (generated), and their ``sub``."""

    username: str
    password: str
    name: str
    id_number: str
    sub: str = ""


@dataclass
class Client:
    """A private_key_jwt client at one IdP: its id, key and where the key file is."""

    client_id: str
    key: ECKey
    key_file: Path


@dataclass(frozen=True)
class ProvinceRegistration:
    """What the hub's registry records of a province (``POST /provinces``)."""

    region_code: str
    name: str
    endpoints: dict[str, str]  # identity, hall, elicense, eseal base URLs
    channel_certificate_pem: str
    tls_fingerprint: str
    tls_subject: str

    @property
    def oauth_client_id(self) -> str:
        return f"province-{self.region_code}"

    def body(self) -> dict[str, Any]:
        return {
            "region_code": self.region_code,
            "name": self.name,
            "endpoints": {
                "discovery": self.endpoints["hall"].rstrip("/") + "/.well-known/zwfw",
                **self.endpoints,
            },
            "oauth_client_id": self.oauth_client_id,
            "tls_fingerprint": self.tls_fingerprint,
            "tls_subject": self.tls_subject,
            "signing_certificate": self.channel_certificate_pem,
        }


class NationalSide:
    """The national IdP and the hub under ``state_dir``; use as a context manager::

    with NationalSide(Path("var/national"), registrations) as national:
        national.url("national", "hub")
    """

    def __init__(
        self,
        state_dir: Path,
        registrations: Sequence[ProvinceRegistration] = (),
        *,
        ready_timeout: float = 60.0,
        token_ttl: int = 3600,
        log_level: str = "WARNING",
        extra_channel_roots: bytes = b"",
        workers: int = 1,
        database_url_for: Callable[[str], str] | None = None,
        service_settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers: at least one process per service")
        self.state_dir = state_dir.resolve()
        # Worker processes per service (uvicorn restarts one that dies): replicas on one host.
        self.workers = workers
        # The database of each service process by its name ("340000-hall", "national-hub"):
        # SQLite files by default; worker processes sharing one SQLite file serialise their
        # writes, so replicas under load want a server database (PostgreSQL) instead.
        self.database_url_for = database_url_for or self._sqlite_url
        # Each service process's database, by process name, once its settings are written.
        self.database_urls: dict[str, str] = {}
        # Settings by service kind ("hall", "hub", ...) merged over what the platform writes:
        # variants of the platform, e.g. {"hall": {"hub": {"max_attempts": 1}}}.
        self.service_settings = {k: dict(v) for k, v in (service_settings or {}).items()}
        self.registrations = tuple(registrations)
        self.ready_timeout = ready_timeout
        # Lifetime of the access tokens the test credentials hold (the env file's tokens).
        self.token_ttl = token_ttl
        self.log_level = log_level
        # Further trust anchors for provinces' channel certificates (a province's own CA).
        self.extra_channel_roots = extra_channel_roots
        self.zwfw = str(Path(sys.executable).with_name("zwfw"))
        self.secrets = self.state_dir / "secrets"
        self.national: dict[str, ServiceProcess] = {}
        self.national_clients: dict[str, Client] = {}
        self.citizen: Person | None = None
        self._order: list[ServiceProcess] = []
        self._applied: list[ProvisioningPlan] = []
        self._hub_channel: keys.ChannelIdentity | None = None
        self._started = False

    # --- public API ----------------------------------------------------------------------

    def __enter__(self) -> NationalSide:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Generate, bootstrap and start the national side and register the provinces."""
        if self._started:
            return
        self._started = True
        try:
            self._prepare_directories()
            self._plan_national()
            regions = [r.region_code for r in self.registrations]
            issuers = [r.endpoints["identity"] for r in self.registrations]
            self._bootstrap_national(regions, issuers)
            self._start_national()
            self._write_plan()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process, most dependent first."""
        for process in reversed(self._order):
            process.stop()
        self._started = False

    def url(self, region: str, service: str) -> str:
        """Base URL of a national service (``region`` "national")."""
        return self.process(region, service).url

    def process(self, region: str, service: str) -> ServiceProcess:
        if region != "national":
            raise KeyError(region)
        return self.national[service]

    def stop_service(self, region: str, service: str) -> None:
        self.process(region, service).stop()

    def start_service(self, region: str, service: str) -> None:
        self.process(region, service).start(self.zwfw, self.ready_timeout)

    @property
    def national_ca_path(self) -> Path:
        """The national CA certificate (PEM): the trust anchor of channel certificates."""
        return self.state_dir / "config" / "national-ca.pem"

    @property
    def hub_channel(self) -> keys.ChannelIdentity:
        assert self._hub_channel is not None, "start() first"
        return self._hub_channel

    @property
    def hub_client_key(self) -> ECKey:
        """The hub's own client at every province IdP (its public part is what a province
        registers as client ``national-hub``)."""
        return self._hub_client

    def issue_channel_identity(self, common_name: str) -> keys.ChannelIdentity:
        """A channel signing key and certificate from the national CA."""
        return self._ca.channel_identity(common_name)

    # Tokens ------------------------------------------------------------------------------

    def client_token(self, client: Client, token_url: str, scope: str) -> str:
        """A fresh client-credentials token of ``client`` (private_key_jwt); never cached, so
        test credentials are handed out with their full lifetime."""
        tokens = ClientCredentials(token_url, client.client_id, client.key, scope, timeout=20.0)
        try:
            return tokens()
        except TokenRequestError as exc:
            raise PlatformError(f"token for {client.client_id}: {exc}") from None

    def national_token(self, client: str, scope: str) -> str:
        return self.client_token(
            self.national_clients[client], self.url("national", "identity") + "/token", scope
        )

    def citizen_token(self, scope: str = "openid") -> str:
        """The national test citizen's token, signed in through the national portal."""
        assert self.citizen is not None
        issuer = self.url("national", "identity")
        answer = sign_in(
            issuer, "portal", f"{issuer}/portal/callback", self.citizen.username,
            self.citizen.password, scope=scope,
        )  # fmt: skip
        return str(answer["access_token"])

    # --- machinery -----------------------------------------------------------------------

    def _prepare_directories(self) -> None:
        for sub in ("config", "db", "logs", "profiles"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.secrets, 0o700)

    def _service(
        self, name: str, service: str, env: dict[str, str] | None = None
    ) -> ServiceProcess:
        return ServiceProcess(
            name=name,
            service=service,
            port=free_port(),
            config=self.state_dir / "config" / f"{name}.yaml",
            log=self.state_dir / "logs" / f"{name}.log",
            env=env or {},
        )

    def _client(self, prefix: str, client_id: str) -> Client:
        key = keys.client_jwk(f"{client_id}-1")
        path = keys.write_private(
            self.secrets / f"{prefix}-{client_id}.jwk", keys.private_jwk_text(key)
        )
        return Client(client_id, key, path)

    def _auth(self, issuer: str, audience: str) -> dict[str, Any]:
        return {"issuer": issuer, "audience": audience, "jwks_url": f"{issuer}/jwks",
                "jwks_min_refetch_seconds": 1.0}  # fmt: skip

    def _write_config(self, process: ServiceProcess, values: dict[str, Any]) -> None:
        if process.name not in self.database_urls:
            self.database_urls[process.name] = self.database_url_for(process.name)
        database_url = self.database_urls[process.name]
        common = {
            "public_base_url": process.url,
            "host": "127.0.0.1",
            "port": process.port,
            "database_url": database_url,
            "log_level": self.log_level,
            "workers": self.workers,
        }
        settings = merged({**common, **values}, self.service_settings.get(process.service, {}))
        process.config.write_text(
            yaml.safe_dump(settings, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )

    def _sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.state_dir / 'db' / (name + '.sqlite3')}"

    def _start(self, process: ServiceProcess) -> None:
        log.info("starting %s on %s", process.name, process.url)
        # Listed first: one that never got ready is stopped with the rest.
        self._order.append(process)
        process.start(self.zwfw, self.ready_timeout)

    def _identity_config(self, process: ServiceProcess, region: str, role: str) -> None:
        # The IdP registers the provisioning client from its settings; its private key stays
        # in secrets/ and the provisioning acts with it over the admin API.
        admin = self.provisioning_client(process)
        key = keys.client_jwk(f"{PROVISIONING_CLIENT}-1")
        keys.write_private(admin.key_file, keys.private_jwk_text(key))
        self._write_config(
            process,
            {
                "role": role,
                "region_code": region,
                "access_token_ttl": self.token_ttl,
                "exchanged_token_ttl": self.token_ttl,
                # Plain HTTP on loopback: cookies cannot carry the Secure flag.
                "secure_cookies": False,
                # Every certify run signs its test persons in dozens of times a minute, all
                # from the harness's one address; back-to-back runs (the self-test, a security
                # review after a conformance run) would meet the default 60 per minute.
                "login_rate_per_minute": 600,
                # The lockout check locks its test person on every run; a lock outliving the
                # run (15 minutes by default) would meet the next run's check still engaged.
                "lockout_seconds": 30,
                "provisioning_clients": [
                    {"client_id": PROVISIONING_CLIENT, "jwks": keys.public_jwks(key)}
                ],
            },
        )

    # --- the national side ---------------------------------------------------------------

    def _plan_national(self) -> None:
        ca = keys.NationalCA()
        self._ca = ca
        keys.write_private(self.secrets / "national-ca.pem", ca.root_pem())
        self.national_ca_path.write_bytes(ca.root_pem())
        self.national = {
            "identity": self._service("national-identity", "identity", keys.data_keys()),
            "hub": self._service("hub", "hub"),
        }
        self._hub_channel = ca.channel_identity("national hub channel")

    def _bootstrap_national(self, regions: Sequence[str], province_issuers: Sequence[str]) -> None:
        """Keys of the national IdP's clients, the national portal and the test citizen; what
        ``_provision_national`` registers once the IdP answers."""
        hub_url = self.national["hub"].url
        national = self.national["identity"]
        self._identity_config(national, NATIONAL_REGION, "national")
        self.citizen = Person(
            "citizen-zj", keys.password(), "王小明",
            str(build_resident_id("330106", date(1988, 6, 1), 17)),
        )  # fmt: skip
        national_scopes = {
            NATIONAL_OPS: list(NATIONAL_OPS_SCOPES),
            **{f"province-{r}": list(PROVINCE_SCOPES) for r in regions},
        }
        for name in national_scopes:
            self.national_clients[name] = self._client("national", name)
        self._hub_client = keys.client_jwk(f"{HUB_CLIENT}-1")
        self._hub_client_file = keys.write_private(
            self.secrets / f"hub-{HUB_CLIENT}.jwk", keys.private_jwk_text(self._hub_client)
        )
        clients = [
            ClientPlan(client_id=client.client_id, key_file=client.key_file,
                       scopes=national_scopes[name], audiences=[hub_url])
            for name, client in self.national_clients.items()
        ]  # fmt: skip
        # The national portal: citizens sign in once; the token is good at the hub and for
        # exchange at every province IdP (一次认证、全网通办).
        clients.append(ClientPlan(
            client_id="portal", name="全国一体化政务服务平台", auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=[f"{national.url}/portal/callback"],
            scopes=["openid", "profile"], audiences=[hub_url, *province_issuers],
        ))  # fmt: skip
        self._national_realm = RealmPlan(
            name="national", url=national.url, admin=self.provisioning_client(national),
            clients=clients, persons=[_person_plan(self.citizen)],
        )  # fmt: skip

    def _start_national(self) -> None:
        """The national IdP, provisioned once it answers; then the hub, with the provinces
        registered."""
        self._start(self.national["identity"])
        self._provision_national()
        self._write_hub_config()
        self._start(self.national["hub"])
        self._register(self.registrations)

    def _provision_national(self) -> None:
        outcome = self.provision(ProvisioningPlan(realms=[self._national_realm]))
        assert self.citizen is not None
        self.citizen.sub = outcome.found("person", self.citizen.username, "sub")

    def provisioning_client(self, process: ServiceProcess) -> Operator:
        """The provisioning client of an IdP process's settings (identity:admin only)."""
        return Operator(
            token_url=process.url + "/token",
            client_id=PROVISIONING_CLIENT,
            key_file=self.secrets / f"{process.name}-{PROVISIONING_CLIENT}.jwk",
        )

    def provision(self, plan: ProvisioningPlan) -> Outcome:
        """Apply ``plan`` through the services' APIs."""
        try:
            outcome = apply_plan(plan)
        except ProvisioningError as exc:
            raise PlatformError(str(exc)) from None
        for change in outcome.changes:
            log.info("%s", change.line())
        self._applied.append(plan)
        return outcome

    @property
    def plan_path(self) -> Path:
        """Everything provisioned, as one plan (0600: test passwords): ``zwfw provision apply
        --plan`` with it reports nothing to change."""
        return self.secrets / "provisioning-plan.yaml"

    def _write_plan(self) -> None:
        merged: dict[str, Any] = {}
        for plan in self._applied:
            for section, value in plan.model_dump(mode="json", exclude_defaults=True).items():
                if section == "hub" and "hub" in merged:
                    merged["hub"]["provinces"] += value.get("provinces", [])
                elif isinstance(value, list):
                    merged.setdefault(section, []).extend(value)
                else:
                    merged[section] = value
        text = yaml.safe_dump(merged, allow_unicode=True, sort_keys=False)
        keys.write_private(self.plan_path, text)

    def _write_hub_config(self) -> None:
        hub = self.national["hub"]
        key = keys.write_private(self.secrets / "hub-channel.key", self.hub_channel.key.to_pem())
        cert = self.state_dir / "config" / "hub-channel.pem"
        cert.write_bytes(self.hub_channel.certificate.to_pem())
        roots = self.national_ca_path
        if self.extra_channel_roots:
            roots = self.state_dir / "config" / "channel-roots.pem"
            roots.write_bytes(self.national_ca_path.read_bytes() + self.extra_channel_roots)
        auth = self._auth(self.national["identity"].url, hub.url)
        self._write_config(hub, {
            "region_code": NATIONAL_REGION,
            "auth": auth,
            "subject_tokens": auth,
            "national_ca_file": str(roots),
            "signing_key_file": str(key),
            "signing_certificate_file": str(cert),
            "province_client_id": HUB_CLIENT,
            "province_client_key_file": str(self._hub_client_file),
        })  # fmt: skip

    def _register(self, registrations: Sequence[ProvinceRegistration]) -> None:
        if not registrations:
            return
        operator = Operator(
            token_url=self.national["identity"].url + "/token",
            client_id=NATIONAL_OPS,
            key_file=self.national_clients[NATIONAL_OPS].key_file,
        )
        self.provision(ProvisioningPlan(hub=HubPlan(
            url=self.national["hub"].url, operator=operator,
            provinces=[ProvinceRegistrationPlan(**r.body()) for r in registrations],
        )))  # fmt: skip


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on it, section by section."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def _person_plan(person: Person) -> PersonPlan:
    return PersonPlan(username=person.username, password=person.password, name=person.name,
                      id_number=person.id_number)  # fmt: skip


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise PlatformError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")
