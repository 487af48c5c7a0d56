"""The reference platform on localhost: the national side (identity as the national root IdP,
the hub) and N provinces (identity, hall, elicense, eseal each), every service a separate
``zwfw serve NAME --config FILE`` process on its own free port with its own database (SQLite by
default; ``database_url_for`` names another, e.g. a PostgreSQL database per service).

Start-up, in order:

1. keys: the national CA and SM2 channel certificates (hub and provinces), ES256 JWKs of the
   private_key_jwt clients, a KEK per e-seal service, data keys per IdP, TLS client
   certificates of the provinces; everything secret goes to ``secrets/`` (0600);
2. the IdPs start, each with a provisioning client in its settings (its key in ``secrets/``),
   and ``zwfw.provisioning`` registers through their admin APIs the system clients, relying
   parties, test persons and the trust list (provinces trust the national IdP);
3. each e-seal service starts and each province's issuer seals are made (provisioning
   again): the real issuer's licence seal (its one signer: the province's e-licence service)
   and the certification test issuer's seal (also ``signer-<region>``, for IC-LIC-006's
   forgeries); the e-licence services start with both issuers;
4. the hub starts and registers every province; the halls start, reporting to the hub;
5. seeds, provisioned through the e-licence and hall APIs: a licence type and licences per
   province (one of the test issuer for the test holder), and a published catalog item;
6. per province, a target profile for ``zwfw certify`` with credentials as ``{env: …}``
   references, and an env file (0600) holding the generated test credentials.

Every process is started only after the ones it needs answer ``/readyz``; ``stop()`` stops
them in reverse order (SIGTERM, then SIGKILL after a grace period). Services terminate plain
HTTP on 127.0.0.1. The national side and the launcher machinery are
``zwfw.reference.national.NationalSide``, which ``ReferencePlatform`` extends.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from joserfc.jwk import ECKey

from zwfw.codes import build_case_number, build_credit_code, build_implementation_code
from zwfw.codes.personal import build_resident_id
from zwfw.provisioning import ProvisioningPlan
from zwfw.provisioning.plan import (
    ClientPlan,
    ElicensePlan,
    EsealPlan,
    HallPlan,
    HolderPlan,
    LicencePlan,
    LicenceTypePlan,
    Operator,
    RealmPlan,
    SealPlan,
    SignerPlan,
    TrustPlan,
    signing_key_rotation,
)
from zwfw.reference import keys
from zwfw.reference.national import (
    HUB_CLIENT,
    NATIONAL_OPS,
    NATIONAL_REGION,
    PROVINCE_SERVICES,
    SUPERVISE_SCOPE,
    Client,
    NationalSide,
    Person,
    PlatformError,
    ProvinceRegistration,
    ServiceProcess,
    _expect,
    _person_plan,
    free_port,
    log,
)
from zwfw.reference.signin import sign_in
from zwfw.services.kit.tokens import TOKEN_EXCHANGE

# The licence type every province issues (营业执照, defined by the national market regulator).
DEFINING_AUTHORITY = "11100000000013338W"
LICENCE_TYPE = DEFINING_AUTHORITY + "001"
LICENCE_MATERIAL = "营业执照"
FORM_MATERIAL = "项目备案申请表"
BASIC_CODE = "442199806003"
FEDERATION_TEST_ISSUER = "https://certification-issuer.zwfw.invalid"
TEST_ISSUER_NAME = "互联互通认证测试颁证机构"
# The label of the test holder's licence of the certification test issuer.
TEST_ISSUER_LICENCE = "certification"
LICENCE_TYPE_PLAN = LicenceTypePlan(
    type_code=LICENCE_TYPE, name="营业执照", defining_authority_name="国家市场监督管理总局"
)
# How far the faults suite's clock skew sets a hall's clock ahead: three times the hub's
# channel freshness window (channel_window_seconds, 300 s by default).
CLOCK_SKEW_SECONDS = 900
# What a province's operations client may do at its services (seals: read to find its own).
OPS_SCOPES = [
    "hall:catalog:write", "elicense:issue", "elicense:admin", "eseal:admin", "eseal:read",
]  # fmt: skip

__all__ = [
    "DEFAULT_PROVINCES",
    "HUB_CLIENT",
    "NATIONAL_REGION",
    "TOKEN_EXCHANGE",
    "Client",
    "Person",
    "PlatformError",
    "Province",
    "ProvinceSpec",
    "ReferencePlatform",
    "ServiceProcess",
    "demo_guide",
    "free_port",
    "iter_processes",
    "log",
    "sign_expired_access_token",
]


def sign_expired_access_token(
    identity_settings: Mapping[str, Any], *, sub: str, client_id: str, audience: list[str],
    scope: str,
) -> str:  # fmt: skip
    """An access token of the IdP whose settings are ``identity_settings`` that expired an
    hour ago, for the security suite's "expired" caller. No running IdP issues one, so it is
    signed with the IdP's own current key, read from its key store in-process by whoever
    operates it; nothing is registered there."""
    from zwfw.services.identity import IdentitySettings, build

    app = build(IdentitySettings(**identity_settings))
    try:
        with app.state.kit.sessions.begin() as db:
            provider = app.state.identity.provider
            claims = provider.access_claims(
                sub=sub, client_id=client_id, audience=audience, scope=scope, ttl=-3600
            )
            claims["iat"] = claims["exp"] - 600
            return str(provider.keys.sign(db, claims, typ="at+jwt"))
    finally:
        app.state.kit.engine.dispose()


@dataclass(frozen=True)
class ProvinceSpec:
    """A province of the reference platform (``region_code`` at province level, ``xx0000``)."""

    region_code: str
    name: str

    @property
    def city(self) -> str:
        # The capital's division code stands in for the province's municipal bodies.
        return self.region_code[:2] + "0100"

    @property
    def issuer_code(self) -> str:
        """The licence-issuing authority (市场监督管理局 of the capital)."""
        return str(build_credit_code(f"11{self.city}MB0000001"))

    @property
    def test_issuer_code(self) -> str:
        """The certification test issuer: it issues licences for certification only, under
        its own seal, which a certification signing client may also use (IC-LIC-006 seals
        forgeries with it); a real issuer's seal never has such a signer."""
        return str(build_credit_code(f"11{self.city}MB0000009"))

    @property
    def issuer_name(self) -> str:
        return f"{self.name}市场监督管理局"

    @property
    def dept_code(self) -> str:
        """The body implementing the demo item (发展和改革委员会 of the capital)."""
        return str(build_credit_code(f"11{self.city}MB0000002"))

    @property
    def implementation_code(self) -> str:
        return str(build_implementation_code(self.dept_code, 3, BASIC_CODE))


DEFAULT_PROVINCES = (ProvinceSpec("340000", "安徽省"), ProvinceSpec("330000", "浙江省"))


@dataclass
class Province:
    spec: ProvinceSpec
    services: dict[str, ServiceProcess]
    channel: keys.ChannelIdentity
    tls: keys.TLSClientCertificate
    clients: dict[str, Client] = field(default_factory=dict)
    persons: dict[str, Person] = field(default_factory=dict)
    seal_es_id: str = ""  # the real issuer's licence seal
    test_seal_es_id: str = ""  # the certification test issuer's seal
    licences: dict[str, str] = field(default_factory=dict)  # holder label -> identifier
    federation_key: ECKey | None = None
    # An access token of the province's IdP for the applicant that expired an hour before the
    # platform started: the security suite's "expired token" caller (SEC-AZ-001).
    expired_token: str = ""

    @property
    def region(self) -> str:
        return self.spec.region_code

    def url(self, service: str) -> str:
        return self.services[service].url


class ReferencePlatform(NationalSide):
    """A complete reference platform under ``state_dir``; use as a context manager::

    with ReferencePlatform(Path("var/reference")) as platform:
        platform.url("340000", "hall")
        platform.profile_path("340000")     # for zwfw certify --target
    """

    def __init__(
        self,
        state_dir: Path,
        provinces: Sequence[ProvinceSpec] = DEFAULT_PROVINCES,
        *,
        ready_timeout: float = 60.0,
        token_ttl: int = 3600,
        log_level: str = "WARNING",
        workers: int = 1,
        database_url_for: Callable[[str], str] | None = None,
        service_settings: Mapping[str, Mapping[str, Any]] | None = None,
        database_restart: Mapping[str, Any] | None = None,
    ) -> None:
        if len({p.region_code for p in provinces}) != len(provinces) or not provinces:
            raise ValueError("give one or more provinces with distinct region codes")
        for spec in provinces:
            if not (len(spec.region_code) == 6 and spec.region_code.endswith("0000")):
                raise ValueError(f"{spec.region_code} is not a province-level region code")
        super().__init__(
            state_dir,
            ready_timeout=ready_timeout,
            token_ttl=token_ttl,
            log_level=log_level,
            workers=workers,
            database_url_for=database_url_for,
            service_settings=service_settings,
        )
        self.specs = tuple(provinces)
        # The platform does not run the database server of ``database_url_for``: whoever
        # does says how the faults suite restarts it (the profile's faults.database_restart).
        self.database_restart = dict(database_restart) if database_restart else None
        self.provinces: dict[str, Province] = {}

    # --- public API ----------------------------------------------------------------------

    def __enter__(self) -> ReferencePlatform:
        self.start()
        return self

    def start(self) -> None:
        """Generate, configure, bootstrap and start everything (see the module docstring)."""
        if self._started:
            return
        self._started = True
        try:
            self._prepare_directories()
            self._plan()
            self._plan_identities()
            for process in self._identity_processes():
                self._start(process)
            self._provision_identities()
            self._sign_expired_tokens()
            for province in self.provinces.values():
                self._write_eseal_config(province)
                self._start(province.services["eseal"])
                self._make_issuer_seal(province)
            self._write_trust_bundle()
            for province in self.provinces.values():
                self._write_elicense_config(province)
                self._start(province.services["elicense"])
            self._write_hub_config()
            self._start(self.national["hub"])
            self._register(self.registrations)
            for province in self.provinces.values():
                self._write_hall_config(province)
                self._start(province.services["hall"])
            for province in self.provinces.values():
                self._seed(province)
            for province in self.provinces.values():
                self._write_profile(province)
            self._write_plan()
        except BaseException:
            self.stop()
            raise

    def url(self, region: str, service: str) -> str:
        """Base URL of a province's service, or of the national side (``region`` "national")."""
        if region == "national":
            return self.national[service].url
        return self.provinces[region].url(service)

    def process(self, region: str, service: str) -> ServiceProcess:
        if region == "national":
            return self.national[service]
        return self.provinces[region].services[service]

    def profile_path(self, region: str) -> Path:
        return self.state_dir / "profiles" / f"{region}.yaml"

    def clock_offset_path(self, region: str) -> Path:
        """Seconds the province's hall adds to its clock when it signs reports (no file: 0)."""
        return self.state_dir / "config" / f"{region}-clock-offset"

    def env_path(self, region: str) -> Path:
        return self.secrets / f"certify-{region}.env"

    def credentials(self, region: str) -> dict[str, str]:
        """The environment the province's profile names (fresh tokens each call)."""
        return self._credentials(self.provinces[region])

    # Tokens ------------------------------------------------------------------------------

    def province_token(self, region: str, client: str, scope: str) -> str:
        province = self.provinces[region]
        return self.client_token(
            province.clients[client], province.url("identity") + "/token", scope
        )

    def person_token(self, region: str, label: str, scope: str = "openid") -> str:
        """A token of a test person signing in through the IdP's pages."""
        if region == "national":
            return self.citizen_token(scope)
        province = self.provinces[region]
        issuer, person = province.url("identity"), province.persons[label]
        client, redirect = f"portal-{region}", f"{province.url('hall')}/portal/callback"
        answer = sign_in(issuer, client, redirect, person.username, person.password, scope=scope)
        return str(answer["access_token"])

    def exchange_token(self, region: str, national_token: str, *, audience: str, scope: str) -> str:
        """The national citizen's token exchanged at a province IdP (RFC 8693) by the
        province's portal: the citizen federated into the province."""
        province = self.provinces[region]
        response = httpx.post(
            province.url("identity") + "/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "client_id": f"portal-{region}",
                "subject_token": national_token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": audience,
                "scope": scope,
            },
            timeout=20.0,
        )
        if response.status_code != 200:
            raise PlatformError(f"token exchange at {region}: {response.text[:300]}")
        return str(response.json()["access_token"])

    # --- planning ------------------------------------------------------------------------

    def _plan(self) -> None:
        self._plan_national()
        for spec in self.specs:
            region = spec.region_code
            kek = keys.write_private(self.secrets / f"{region}-eseal.kek", keys.kek_hex())
            hall_kek = keys.write_private(self.secrets / f"{region}-hall.kek", keys.kek_hex())
            services = {
                "identity": self._service(f"{region}-identity", "identity", keys.data_keys()),
                "eseal": self._service(f"{region}-eseal", "eseal", {"ZWFW_KEK_FILE": str(kek)}),
                "elicense": self._service(f"{region}-elicense", "elicense"),
                # The hall encrypts applicants' certificate numbers at rest with its own KEK.
                "hall": self._service(f"{region}-hall", "hall", {"ZWFW_KEK_FILE": str(hall_kek)}),
            }
            self.provinces[region] = Province(
                spec=spec,
                services=services,
                channel=self.issue_channel_identity(f"{region} channel"),
                tls=keys.tls_client_certificate(f"platform.{region}.zwfw.local"),
            )
        self.registrations = tuple(
            ProvinceRegistration(
                region_code=p.region,
                name=p.spec.name,
                endpoints={s: p.url(s) for s in PROVINCE_SERVICES},
                channel_certificate_pem=p.channel.certificate.to_pem().decode(),
                tls_fingerprint=p.tls.fingerprint,
                tls_subject=p.tls.subject,
            )
            for p in self.provinces.values()
        )

    # --- identity ------------------------------------------------------------------------

    def _plan_identities(self) -> None:
        """Keys, settings and what each IdP gets registered (``_provision_identities``)."""
        self._bootstrap_national(
            list(self.provinces), [p.url("identity") for p in self.provinces.values()]
        )
        self._realms = [self._national_realm]
        for province in self.provinces.values():
            self._realms.append(self._province_realm(province))

    def _provision_identities(self) -> None:
        outcome = self.provision(ProvisioningPlan(realms=self._realms))
        assert self.citizen is not None
        self.citizen.sub = outcome.found("person", self.citizen.username, "sub")
        for province in self.provinces.values():
            for person in province.persons.values():
                person.sub = outcome.found("person", person.username, "sub")

    def _sign_expired_tokens(self) -> None:
        """For the security suite's "expired" caller, an access token of each province's IdP
        that expired an hour ago (see :func:`sign_expired_access_token`)."""
        for province in self.provinces.values():
            process = province.services["identity"]
            values = yaml.safe_load(process.config.read_text(encoding="utf-8"))
            # The data keys are in the process's environment only, never in its config file.
            values["data_key"] = process.env["ZWFW_DATA_KEY"]
            values["lookup_key"] = process.env["ZWFW_LOOKUP_KEY"]
            region = province.region
            province.expired_token = sign_expired_access_token(
                values,
                sub=province.persons["applicant"].sub,
                client_id=f"portal-{region}",
                audience=[
                    f"portal-{region}",
                    province.url("hall"),
                    province.url("elicense"),
                    province.url("eseal"),
                ],  # fmt: skip
                scope="openid elicense:read elicense:consent",
            )

    def _province_realm(self, province: Province) -> RealmPlan:
        region = province.region
        process = province.services["identity"]
        self._identity_config(process, region, "province")
        hall, elicense, eseal = (province.url(s) for s in ("hall", "elicense", "eseal"))
        plan: dict[str, tuple[list[str], list[str], list[str]]] = {
            # client id: (grants, scopes, audiences)
            f"hall-{region}": (["client_credentials"], ["elicense:share"], [elicense]),
            f"elicense-{region}": (["client_credentials"], ["eseal:sign"], [eseal]),
            f"ops-{region}": (["client_credentials"], OPS_SCOPES, [hall, elicense, eseal]),
            **suite_clients(region, hall, elicense, eseal),
        }
        for client_id in plan:
            province.clients[client_id] = self._client(region, client_id)
        city = province.spec.city
        for index, label in enumerate(("applicant", "other", "lockout"), start=1):
            province.persons[label] = Person(
                f"{label}-{region}", keys.password(), f"测试{label}",
                str(build_resident_id(city[:4] + "04", date(1990, 3, index), 100 + index)),
            )  # fmt: skip
        province.federation_key = keys.client_jwk("certification-issuer-1")
        clients = [
            ClientPlan(client_id=client_id, key_file=province.clients[client_id].key_file,
                       grant_types=grants, scopes=scopes, audiences=audiences)
            for client_id, (grants, scopes, audiences) in plan.items()
        ]  # fmt: skip
        clients += [
            # The hub: its own share token, and the exchange of citizens' national tokens for
            # their consent (see zwfw.services.hub.service.exchange); never elicense:read.
            ClientPlan(
                client_id=HUB_CLIENT, name="国家政务服务平台 hub", key_file=self._hub_client_file,
                grant_types=["client_credentials", TOKEN_EXCHANGE],
                scopes=["elicense:share", "elicense:consent"], audiences=[elicense],
            ),
            province_portal(province.spec, hall, elicense),
        ]  # fmt: skip
        national = self.national["identity"].url
        trust = [
            TrustPlan(issuer=national, jwks_uri=f"{national}/jwks"),
            TrustPlan(issuer=FEDERATION_TEST_ISSUER,
                      jwks=keys.public_jwks(province.federation_key)),
        ]  # fmt: skip
        return RealmPlan(
            name=region, url=process.url, admin=self.provisioning_client(process),
            clients=clients, trust=trust,
            persons=[_person_plan(p) for p in province.persons.values()],
        )  # fmt: skip

    def _operator(self, province: Province) -> Operator:
        """The province's operations client, as the provisioning acts at its services."""
        ops = province.clients[f"ops-{province.region}"]
        return Operator(token_url=province.url("identity") + "/token", client_id=ops.client_id,
                        key_file=ops.key_file)  # fmt: skip

    def _identity_processes(self) -> list[ServiceProcess]:
        return [
            self.national["identity"],
            *(p.services["identity"] for p in self.provinces.values()),
        ]

    # --- e-seal and e-licence ------------------------------------------------------------

    def _write_eseal_config(self, province: Province) -> None:
        process = province.services["eseal"]
        self._write_config(process, {
            "region_code": province.region,
            "auth": self._auth(province.url("identity"), process.url),
            "authority_name": f"{province.spec.name}电子印章制章系统",
            "licence_client": f"elicense-{province.region}",
        })  # fmt: skip

    def _make_issuer_seal(self, province: Province) -> None:
        region = province.region
        seals = issuer_seals(province.spec, f"elicense-{region}", f"signer-{region}")
        outcome = self.provision(ProvisioningPlan(eseal=[EsealPlan(
            url=province.url("eseal"), operator=self._operator(province),
            seals=list(seals.values()),
        )]))  # fmt: skip
        province.seal_es_id = outcome.found("seal", province.spec.issuer_code, "es_id")
        province.test_seal_es_id = outcome.found("seal", province.spec.test_issuer_code, "es_id")

    def _write_trust_bundle(self) -> None:
        roots = []
        for province in self.provinces.values():
            response = httpx.get(province.url("eseal") + "/trust", timeout=10.0)
            _expect(response, 200, f"{province.region} seal trust root")
            roots.append(str(response.json()["root_certificate"]).strip() + "\n")
        (self.state_dir / "config" / "seal-roots.pem").write_text("".join(roots))

    def _write_elicense_config(self, province: Province) -> None:
        process = province.services["elicense"]
        client = province.clients[f"elicense-{province.region}"]
        self._write_config(process, {
            "region_code": province.region,
            "auth": self._auth(province.url("identity"), process.url),
            "issuers": {
                province.spec.issuer_code: {
                    "name": province.spec.issuer_name, "es_id": province.seal_es_id,
                },
                province.spec.test_issuer_code: {
                    "name": TEST_ISSUER_NAME, "es_id": province.test_seal_es_id,
                },
            },
            "eseal": {
                "base_url": province.url("eseal"),
                "token_url": province.url("identity") + "/token",
                "client_id": client.client_id,
                "client_key_file": str(client.key_file),
            },
        })  # fmt: skip

    # --- hub and halls -------------------------------------------------------------------

    def _write_hall_config(self, province: Province) -> None:
        region = province.region
        process = province.services["hall"]
        hall_client = province.clients[f"hall-{region}"]
        national = self.national_clients[f"province-{region}"]
        channel_key = keys.write_private(
            self.secrets / f"{region}-channel.key", province.channel.key.to_pem()
        )
        channel_cert = self.state_dir / "config" / f"{region}-channel.pem"
        channel_cert.write_bytes(province.channel.certificate.to_pem())
        keys.write_private(self.secrets / f"{region}-tls.key", province.tls.key_pem)
        (self.state_dir / "config" / f"{region}-tls.pem").write_bytes(province.tls.certificate_pem)
        identity = province.url("identity")
        self._write_config(process, {
            "region_code": region,
            "auth": self._auth(identity, process.url),
            "elicense": {
                "base_url": province.url("elicense"),
                "token_url": identity + "/token",
                "client_id": hall_client.client_id,
                "client_key_file": str(hall_client.key_file),
                "trust_url": province.url("eseal") + "/trust",
                "trust_bundle": str(self.state_dir / "config" / "seal-roots.pem"),
                # Other provinces' registries confirm the copies that come through the hub.
                "registries": {
                    other.region: other.url("elicense")
                    for other in self.provinces.values()
                    if other.region != region
                },
            },
            "hub": {
                "base_url": self.national["hub"].url,
                "token_url": self.national["identity"].url + "/token",
                "client_id": national.client_id,
                "client_key_file": str(national.key_file),
                "signing_key_file": str(channel_key),
                "signing_cert_file": str(channel_cert),
                # A short backoff: the reference platform is also the certification sandbox.
                "base_delay_seconds": 0.5,
                "max_delay_seconds": 5.0,
                # What the faults suite's clock skew writes (the hall's clock, as signed).
                "clock_offset_file": str(self.clock_offset_path(region)),
            },
            "discovery": {
                "services": {s: province.url(s) for s in ("identity", "elicense", "eseal")},
                "jwks_uris": {"identity": identity + "/jwks"},
                "hub_url": self.national["hub"].url,
            },
        })  # fmt: skip

    # --- seeds ---------------------------------------------------------------------------

    def _seed(self, province: Province) -> None:
        """A licence type, licences (one of the test issuer, for the test holder) and the
        published demo item."""
        assert self.citizen is not None
        holders = [
            (label, HolderPlan(name=person.name, code=person.id_number, sub=person.sub))
            for label, person in (
                ("applicant", province.persons["applicant"]),
                ("other", province.persons["other"]),
                ("citizen", self.citizen),
            )
        ]
        plan = seed_plan(province.spec, self._operator(province), province.url("elicense"),
                         province.url("hall"), holders)  # fmt: skip
        outcome = self.provision(plan)
        for licence in plan.elicense[0].licences:
            province.licences[licence.label] = outcome.found("licence", licence.label,
                                                             "identifier")  # fmt: skip

    # --- profiles ------------------------------------------------------------------------

    def _env_name(self, region: str, credential: str) -> str:
        return f"ZWFW_REF_{region}_{credential.upper()}"

    def _credentials(self, province: Province) -> dict[str, str]:
        region = province.region
        consent = "openid elicense:read elicense:consent"
        assert province.federation_key is not None
        values = {
            "hall_applicant_token": self.person_token(region, "applicant", consent),
            "hall_other_applicant_token": self.person_token(region, "other", consent),
            "hall_catalog_editor_token": self.province_token(
                region, f"ops-{region}", "hall:catalog:write"
            ),
            "hall_staff_token": self.province_token(
                region, f"staff-{region}", "hall:case:handle hall:rectification"
            ),
            "hub_report_token": self.national_token(f"province-{region}", "hub:report"),
            "hub_exchange_token": self.national_token(f"province-{region}", "hub:exchange"),
            "hub_supervise_token": self.national_token(NATIONAL_OPS, SUPERVISE_SCOPE),
            "channel_signing_key": province.channel.key.to_pem().decode(),
            "channel_key_id": province.channel.key_id,
            "elicense_holder_token": self.person_token(region, "applicant", consent),
            "elicense_other_holder_token": self.person_token(region, "other", consent),
            "elicense_share_token": self.province_token(region, f"org-{region}", "elicense:share"),
            "elicense_issuer_token": self.province_token(region, f"ops-{region}", "elicense:issue"),
            "elicense_holder_subject": province.persons["applicant"].sub,
            "eseal_admin_token": self.province_token(region, f"ops-{region}", "eseal:admin"),
            "eseal_signer_subject": f"signer-{region}",
            "eseal_signer_token": self.province_token(region, f"signer-{region}", "eseal:sign"),
            "eseal_reader_token": self.province_token(region, f"ops-{region}", "eseal:read"),
            "elicense_test_issuer_code": province.spec.test_issuer_code,
            "elicense_test_issuer_signer_token": self.province_token(
                region, f"signer-{region}", "eseal:sign"
            ),
            "identity_rp_client_id": f"portal-{region}",
            "identity_rp_redirect_uri": f"{province.url('hall')}/portal/callback",
            "identity_rp_post_logout_redirect_uri": f"{province.url('hall')}/portal/signed-out",
            "identity_user": province.persons["applicant"].username,
            "identity_password": province.persons["applicant"].password,
            "identity_lockout_user": province.persons["lockout"].username,
            "identity_lockout_password": province.persons["lockout"].password,
            "identity_client_id": f"certify-{region}",
            "identity_client_key": keys.private_jwk_text(province.clients[f"certify-{region}"].key),
            "federation_issuer": FEDERATION_TEST_ISSUER,
            "federation_issuer_key": keys.private_jwk_text(province.federation_key),
        }
        values.update(self._security_credentials(province))
        # Cross-province exchange: a licence the national citizen holds in another province.
        others = [p for p in self.provinces.values() if p.region != region]
        if others:
            issuer = others[0]
            national = self.person_token("national", "citizen")
            values["xprov_citizen_token"] = national
            values["xprov_issuer_region"] = issuer.region
            values["xprov_licence_id"] = issuer.licences["citizen"]
            values["xprov_issuer_elicense_url"] = issuer.url("elicense")
            values["xprov_issuer_holder_token"] = self.exchange_token(
                issuer.region, national, audience=issuer.url("elicense"), scope="elicense:read"
            )
        return {self._env_name(region, name): value for name, value in values.items()}

    def _security_credentials(self, province: Province) -> dict[str, str]:
        """The callers of the security suite's authorization matrix that the other
        credentials do not already give (security/authz-matrix.yaml)."""
        region = province.region
        values = {
            "security_expired_token": province.expired_token,
            # A system client whose scope covers nothing of the hall, e-licence or hub; at the
            # e-seal service, one whose scope covers nothing of the e-seal service.
            "security_wrong_scope_token": self.province_token(
                region, f"ops-{region}", "eseal:admin"
            ),
            "security_wrong_scope_eseal_token": self.province_token(
                region, f"ops-{region}", "hall:catalog:write"
            ),
            # Reads the e-seal register for the 密评 check of its seals (SEC-CRY-001).
            "security_eseal_read_token": self.province_token(region, f"ops-{region}", "eseal:read"),
        }
        others = [p for p in self.provinces.values() if p.region != region]
        if others:
            other = others[0].region
            values["security_other_province_token"] = self.province_token(
                other, f"staff-{other}", "hall:case:handle hall:rectification"
            )
            values["security_other_province_hub_token"] = self.national_token(
                f"province-{other}", "hub:report hub:exchange"
            )
        return values

    def _write_profile(self, province: Province) -> None:
        region = province.region
        env = self._credentials(province)
        names = sorted(n.removeprefix(f"ZWFW_REF_{region}_").lower() for n in env)
        profile = {
            "name": f"Reference platform {province.spec.name} ({region})",
            "region_code": region,
            "services": {
                **{s: province.url(s) for s in ("identity", "hall", "elicense", "eseal")},
                "hub": self.national["hub"].url,
            },
            "credentials": {n: {"env": self._env_name(region, n)} for n in names},
            "declared": {
                "division_codes": [region, province.spec.city],
                "credit_codes": [province.spec.issuer_code, province.spec.dept_code],
                "implementation_codes": [province.spec.implementation_code],
                "handling_item_codes": [province.spec.implementation_code + "01"],
                "case_numbers": [
                    str(build_case_number(province.spec.implementation_code, date.today(), 1))
                ],
                "licence_identifiers": sorted(province.licences.values()),
            },
            # Every service listens on 127.0.0.1 in plain http: reachable from this host only.
            "internal_only": ["identity", "hall", "elicense", "eseal", "hub"],
            "timeout_seconds": 30,
            "faults": self._faults(province),
            "operations": {
                "rotate_signing_key": signing_key_rotation(
                    province.url("identity"),
                    self.provisioning_client(province.services["identity"]),
                ),
            },
        }
        self.profile_path(region).write_text(
            yaml.safe_dump(profile, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())]
        keys.write_private(self.env_path(region), "\n".join(lines) + "\n")

    def _faults(self, province: Province) -> dict[str, Any]:
        """How the faults suite may disturb this platform: kill one worker process of a
        service (uvicorn's supervisor starts another), stop the hub's processes for a while
        (SIGSTOP: connections hang as behind a dead link) and continue them, or set the
        hall's clock three times the hub's freshness window (300 s) ahead and back."""
        replica: dict[str, Any] = {}
        services = {s: province.services[s] for s in ("identity", "hall", "elicense", "eseal")}
        for name, process in {**services, "hub": self.national["hub"]}.items():
            assert process.process is not None
            pid = process.process.pid
            if self.workers > 1:
                # Worker processes are the supervisor's children started by multiprocessing.
                workers = f"pgrep -P {pid} -f multiprocessing.spawn"
                replica[name] = {
                    "cause": {"run": f"kill -KILL $({workers} | head -n 1)"},
                    "recovered": {"run": f'test "$({workers} | wc -l)" -ge {self.workers}'},
                }
            else:
                # The only process: nothing restarts it (a single-replica deployment).
                replica[name] = {"cause": {"run": f"kill -KILL {pid}"}}
        hub = self.national["hub"].process
        assert hub is not None
        offset = shlex.quote(str(self.clock_offset_path(province.region)))
        # The hub runs in its own session: its process group is its supervisor's pid.
        section: dict[str, Any] = {
            "replica": replica,
            "hub_outage": {
                "cause": {"run": f"kill -STOP -{hub.pid}"},
                "undo": {"run": f"kill -CONT -{hub.pid}"},
                "hold_seconds": 15,
            },
            "clock_skew": {
                "cause": {"run": f"echo {CLOCK_SKEW_SECONDS} > {offset}"},
                "undo": {"run": f"rm -f {offset}"},
                "skew_seconds": CLOCK_SKEW_SECONDS,
                "hold_seconds": 12,
            },
        }
        if self.database_restart is not None:
            section["database_restart"] = self.database_restart
        hall_database = self.database_urls.get(province.services["hall"].name, "")
        if hall_database.startswith("postgresql"):
            from zwfw.harness.faults import table_lock_fault

            # On PostgreSQL: the hall's case table locked for a while, as by a long migration.
            section["slow_database"] = table_lock_fault(hall_database, "hall_case")
        return section


def suite_clients(
    region: str, hall: str, elicense: str, eseal: str
) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """The province's clients the certification suites act as, by id: (grants, scopes,
    audiences)."""
    return {
        f"staff-{region}": (
            ["client_credentials"], ["hall:case:handle", "hall:rectification"], [hall],
        ),
        f"org-{region}": (["client_credentials"], ["elicense:share"], [elicense]),
        f"signer-{region}": (["client_credentials"], ["eseal:sign"], [eseal]),
        # eseal:read: the signing-key rotation check tries its tokens at the e-seal service.
        f"certify-{region}": (
            ["client_credentials", TOKEN_EXCHANGE], ["openid", "profile", "eseal:read"], [eseal],
        ),
    }  # fmt: skip


def province_portal(spec: ProvinceSpec, hall: str, elicense: str) -> ClientPlan:
    """The province's 政务服务网: a public client that signs residents in and exchanges
    national tokens for them."""
    return ClientPlan(
        client_id=f"portal-{spec.region_code}", name=f"{spec.name}政务服务网",
        auth_method="none",
        grant_types=["authorization_code", "refresh_token", TOKEN_EXCHANGE],
        redirect_uris=[f"{hall}/portal/callback"],
        post_logout_redirect_uris=[f"{hall}/portal/signed-out"],
        scopes=["openid", "profile", "elicense:read", "elicense:consent"],
        audiences=[hall, elicense],
    )  # fmt: skip


def issuer_seals(spec: ProvinceSpec, elicense_client: str, test_signer: str) -> dict[str, SealPlan]:
    """The province's issuer seals, by issuer code: the real issuer's licence seal (signer:
    the e-licence service only, as the e-seal service enforces) and the certification test
    issuer's seal (also ``test_signer``)."""
    picture = base64.b64encode(keys.seal_picture()).decode()
    library = SignerPlan(subject=elicense_client, name="电子证照库")
    return {
        spec.issuer_code: SealPlan(
            credit_code=spec.issuer_code, organisation=spec.issuer_name, category="licence",
            name=f"{spec.issuer_name}电子证照专用章", signers=[library], picture_png=picture,
        ),
        spec.test_issuer_code: SealPlan(
            credit_code=spec.test_issuer_code, organisation=TEST_ISSUER_NAME,
            category="business", name=f"{TEST_ISSUER_NAME}专用章（仅供认证测试）",
            signers=[library, SignerPlan(subject=test_signer, name="认证测试签章客户端")],
            picture_png=picture,
        ),
    }  # fmt: skip


def licence_plan(
    spec: ProvinceSpec, serial: int, label: str, holder: HolderPlan, *, test_issuer: bool = False
) -> LicencePlan:
    """A seeded business licence (its serial makes its identifier, so it is issued once)."""
    return LicencePlan(
        label=label,
        type_code=LICENCE_TYPE,
        issuer_code=spec.test_issuer_code if test_issuer else spec.issuer_code,
        licence_number=f"92{spec.city}MA{serial:08d}",
        serial=f"{spec.region_code}{serial:05d}",
        jurisdiction=spec.city,
        valid_from=date.today() - timedelta(days=30),
        holder=holder,
    )


def seed_plan(
    spec: ProvinceSpec, operator: Operator, elicense_url: str, hall_url: str,
    holders: Sequence[tuple[str, HolderPlan]],
) -> ProvisioningPlan:  # fmt: skip
    """The seeds of a province: the licence type, a licence per holder (by label) and, last,
    the first holder's licence of the certification test issuer (``TEST_ISSUER_LICENCE``),
    and the published demo item."""
    seeds = [*holders, (TEST_ISSUER_LICENCE, holders[0][1])]
    licences = [
        licence_plan(spec, serial, label, holder, test_issuer=label == TEST_ISSUER_LICENCE)
        for serial, (label, holder) in enumerate(seeds, start=1)
    ]
    return ProvisioningPlan(
        elicense=[ElicensePlan(url=elicense_url, operator=operator, types=[LICENCE_TYPE_PLAN],
                               licences=licences)],
        hall=[HallPlan(url=hall_url, operator=operator, items=[demo_guide(spec)])],
    )  # fmt: skip


def demo_guide(spec: ProvinceSpec) -> dict[str, Any]:
    """The demo item: 企业投资项目备案 at the capital's development and reform commission; its
    business licence can be replaced by an e-licence (免证办)."""
    code = spec.implementation_code
    return {
        "name": "企业投资项目备案",
        "implementation_code": code,
        "item_type": "20",
        "handling_items": [{"code": code + "01", "name": "首次备案"}],
        "dept_code": spec.dept_code,
        "dept_name": f"{spec.name}省会城市发展和改革委员会",
        "region_code": spec.city,
        "by_law": ["《企业投资项目核准和备案管理条例》第十三条"],
        "accept_condition": "在本市行政区域内投资建设的企业投资项目",
        "anticipate_day": 20,
        "anticipate_day_unit": "working_day",
        "promise_day": 5,
        "promise_day_unit": "working_day",
        "is_fee": False,
        "fees": [],
        "handle_flow": ["申请", "受理", "审查", "决定", "办结"],
        "handle_type": ["online", "window"],
        "limit_scene_num": 0,
        "link_addr": "https://zwfw.example.gov.cn/items/1",
        "link_way": "12345",
        "supervise_way": "12345 热线",
        "project_type": 2,
        "server_type": ["person", "legal_person"],
        "transact_addr": "市政务服务中心",
        "transact_time": "工作日 9:00-17:00",
        "materials": [
            {
                "name": FORM_MATERIAL,
                "basis": "《企业投资项目核准和备案管理办法》",
                "formats": ["electronic", "paper"],
                "copies": 1,
                "seal_required": True,
                "signature_required": True,
            },
            {
                "name": LICENCE_MATERIAL,
                "basis": "《企业投资项目核准和备案管理办法》",
                "formats": ["electronic"],
                "copies": 1,
                "seal_required": False,
                "signature_required": False,
                "licence_type_code": LICENCE_TYPE,
            },
        ],
    }


def iter_processes(platform: ReferencePlatform) -> Iterator[ServiceProcess]:
    yield from platform.national.values()
    for province in platform.provinces.values():
        yield from province.services.values()
