"""Certification material for a platform deployed by ``playbooks/site.yml``.

The playbook's ``certification`` role writes a plan (``<state>/certify/plan.json``: every
instance's public URL and settings file, the PKI and secrets it made) and runs two stages:

``platform``
    a provisioning client at the national IdP and one per provincial IdP, every province
    registered at the hub (endpoints, mutual-TLS fingerprint, channel signing certificate),
    each province's issuer seals at its e-seal service (the licence-issuing authority's
    licence seal, signed only by the e-licence service, and the certification test issuer's
    seal, also by ``signer-<region>``), written to ``<var>/<elicense instance>.issuers.json``
    and the seal roots to ``<var>/seal-roots.pem`` (the services role renders both into the
    e-licence and hall settings and restarts them);
``material``
    the test persons, relying parties and system clients the suites use, the certification
    federation issuer, the national citizen, a licence type and licences (one of the test
    issuer), a published catalog item; then per province a target profile
    ``<certify>/<site>.yaml`` and its credentials ``<certify>/<site>.env`` (0600, fresh
    tokens).

Everything made is recorded in ``<certify>/material.json`` (0600) and never made twice, so a
rerun reports ``changed: false``. Tokens expire (minutes), so ``credentials`` mints fresh ones
right before ``zwfw certify``. The same persons, clients and seeds as ``zwfw.reference``, whose
builders this reuses; only the URLs (https, the deployment's CA) and client ids of the
deployment differ.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey

from zwfw.codes import build_case_number
from zwfw.codes.personal import build_resident_id
from zwfw.crypto.x509 import SM2Certificate
from zwfw.formats.channel import certificate_key_id, tls_fingerprint
from zwfw.provisioning import (
    Outcome,
    PlanError,
    ProvisioningError,
    ProvisioningPlan,
    apply_plan,
)
from zwfw.provisioning.plan import (
    ClientPlan,
    EsealPlan,
    HolderPlan,
    HubPlan,
    Operator,
    PersonPlan,
    ProvinceRegistrationPlan,
    RealmPlan,
    TrustPlan,
    signing_key_rotation,
)
from zwfw.reference import keys
from zwfw.reference.national import (
    NATIONAL_OPS,
    NATIONAL_OPS_SCOPES,
    PROVISIONING_CLIENT,
    SUPERVISE_SCOPE,
)
from zwfw.reference.platform import (
    FEDERATION_TEST_ISSUER,
    OPS_SCOPES,
    TEST_ISSUER_NAME,
    TOKEN_EXCHANGE,
    Client,
    ProvinceSpec,
    issuer_seals,
    province_portal,
    seed_plan,
    sign_expired_access_token,
    suite_clients,
)
from zwfw.reference.signin import sign_in
from zwfw.services.kit.tokens import ClientCredentials, TokenRequestError

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# Environment variable prefix of the credentials the profiles name.
ENV_PREFIX = "ZWFW_DEPLOY"
# The credentials a deployed province's profile names (ZWFW_DEPLOY_<region>_<NAME>).
CREDENTIALS = (
    "hall_applicant_token", "hall_other_applicant_token", "hall_staff_token",
    "hall_catalog_editor_token",
    "hub_report_token", "hub_exchange_token", "hub_supervise_token",
    "channel_signing_key", "channel_key_id", "elicense_holder_token",
    "elicense_other_holder_token", "elicense_share_token", "eseal_admin_token",
    "eseal_signer_subject", "eseal_signer_token", "eseal_reader_token",
    "elicense_test_issuer_code",
    "elicense_test_issuer_signer_token", "elicense_issuer_token", "elicense_holder_subject",
    "identity_rp_client_id", "identity_rp_redirect_uri", "identity_rp_post_logout_redirect_uri",
    "identity_user", "identity_password",
    "identity_lockout_user", "identity_lockout_password", "identity_client_id",
    "identity_client_key", "federation_issuer", "federation_issuer_key",
)  # fmt: skip
# With more than one province: a licence exchanged across provinces (跨省通办).
CROSS_PROVINCE_CREDENTIALS = (
    "xprov_citizen_token", "xprov_issuer_region", "xprov_licence_id",
    "xprov_issuer_elicense_url", "xprov_issuer_holder_token",
)  # fmt: skip
# The services a citizen's access token of the province is for (besides its portal).
PROVINCE_AUDIENCES = ("hall", "elicense", "eseal")
# The security suite's callers (security/conftest.py); the other-province ones need a second.
SECURITY_CREDENTIALS = (
    "security_expired_token", "security_wrong_scope_token", "security_wrong_scope_eseal_token",
    "security_eseal_read_token",
)  # fmt: skip
SECURITY_CROSS_PROVINCE_CREDENTIALS = (
    "security_other_province_token", "security_other_province_hub_token",
)  # fmt: skip


class DeployError(RuntimeError):
    """A step could not be done: names what and why (one line)."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    config: Path
    # An IdP's provisioning client key (the public half is in its settings).
    admin_key: Path | None = None

    def realm(self, name: str, **plan: Any) -> RealmPlan:
        """What to provision at this IdP through its admin API."""
        if self.admin_key is None:
            raise DeployError(f"{name}: the plan gives no admin_key for {self.url}")
        admin = Operator(token_url=self.url + "/token", client_id=PROVISIONING_CLIENT,
                         key_file=self.admin_key)  # fmt: skip
        return RealmPlan(name=name, url=self.url, admin=admin, **plan)


@dataclass(frozen=True)
class ProvincePlan:
    site: str
    spec: ProvinceSpec
    services: dict[str, Endpoint]
    hub_client_id: str
    hub_client_key: Path
    elicense_client_id: str
    tls_cert: Path
    tls_key: Path
    channel_cert: Path
    channel_key: Path
    # A certification sandbox's profile `faults:` section (how the faults suite disturbs it).
    faults: dict[str, Any] | None = None

    @property
    def region(self) -> str:
        return self.spec.region_code

    def url(self, service: str) -> str:
        return self.services[service].url


@dataclass(frozen=True)
class Plan:
    """What the playbook deployed, as the ``certification`` role describes it."""

    certify_dir: Path
    var_dir: Path
    ca_bundle: Path
    national: dict[str, Endpoint]
    provinces: list[ProvincePlan]

    @classmethod
    def load(cls, path: Path) -> Plan:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                certify_dir=Path(raw["certify_dir"]),
                var_dir=Path(raw["var_dir"]),
                ca_bundle=Path(raw["ca_bundle"]),
                national={k: _endpoint(v) for k, v in raw["national"].items()},
                provinces=[_province(p) for p in raw["provinces"]],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DeployError(f"plan {path}: {exc.__class__.__name__}: {exc}") from None

    def province(self, key: str) -> ProvincePlan:
        for province in self.provinces:
            if key in (province.site, province.region):
                return province
        raise DeployError(f"no province {key} in the plan")

    @property
    def material_path(self) -> Path:
        return self.certify_dir / "material.json"


def _endpoint(raw: dict[str, str]) -> Endpoint:
    admin_key = Path(raw["admin_key"]) if raw.get("admin_key") else None
    return Endpoint(url=raw["url"].rstrip("/"), config=Path(raw["config"]), admin_key=admin_key)


def _province(raw: dict[str, Any]) -> ProvincePlan:
    return ProvincePlan(
        site=raw["site"],
        spec=ProvinceSpec(str(raw["region_code"]), raw.get("name") or str(raw["region_code"])),
        services={k: _endpoint(v) for k, v in raw["services"].items()},
        hub_client_id=raw["hub_client"]["client_id"],
        hub_client_key=Path(raw["hub_client"]["key_file"]),
        elicense_client_id=raw["elicense_client_id"],
        tls_cert=Path(raw["tls_client"]["cert"]),
        tls_key=Path(raw["tls_client"]["key"]),
        channel_cert=Path(raw["channel"]["cert"]),
        channel_key=Path(raw["channel"]["key"]),
        faults=_faults(raw["site"], raw.get("faults")),
    )


def _faults(site: str, raw: Any) -> dict[str, Any] | None:
    """The declared faults, checked now: a malformed declaration stops the deployment, not
    a certification run later."""
    if not raw:
        return None
    from pydantic import ValidationError

    from zwfw.harness.profile import Faults

    try:
        return Faults.model_validate(raw).canonical()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{site}: faults.{where}: {first['msg']}") from None


# --- files ---------------------------------------------------------------------------------


def write_private_if_changed(path: Path, text: str) -> bool:
    """Write a 0600 file unless it already holds ``text``; True when written."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    keys.write_private(path, text)
    return True


def write_public_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


class Material:
    """``material.json``: what was made, so nothing is made twice (0600: passwords, keys)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = (
            json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        )
        self.changed = False

    def section(self, *names: str) -> dict[str, Any]:
        node = self.data
        for name in names:
            node = node.setdefault(name, {})
        return node

    def record(self, section: dict[str, Any], key: str, value: Any) -> None:
        section[key] = value
        self.changed = True
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_if_changed(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")


# --- provisioning through the services' APIs ----------------------------------------------


def provision(plan: ProvisioningPlan, ca_bundle: Path | None = None) -> Outcome:
    """Apply ``plan`` (``zwfw.provisioning``); a refusal is a ``DeployError``."""
    try:
        return apply_plan(plan, ca_file=ca_bundle)
    except (ProvisioningError, PlanError) as exc:
        raise DeployError(str(exc)) from None


def register_key_client(
    idp: Endpoint,
    client_id: str,
    key: ECKey,
    *,
    grants: list[str],
    scopes: list[str],
    audiences: list[str],
    ca_bundle: Path | None = None,
) -> bool:
    """Register (or bring in line) a private_key_jwt client with the public half of ``key``
    at a running IdP; False when it was registered so already."""
    client = ClientPlan(client_id=client_id, jwks=keys.public_jwks(key), grant_types=grants,
                        scopes=scopes, audiences=audiences)  # fmt: skip
    plan = ProvisioningPlan(realms=[idp.realm(idp.url, clients=[client])])
    return provision(plan, ca_bundle).changed


def load_or_create_key(path: Path, kid: str) -> tuple[ECKey, bool]:
    """The private JWK in ``path``, made (0600) if the file does not exist yet."""
    if path.exists():
        return ECKey.import_key(json.loads(path.read_text(encoding="utf-8"))), False
    key = keys.client_jwk(kid)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(keys.private_jwk_text(key))
    return key, True


# --- tokens -------------------------------------------------------------------------------


def client_token(client: Client, issuer: str, scope: str) -> str:
    tokens = ClientCredentials(issuer + "/token", client.client_id, client.key, scope, timeout=20.0)
    try:
        return tokens()
    except TokenRequestError as exc:
        raise DeployError(f"token of {client.client_id} at {issuer}: {exc}") from None


def exchange_token(issuer: str, portal: str, subject_token: str, audience: str, scope: str) -> str:
    """A national token exchanged at a provincial IdP by its portal (RFC 8693)."""
    response = httpx.post(
        issuer + "/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "client_id": portal,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": audience,
            "scope": scope,
        },
        timeout=20.0,
    )
    _expect(response, 200, f"token exchange at {issuer}")
    return str(response.json()["access_token"])


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        detail = " ".join(response.text[:300].split())
        raise DeployError(f"{what}: HTTP {response.status_code}: {detail}")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the two stages -------------------------------------------------------------------------


class Certification:
    """Both stages and the credentials, over one plan and its ``material.json``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.material = Material(plan.material_path)
        self._registered: set[tuple[str, str]] = set()

    # Clients kept in material.json ---------------------------------------------------------

    def _client(self, where: dict[str, Any], client_id: str) -> Client:
        key = ECKey.import_key(where["clients"][client_id])
        return Client(client_id, key, self.plan.material_path)

    def _ensure_client(
        self,
        where: dict[str, Any],
        idp: Endpoint,
        client_id: str,
        grants: list[str],
        scopes: list[str],
        audiences: list[str],
    ) -> Client:
        clients = where.setdefault("clients", {})
        if client_id not in clients:
            self.material.record(
                clients, client_id, keys.client_jwk(f"{client_id}-1").as_dict(private=True)
            )
        client = self._client(where, client_id)
        # Registered as recorded once per run (a rerun finds it unchanged).
        if (idp.url, client_id) not in self._registered:
            if register_key_client(
                idp, client_id, client.key, grants=grants, scopes=scopes, audiences=audiences,
                ca_bundle=self.plan.ca_bundle,
            ):  # fmt: skip
                self.material.changed = True
            self._registered.add((idp.url, client_id))
        return client

    def _provision(self, plan: ProvisioningPlan) -> Outcome:
        outcome = provision(plan, self.plan.ca_bundle)
        if outcome.changed:
            self.material.changed = True
        return outcome

    def national_ops(self) -> Client:
        hub = self.plan.national["hub"].url
        return self._ensure_client(
            self.material.section("national"), self.plan.national["identity"],
            NATIONAL_OPS, ["client_credentials"], list(NATIONAL_OPS_SCOPES), [hub],
        )  # fmt: skip

    def ops(self, province: ProvincePlan) -> Client:
        return self._ensure_client(
            self.material.section("provinces", province.region),
            province.services["identity"], f"ops-{province.region}",
            ["client_credentials"], OPS_SCOPES,
            [province.url(s) for s in ("hall", "elicense", "eseal")],
        )  # fmt: skip

    def _operator(self, province: ProvincePlan) -> Operator:
        """The province's operations client, as the provisioning acts at its services (its
        key from material.json, in a 0600 file of its own)."""
        ops = self.ops(province)
        key_file = self.plan.certify_dir / "keys" / f"{ops.client_id}.jwk"
        key_file.parent.mkdir(mode=0o700, exist_ok=True)
        write_private_if_changed(key_file, keys.private_jwk_text(ops.key))
        return Operator(token_url=province.url("identity") + "/token", client_id=ops.client_id,
                        key_file=key_file)  # fmt: skip

    # Stage 1: platform ----------------------------------------------------------------------

    def platform(self) -> bool:
        ops = self.national_ops()
        for province in self.plan.provinces:
            self._register_at_hub(province, ops)
        for province in self.plan.provinces:
            self._issuer_seal(province)
        self._seal_roots()
        return self.material.changed

    def _register_at_hub(self, province: ProvincePlan, ops: Client) -> None:
        tls = x509.load_pem_x509_certificate(province.tls_cert.read_bytes())
        registration = ProvinceRegistrationPlan(
            region_code=province.region,
            name=province.spec.name,
            endpoints={
                "discovery": province.url("hall") + "/.well-known/zwfw",
                **{s: province.url(s) for s in ("identity", "hall", "elicense", "eseal")},
            },
            oauth_client_id=province.hub_client_id,
            tls_fingerprint=tls_fingerprint(tls.public_bytes(serialization.Encoding.DER)),
            tls_subject=tls.subject.rfc4514_string(),
            signing_certificate=province.channel_cert.read_text(encoding="utf-8"),
        )
        key_file = self.plan.certify_dir / "keys" / f"{ops.client_id}.jwk"
        key_file.parent.mkdir(mode=0o700, exist_ok=True)
        write_private_if_changed(key_file, keys.private_jwk_text(ops.key))
        operator = Operator(token_url=self.plan.national["identity"].url + "/token",
                            client_id=ops.client_id, key_file=key_file)  # fmt: skip
        self._provision(ProvisioningPlan(hub=HubPlan(
            url=self.plan.national["hub"].url, operator=operator, provinces=[registration],
        )))  # fmt: skip

    def _issuer_seal(self, province: ProvincePlan) -> None:
        where = self.material.section("provinces", province.region)
        spec = province.spec
        seals = issuer_seals(spec, province.elicense_client_id, f"signer-{province.region}")
        outcome = self._provision(ProvisioningPlan(eseal=[EsealPlan(
            url=province.url("eseal"), operator=self._operator(province),
            seals=list(seals.values()),
        )]))  # fmt: skip
        for code, key in ((spec.issuer_code, "licence_seal_es_id"),
                          (spec.test_issuer_code, "test_seal_es_id")):  # fmt: skip
            es_id = outcome.found("seal", code, "es_id")
            if where.get(key) != es_id:
                self.material.record(where, key, es_id)
        issuers = {
            spec.issuer_code: {"name": spec.issuer_name, "es_id": where["licence_seal_es_id"]},
            spec.test_issuer_code: {"name": TEST_ISSUER_NAME, "es_id": where["test_seal_es_id"]},
        }
        elicense = province.services["elicense"].config.stem
        write_public_if_changed(
            self.plan.var_dir / f"{elicense}.issuers.json", json.dumps(issuers, indent=2) + "\n"
        )

    def _seal_roots(self) -> None:
        roots = []
        for province in self.plan.provinces:
            response = httpx.get(province.url("eseal") + "/trust", timeout=10.0)
            _expect(response, 200, f"{province.region} seal trust root")
            roots.append(str(response.json()["root_certificate"]).strip() + "\n")
        write_public_if_changed(self.plan.var_dir / "seal-roots.pem", "".join(roots))

    # Stage 2: material ----------------------------------------------------------------------

    def seed(self) -> bool:
        self._national_material()
        for province in self.plan.provinces:
            self._province_identity(province)
        for province in self.plan.provinces:
            self._seeds(province)
        return self.material.changed

    def _persons(
        self, idp: Endpoint, name: str, where: dict[str, Any],
        wanted: list[tuple[str, str, str, str]],
    ) -> list[PersonPlan]:  # fmt: skip
        """Test persons (label, login name, name, ID number), their passwords from
        material.json (made for a new one)."""
        persons = where.setdefault("persons", {})
        plans = []
        for label, username, person_name, id_number in wanted:
            if label not in persons:
                self.material.record(persons, label, {
                    "username": username, "password": keys.password(), "name": person_name,
                    "id_number": id_number,
                })  # fmt: skip
            known = persons[label]
            plans.append(PersonPlan(username=known["username"], password=known["password"],
                                    name=known["name"], id_number=known["id_number"]))  # fmt: skip
        return plans

    def _apply_realm(self, where: dict[str, Any], realm: RealmPlan) -> None:
        outcome = self._provision(ProvisioningPlan(realms=[realm]))
        for change in outcome.changes:
            if change.kind != "person":
                continue
            person = next(p for p in where["persons"].values() if p["username"] == change.name)
            if "sub" not in person and change.result == "unchanged":
                # Its password is not ours: the account was made by someone else.
                raise DeployError(
                    f"{change.name} exists at {realm.name} but is not in {self.plan.material_path}"
                )
            if person.get("sub") != change.detail["sub"]:
                self.material.record(person, "sub", change.detail["sub"])

    def _national_material(self) -> None:
        national = self.material.section("national")
        identity = self.plan.national["identity"]
        portal = ClientPlan(
            client_id="portal", name="全国一体化政务服务平台", auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=[f"{identity.url}/portal/callback"], scopes=["openid", "profile"],
            audiences=[self.plan.national["hub"].url,
                       *(p.url("identity") for p in self.plan.provinces)],
        )  # fmt: skip
        persons = self._persons(identity, "national", national, [(
            "citizen", "citizen-zj", "王小明",
            str(build_resident_id("330106", date(1988, 6, 1), 17)),
        )])  # fmt: skip
        self._apply_realm(national, identity.realm("national", clients=[portal], persons=persons))

    def _province_identity(self, province: ProvincePlan) -> None:
        region = province.region
        where = self.material.section("provinces", region)
        idp = province.services["identity"]
        hall, elicense, eseal = (province.url(s) for s in ("hall", "elicense", "eseal"))
        self.ops(province)
        for client_id, (grants, scopes, audiences) in suite_clients(
            region, hall, elicense, eseal
        ).items():
            self._ensure_client(where, idp, client_id, grants, scopes, audiences)
        portal = province_portal(province.spec, hall, elicense)
        if "federation_key" not in where:
            key = keys.client_jwk("certification-issuer-1")
            self.material.record(where, "federation_key", key.as_dict(private=True))
        federation = ECKey.import_key(where["federation_key"])
        trust = TrustPlan(issuer=FEDERATION_TEST_ISSUER, jwks=keys.public_jwks(federation))
        city = province.spec.city
        persons = self._persons(idp, region, where, [
            (label, f"{label}-{region}", f"测试{label}",
             str(build_resident_id(city[:4] + "04", date(1990, 3, index), 100 + index)))
            for index, label in enumerate(("applicant", "other", "lockout"), start=1)
        ])  # fmt: skip
        self._apply_realm(
            where, idp.realm(region, clients=[portal], trust=[trust], persons=persons)
        )

    def _seeds(self, province: ProvincePlan) -> None:
        """The licence type, licences (the test holder's licence of the certification test
        issuer last) and the published catalog item."""
        region = province.region
        where = self.material.section("provinces", region)
        holders = [
            (label, HolderPlan(name=person["name"], code=person["id_number"], sub=person["sub"]))
            for label, person in (
                ("applicant", where["persons"]["applicant"]),
                ("other", where["persons"]["other"]),
                ("citizen", self.material.section("national")["persons"]["citizen"]),
            )
        ]
        plan = seed_plan(province.spec, self._operator(province), province.url("elicense"),
                         province.url("hall"), holders)  # fmt: skip
        outcome = self._provision(plan)
        recorded = where.setdefault("licences", {})
        for licence in plan.elicense[0].licences:
            identifier = outcome.found("licence", licence.label, "identifier")
            if recorded.get(licence.label) != identifier:
                self.material.record(recorded, licence.label, identifier)
        if where.get("catalog_item") != province.spec.implementation_code:
            self.material.record(where, "catalog_item", province.spec.implementation_code)

    # Profiles and credentials -------------------------------------------------------------------

    def env_name(self, province: ProvincePlan, credential: str) -> str:
        return f"{ENV_PREFIX}_{province.region}_{credential.upper()}"

    def profile_path(self, province: ProvincePlan) -> Path:
        return self.plan.certify_dir / f"{province.site}.yaml"

    def env_path(self, province: ProvincePlan) -> Path:
        return self.plan.certify_dir / f"{province.site}.env"

    def _person_token(self, issuer: str, portal: str, redirect: str, person: dict[str, Any],
                      scope: str) -> str:  # fmt: skip
        answer = sign_in(issuer, portal, redirect, person["username"], person["password"],
                         scope=scope)  # fmt: skip
        return str(answer["access_token"])

    def credentials(self, province: ProvincePlan) -> dict[str, str]:
        """Every credential the province's profile names, with fresh tokens."""
        region = province.region
        where = self.material.section("provinces", region)
        national = self.material.section("national")
        if "catalog_item" not in where or "persons" not in national:
            raise DeployError(f"no certification material for {region}: run the playbook first")
        identity = province.url("identity")
        portal, redirect = f"portal-{region}", f"{province.url('hall')}/portal/callback"
        consent = "openid elicense:read elicense:consent"
        persons = where["persons"]
        national_idp = self.plan.national["identity"].url
        hub_client = Client(
            province.hub_client_id,
            ECKey.import_key(json.loads(province.hub_client_key.read_text(encoding="utf-8"))),
            province.hub_client_key,
        )
        channel = SM2Certificate.from_pem(province.channel_cert.read_bytes())

        def person(label: str) -> str:
            return self._person_token(identity, portal, redirect, persons[label], consent)

        def client(client_id: str, scope: str) -> str:
            return client_token(self._client(where, client_id), identity, scope)

        values = {
            "hall_applicant_token": person("applicant"),
            "hall_other_applicant_token": person("other"),
            "hall_staff_token": client(f"staff-{region}", "hall:case:handle hall:rectification"),
            "hall_catalog_editor_token": client(f"ops-{region}", "hall:catalog:write"),
            "hub_report_token": client_token(hub_client, national_idp, "hub:report"),
            "hub_exchange_token": client_token(hub_client, national_idp, "hub:exchange"),
            "hub_supervise_token": client_token(
                self._client(national, NATIONAL_OPS), national_idp, SUPERVISE_SCOPE
            ),
            "channel_signing_key": province.channel_key.read_text(encoding="utf-8"),
            "channel_key_id": certificate_key_id(channel),
            "elicense_holder_token": person("applicant"),
            "elicense_other_holder_token": person("other"),
            "elicense_share_token": client(f"org-{region}", "elicense:share"),
            "elicense_issuer_token": client(f"ops-{region}", "elicense:issue"),
            "elicense_holder_subject": persons["applicant"]["sub"],
            "eseal_admin_token": client(f"ops-{region}", "eseal:admin"),
            "eseal_signer_subject": f"signer-{region}",
            "eseal_signer_token": client(f"signer-{region}", "eseal:sign"),
            "eseal_reader_token": client(f"ops-{region}", "eseal:read"),
            "elicense_test_issuer_code": province.spec.test_issuer_code,
            "elicense_test_issuer_signer_token": client(f"signer-{region}", "eseal:sign"),
            "identity_rp_client_id": portal,
            "identity_rp_redirect_uri": redirect,
            "identity_rp_post_logout_redirect_uri": f"{province.url('hall')}/portal/signed-out",
            "identity_user": persons["applicant"]["username"],
            "identity_password": persons["applicant"]["password"],
            "identity_lockout_user": persons["lockout"]["username"],
            "identity_lockout_password": persons["lockout"]["password"],
            "identity_client_id": f"certify-{region}",
            "identity_client_key": json.dumps(where["clients"][f"certify-{region}"], indent=2),
            "federation_issuer": FEDERATION_TEST_ISSUER,
            "federation_issuer_key": json.dumps(where["federation_key"], indent=2),
        }
        # Cross-province exchange: a licence the national citizen holds in another province.
        others = [p for p in self.plan.provinces if p.region != region]
        if others:
            issuer = others[0]
            citizen = national["persons"]["citizen"]
            national_token = self._person_token(
                national_idp, "portal", f"{national_idp}/portal/callback", citizen, "openid"
            )
            issuer_material = self.material.section("provinces", issuer.region)
            values["xprov_citizen_token"] = national_token
            values["xprov_issuer_region"] = issuer.region
            values["xprov_licence_id"] = issuer_material["licences"]["citizen"]
            values["xprov_issuer_elicense_url"] = issuer.url("elicense")
            values["xprov_issuer_holder_token"] = exchange_token(
                issuer.url("identity"), f"portal-{issuer.region}", national_token,
                issuer.url("elicense"), "elicense:read",
            )  # fmt: skip
        values.update(self._security_credentials(province, persons["applicant"]["sub"]))
        return {self.env_name(province, name): value for name, value in values.items()}

    def _security_credentials(self, province: ProvincePlan, applicant_sub: str) -> dict[str, str]:
        """The security suite's callers that the other credentials do not already give
        (security/authz-matrix.yaml), as the reference platform makes them."""
        region = province.region
        where = self.material.section("provinces", region)
        ops = self._client(where, f"ops-{region}")
        identity = province.url("identity")
        values = {
            "security_expired_token": self._expired_token(province, applicant_sub),
            # Scopes that cover nothing of the hall, e-licence and hub; of the e-seal service.
            "security_wrong_scope_token": client_token(ops, identity, "eseal:admin"),
            "security_wrong_scope_eseal_token": client_token(ops, identity, "hall:catalog:write"),
            "security_eseal_read_token": client_token(ops, identity, "eseal:read"),
        }
        others = [p for p in self.plan.provinces if p.region != region]
        if others:
            other = others[0]
            other_where = self.material.section("provinces", other.region)
            values["security_other_province_token"] = client_token(
                self._client(other_where, f"staff-{other.region}"), other.url("identity"),
                "hall:case:handle hall:rectification",
            )  # fmt: skip
            other_hub = Client(
                other.hub_client_id,
                ECKey.import_key(json.loads(other.hub_client_key.read_text(encoding="utf-8"))),
                other.hub_client_key,
            )
            values["security_other_province_hub_token"] = client_token(
                other_hub, self.plan.national["identity"].url, "hub:report hub:exchange"
            )
        return values

    def _expired_token(self, province: ProvincePlan, applicant_sub: str) -> str:
        """An access token of the province's IdP that expired an hour ago, signed with the
        IdP's current key from its key store: the deploying host reads the IdP's settings
        (with its data keys) from the instance's configuration file."""
        config = province.services["identity"].config
        try:
            settings = yaml.safe_load(config.read_text(encoding="utf-8"))
        except OSError as error:
            raise DeployError(
                f"security_expired_token: cannot read the IdP's settings {config}: {error.strerror}"
            ) from error
        region = province.region
        return sign_expired_access_token(
            settings,
            sub=applicant_sub,
            client_id=f"portal-{region}",
            audience=[f"portal-{region}", *(province.url(s) for s in PROVINCE_AUDIENCES)],
            scope="openid elicense:read elicense:consent",
        )

    def profile(self, province: ProvincePlan) -> dict[str, Any]:
        where = self.material.section("provinces", province.region)
        spec = province.spec
        names = list(CREDENTIALS) + list(SECURITY_CREDENTIALS)
        if len(self.plan.provinces) > 1:
            names += CROSS_PROVINCE_CREDENTIALS + SECURITY_CROSS_PROVINCE_CREDENTIALS
        return {
            "name": f"{spec.name} ({province.region}), deployed by playbooks/site.yml",
            "region_code": province.region,
            "services": {
                **{s: province.url(s) for s in ("identity", "hall", "elicense", "eseal")},
                "hub": self.plan.national["hub"].url,
            },
            # The deployment's CAs, and the province's client certificate towards the hub.
            "tls": {
                "ca_bundle": str(self.plan.ca_bundle),
                "client_cert": str(province.tls_cert),
                "client_key": str(province.tls_key),
            },
            "credentials": {n: {"env": self.env_name(province, n)} for n in sorted(names)},
            # The deployment on this host, for the security suite's static checks (SEC-DEP-*):
            # its secrets' modes and owners, listening ports and gateway configuration.
            "deployment": {"state_dir": str(self.plan.certify_dir.parent)},
            **({"faults": province.faults} if province.faults else {}),
            "operations": {"rotate_signing_key": self.rotation(province)},
            "declared": {
                "division_codes": [province.region, spec.city],
                "credit_codes": [spec.issuer_code, spec.dept_code],
                "implementation_codes": [spec.implementation_code],
                "handling_item_codes": [spec.implementation_code + "01"],
                "case_numbers": [str(build_case_number(spec.implementation_code, date.today(), 1))],
                "licence_identifiers": sorted(where["licences"].values()),
            },
            "timeout_seconds": 30,
        }

    def rotation(self, province: ProvincePlan) -> dict[str, str]:
        """How the harness rotates the province IdP's signing key: through its admin API,
        as the provisioning client this deployment made for it."""
        idp = province.services["identity"]
        if idp.admin_key is None:
            raise DeployError(f"{province.site}: the plan gives no admin_key for {idp.url}")
        admin = Operator(token_url=idp.url + "/token", client_id=PROVISIONING_CLIENT,
                         key_file=idp.admin_key)  # fmt: skip
        return signing_key_rotation(idp.url, admin, self.plan.ca_bundle)

    def write_profiles(self) -> list[Path]:
        written = []
        for province in self.plan.provinces:
            text = yaml.safe_dump(self.profile(province), allow_unicode=True, sort_keys=False)
            write_public_if_changed(self.profile_path(province), text)
            written.append(self.profile_path(province))
        return written

    def write_credentials(self, province: ProvincePlan) -> Path:
        """The env file of ``province``: fresh tokens, and the CA bundle for plain clients."""
        env = self.credentials(province)
        lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())]
        # Some suites fetch absolute URLs the target hands out with plain httpx clients.
        lines.append(f"export SSL_CERT_FILE={shlex.quote(str(self.plan.ca_bundle))}")
        lines.append(f"# minted {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; tokens last minutes")
        keys.write_private(self.env_path(province), "\n".join(lines) + "\n")
        return self.env_path(province)
