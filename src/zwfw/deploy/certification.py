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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from zwfw.codes import build_case_number
from zwfw.codes.personal import build_resident_id
from zwfw.crypto.x509 import SM2Certificate
from zwfw.formats.channel import certificate_key_id, tls_fingerprint
from zwfw.reference import keys
from zwfw.reference.platform import (
    FEDERATION_TEST_ISSUER,
    LICENCE_TYPE,
    TEST_ISSUER_LICENCE,
    TEST_ISSUER_NAME,
    TOKEN_EXCHANGE,
    Client,
    ProvinceSpec,
    demo_guide,
    issuer_seal_requests,
    licence_request,
)
from zwfw.reference.signin import sign_in
from zwfw.services.kit.tokens import ClientCredentials, TokenRequestError

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# The client the hub uses at every provincial IdP (the same id and key at each).
HUB_PROVINCE_CLIENT = "national-hub"
NATIONAL_OPS = "national-ops"
# What the suites read at the hub: what arrived (supervision) and the province registry.
SUPERVISE_SCOPE = "hub:supervise hub:provinces:read"
# Environment variable prefix of the credentials the profiles name.
ENV_PREFIX = "ZWFW_DEPLOY"


class DeployError(RuntimeError):
    """A step could not be done: names what and why (one line)."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    config: Path


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
    return Endpoint(url=raw["url"].rstrip("/"), config=Path(raw["config"]))


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
    )


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


# --- identity, straight against the instance's database ------------------------------------


@contextmanager
def identity_instance(config: Path) -> Iterator[tuple[Any, Session]]:
    """The IdP's service object and one transaction on its database, for the identity domain
    layer before the IdP starts."""
    from zwfw.services.identity import IdentitySettings, build
    from zwfw.services.kit import load_settings

    app = build(load_settings(IdentitySettings, config))
    try:
        with app.state.kit.sessions.begin() as db:
            yield app.state.identity, db
    finally:
        app.state.kit.engine.dispose()


# Who the audit log of the IdP names for what this role registers there.
DEPLOY_ACTOR = "zwfw deploy"


def client_exists(db: Session, client_id: str) -> bool:
    from zwfw.services.identity.clients import find_client

    return find_client(db, client_id) is not None


def register_key_client(
    config: Path,
    client_id: str,
    key: ECKey,
    *,
    grants: list[str],
    scopes: list[str],
    audiences: list[str],
    name: str | None = None,
) -> bool:
    """Register a private_key_jwt client with the public half of ``key``; False if known."""
    from zwfw.services.identity.clients import ClientIn, register_client

    with identity_instance(config) as (_svc, db):
        if client_exists(db, client_id):
            return False
        register_client(db, ClientIn(
            client_id=client_id, name=name or client_id, auth_method="private_key_jwt",
            jwks=keys.public_jwks(key), grant_types=cast(Any, grants), scopes=scopes,
            audiences=audiences,
        ), actor=DEPLOY_ACTOR)  # fmt: skip
    return True


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

    # Clients kept in material.json ---------------------------------------------------------

    def _client(self, where: dict[str, Any], client_id: str) -> Client:
        key = ECKey.import_key(where["clients"][client_id])
        return Client(client_id, key, self.plan.material_path)

    def _ensure_client(
        self,
        where: dict[str, Any],
        config: Path,
        client_id: str,
        grants: list[str],
        scopes: list[str],
        audiences: list[str],
    ) -> Client:
        clients = where.setdefault("clients", {})
        if client_id not in clients:
            key = keys.client_jwk(f"{client_id}-1")
            if not register_key_client(
                config, client_id, key, grants=grants, scopes=scopes, audiences=audiences
            ):
                raise DeployError(
                    f"client {client_id} exists at {config.stem} but its key is not in "
                    f"{self.plan.material_path}"
                )
            self.material.record(clients, client_id, key.as_dict(private=True))
        return self._client(where, client_id)

    def national_ops(self) -> Client:
        hub = self.plan.national["hub"].url
        return self._ensure_client(
            self.material.section("national"), self.plan.national["identity"].config,
            NATIONAL_OPS, ["client_credentials"],
            ["hub:provinces:write", "hub:provinces:read", "hub:supervise"], [hub],
        )  # fmt: skip

    def ops(self, province: ProvincePlan) -> Client:
        return self._ensure_client(
            self.material.section("provinces", province.region),
            province.services["identity"].config, f"ops-{province.region}",
            ["client_credentials"],
            ["hall:catalog:write", "elicense:issue", "elicense:admin", "eseal:admin"],
            [province.url(s) for s in ("hall", "elicense", "eseal")],
        )  # fmt: skip

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
        done = self.material.section("hub", "provinces")
        if province.region in done:
            return
        hub = self.plan.national["hub"].url
        token = client_token(
            ops, self.plan.national["identity"].url, "hub:provinces:write hub:provinces:read"
        )
        tls = x509.load_pem_x509_certificate(province.tls_cert.read_bytes())
        body = {
            "region_code": province.region,
            "name": province.spec.name,
            "endpoints": {
                "discovery": province.url("hall") + "/.well-known/zwfw",
                **{s: province.url(s) for s in ("identity", "hall", "elicense", "eseal")},
            },
            "oauth_client_id": province.hub_client_id,
            "tls_fingerprint": tls_fingerprint(tls.public_bytes(serialization.Encoding.DER)),
            "tls_subject": tls.subject.rfc4514_string(),
            "signing_certificate": province.channel_cert.read_text(encoding="utf-8"),
        }
        response = httpx.post(hub + "/provinces", json=body, headers=_bearer(token), timeout=20.0)
        if response.status_code == 409:
            # Registered before this file existed (a state directory kept across re-installs).
            response = httpx.get(
                f"{hub}/provinces/{province.region}", headers=_bearer(token), timeout=20.0
            )
            _expect(response, 200, f"reading {province.region} at the hub")
        else:
            _expect(response, 201, f"registering {province.region} at the hub")
        self.material.record(done, province.region, {"registered": True})

    def _issuer_seal(self, province: ProvincePlan) -> None:
        where = self.material.section("provinces", province.region)
        spec = province.spec
        # Recorded under their own keys: a state made when the issuer's seal still had a
        # general signer gets a new licence seal instead of keeping that one.
        recorded = {
            spec.issuer_code: "licence_seal_es_id",
            spec.test_issuer_code: "test_seal_es_id",
        }
        if not all(key in where for key in recorded.values()):
            token = client_token(self.ops(province), province.url("identity"), "eseal:admin")
            requests = issuer_seal_requests(
                spec, province.elicense_client_id, f"signer-{province.region}"
            )
            for code, key in recorded.items():
                if key in where:
                    continue
                response = httpx.post(
                    province.url("eseal") + "/seals", json=requests[code],
                    headers=_bearer(token), timeout=30.0,
                )  # fmt: skip
                _expect(response, 201, f"{province.region} seal of issuer {code}")
                self.material.record(where, key, str(response.json()["es_id"]))
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
            self._licences(province)
            self._catalog(province)
        return self.material.changed

    def _person(
        self, config: Path, where: dict[str, Any], label: str, username: str, name: str,
        id_number: str,
    ) -> None:  # fmt: skip
        persons = where.setdefault("persons", {})
        if label in persons:
            return
        password = keys.password()
        with identity_instance(config) as (svc, db):
            if svc.accounts.by_username(db, username) is not None:
                raise DeployError(
                    f"{username} exists at {config.stem} but is not in {self.plan.material_path}"
                )
            account = svc.accounts.create_person(
                db, username=username, password=password, name=name, id_number=id_number
            )
            sub = account.sub
        self.material.record(
            persons, label,
            {"username": username, "password": password, "name": name, "id_number": id_number,
             "sub": sub},
        )  # fmt: skip

    def _public_client(
        self, config: Path, where: dict[str, Any], client_id: str, name: str, grants: list[str],
        redirect: str, scopes: list[str], audiences: list[str],
    ) -> None:  # fmt: skip
        from zwfw.services.identity.clients import ClientIn, register_client

        done = where.setdefault("relying_parties", {})
        if client_id in done:
            return
        with identity_instance(config) as (_svc, db):
            if not client_exists(db, client_id):
                register_client(db, ClientIn(
                    client_id=client_id, name=name, auth_method="none",
                    grant_types=cast(Any, grants),
                    redirect_uris=[redirect], scopes=scopes, audiences=audiences,
                ), actor=DEPLOY_ACTOR)  # fmt: skip
        self.material.record(done, client_id, redirect)

    def _national_material(self) -> None:
        national = self.material.section("national")
        identity = self.plan.national["identity"]
        self._public_client(
            identity.config, national, "portal", "全国一体化政务服务平台",
            ["authorization_code", "refresh_token"], f"{identity.url}/portal/callback",
            ["openid", "profile"],
            [self.plan.national["hub"].url, *(p.url("identity") for p in self.plan.provinces)],
        )  # fmt: skip
        self._person(
            identity.config, national, "citizen", "citizen-zj", "王小明",
            str(build_resident_id("330106", date(1988, 6, 1), 17)),
        )  # fmt: skip

    def _province_identity(self, province: ProvincePlan) -> None:
        region = province.region
        where = self.material.section("provinces", region)
        config = province.services["identity"].config
        hall, elicense, eseal = (province.url(s) for s in ("hall", "elicense", "eseal"))
        self.ops(province)
        plan: dict[str, tuple[list[str], list[str], list[str]]] = {
            f"staff-{region}": (
                ["client_credentials"], ["hall:case:handle", "hall:rectification"], [hall],
            ),
            f"org-{region}": (["client_credentials"], ["elicense:share"], [elicense]),
            f"signer-{region}": (["client_credentials"], ["eseal:sign"], [eseal]),
            f"certify-{region}": (
                ["client_credentials", TOKEN_EXCHANGE], ["openid", "profile"], [],
            ),
        }  # fmt: skip
        for client_id, (grants, scopes, audiences) in plan.items():
            self._ensure_client(where, config, client_id, grants, scopes, audiences)
        self._public_client(
            config, where, f"portal-{region}", f"{province.spec.name}政务服务网",
            ["authorization_code", "refresh_token", TOKEN_EXCHANGE], f"{hall}/portal/callback",
            ["openid", "profile", "elicense:read", "elicense:consent"], [hall, elicense],
        )  # fmt: skip
        if "federation_key" not in where:
            from zwfw.services.identity.trust import TrustIn, put_issuer

            key = keys.client_jwk("certification-issuer-1")
            with identity_instance(config) as (svc, db):
                entry = TrustIn(issuer=FEDERATION_TEST_ISSUER, jwks=keys.public_jwks(key))
                put_issuer(db, svc.settings, entry, actor=DEPLOY_ACTOR)
            self.material.record(where, "federation_key", key.as_dict(private=True))
        city = province.spec.city
        for index, label in enumerate(("applicant", "other", "lockout"), start=1):
            self._person(
                config, where, label, f"{label}-{region}", f"测试{label}",
                str(build_resident_id(city[:4] + "04", date(1990, 3, index), 100 + index)),
            )  # fmt: skip

    def _licences(self, province: ProvincePlan) -> None:
        region = province.region
        where = self.material.section("provinces", region)
        licences = where.setdefault("licences", {})
        holders = [
            ("applicant", where["persons"]["applicant"]),
            ("other", where["persons"]["other"]),
            ("citizen", self.material.section("national")["persons"]["citizen"]),
        ]
        labels = [label for label, _ in holders] + [TEST_ISSUER_LICENCE]
        if "licence_type" in where and all(label in licences for label in labels):
            return
        token = client_token(self.ops(province), province.url("identity"),
                             "elicense:issue elicense:admin")  # fmt: skip
        base = province.url("elicense")
        if "licence_type" not in where:
            response = httpx.post(
                base + "/types",
                json={"type_code": LICENCE_TYPE, "name": "营业执照",
                      "defining_authority_name": "国家市场监督管理总局"},
                headers=_bearer(token), timeout=20.0,
            )  # fmt: skip
            _expect(response, 201, f"{region} licence type")
            self.material.record(where, "licence_type", LICENCE_TYPE)
        # The test holder's licence of the certification test issuer comes last.
        seeds = [*holders, (TEST_ISSUER_LICENCE, where["persons"]["applicant"])]
        for serial, (label, person) in enumerate(seeds, start=1):
            if label in licences:
                continue
            body = licence_request(
                province.spec, serial, person["name"], person["id_number"], person["sub"],
                test_issuer=label == TEST_ISSUER_LICENCE,
            )  # fmt: skip
            response = httpx.post(
                base + "/licences", json=body, headers=_bearer(token), timeout=30.0
            )
            _expect(response, 201, f"{region} licence for {label}")
            self.material.record(licences, label, str(response.json()["identifier"]))

    def _catalog(self, province: ProvincePlan) -> None:
        where = self.material.section("provinces", province.region)
        if "catalog_item" in where:
            return
        token = client_token(self.ops(province), province.url("identity"), "hall:catalog:write")
        base = province.url("hall")
        guide = demo_guide(province.spec)
        response = httpx.post(base + "/items", json=guide, headers=_bearer(token), timeout=20.0)
        _expect(response, 201, f"{province.region} catalog item")
        version = response.json()["version"]
        response = httpx.post(
            f"{base}/items/{guide['implementation_code']}/versions/{version}/publish",
            headers=_bearer(token),
            timeout=20.0,
        )
        _expect(response, 200, f"{province.region} publishing the catalog item")
        self.material.record(where, "catalog_item", guide["implementation_code"])

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
            "eseal_admin_token": client(f"ops-{region}", "eseal:admin"),
            "eseal_signer_subject": f"signer-{region}",
            "eseal_signer_token": client(f"signer-{region}", "eseal:sign"),
            "elicense_test_issuer_code": province.spec.test_issuer_code,
            "elicense_test_issuer_signer_token": client(f"signer-{region}", "eseal:sign"),
            "identity_rp_client_id": portal,
            "identity_rp_redirect_uri": redirect,
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
        return {self.env_name(province, name): value for name, value in values.items()}

    def profile(self, province: ProvincePlan) -> dict[str, Any]:
        where = self.material.section("provinces", province.region)
        spec = province.spec
        names = [
            "hall_applicant_token", "hall_other_applicant_token", "hall_staff_token",
            "hub_report_token", "hub_exchange_token", "hub_supervise_token",
            "channel_signing_key", "channel_key_id", "elicense_holder_token",
            "elicense_other_holder_token", "elicense_share_token", "eseal_admin_token",
            "eseal_signer_subject", "eseal_signer_token", "elicense_test_issuer_code",
            "elicense_test_issuer_signer_token", "identity_rp_client_id",
            "identity_rp_redirect_uri", "identity_user", "identity_password",
            "identity_lockout_user", "identity_lockout_password", "identity_client_id",
            "identity_client_key", "federation_issuer", "federation_issuer_key",
        ]  # fmt: skip
        if len(self.plan.provinces) > 1:
            names += [
                "xprov_citizen_token", "xprov_issuer_region", "xprov_licence_id",
                "xprov_issuer_elicense_url", "xprov_issuer_holder_token",
            ]  # fmt: skip
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
