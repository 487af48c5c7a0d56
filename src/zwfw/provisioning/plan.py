"""What to provision: one typed plan, read from JSON or YAML (``zwfw provision apply --plan``)
or built in code (the reference platform, the host deployment's certification role).

Every section is optional, so a caller that starts services in stages applies one plan per
stage. Private keys are named by file (``key_file``): the plan carries public halves only, and
the files are made at deploy time, never kept in the repository."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zwfw.services.kit.tokens import TOKEN_EXCHANGE

GRANT_ALIASES = {"token-exchange": TOKEN_EXCHANGE}


class PlanError(ValueError):
    """The plan cannot be read or is not a valid plan (one line)."""


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Operator(_Plan):
    """A private_key_jwt client the provisioning acts as at a service (or an IdP's admin
    API), with the token endpoint it gets its tokens from. Called at an internal address
    (a cluster's service URL), ``assertion_audience`` is the endpoint's public URL that the
    IdP expects its client assertions to name."""

    token_url: str
    client_id: str
    key_file: Path
    assertion_audience: str | None = None


def signing_key_rotation(
    idp_url: str, admin: Operator, ca_file: Path | None = None
) -> dict[str, str]:
    """The target profile's ``operations.rotate_signing_key`` for an IdP whose admin client is
    ``admin``: this installation's ``zwfw identity keys rotate`` through the admin API."""
    # The console script beside this interpreter: the harness runs from the same installation.
    program = Path(sys.executable).with_name("zwfw")
    argv = [str(program), "identity", "keys", "rotate", "--url", idp_url.rstrip("/"),
            "--client-id", admin.client_id, "--key-file", str(admin.key_file)]  # fmt: skip
    if ca_file is not None:
        argv += ["--ca-file", str(ca_file)]
    return {"run": shlex.join(argv)}


class ClientPlan(_Plan):
    """A client to register (``PUT /admin/clients/{client_id}``). A private_key_jwt client
    names its private key file (its public half is what is registered) or gives its public
    keys (``jwks``)."""

    client_id: str
    name: str | None = None
    auth_method: Literal["private_key_jwt", "none"] = "private_key_jwt"
    key_file: Path | None = None
    jwks: dict[str, Any] | None = None
    grant_types: list[str] = ["client_credentials"]
    scopes: list[str] = []
    audiences: list[str] = []
    redirect_uris: list[str] = []
    post_logout_redirect_uris: list[str] = []


class TrustPlan(_Plan):
    """An issuer whose tokens the IdP exchanges (``PUT /admin/trust``): its JWKS URL, or the
    public keys themselves (``jwks``) or a private key file whose public half is trusted."""

    issuer: str
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    key_file: Path | None = None
    max_level: str | None = None


class PersonPlan(_Plan):
    """A natural-person test account (found by login name on a rerun, never made twice)."""

    username: str
    password: str = Field(repr=False)
    name: str
    id_number: str = Field(repr=False)


class RealmPlan(_Plan):
    """One IdP: what to register there through its admin API, as ``admin`` (a provisioning
    client of its settings, scope identity:admin)."""

    name: str
    url: str
    admin: Operator
    clients: list[ClientPlan] = []
    trust: list[TrustPlan] = []
    persons: list[PersonPlan] = []


class ProvinceRegistrationPlan(_Plan):
    """A province in the hub's registry (``POST /provinces``, ``PATCH`` on a change)."""

    region_code: str
    name: str
    endpoints: dict[str, str]
    oauth_client_id: str
    tls_fingerprint: str
    tls_subject: str
    signing_certificate: str


class HubPlan(_Plan):
    url: str
    operator: Operator
    provinces: list[ProvinceRegistrationPlan] = []


class SignerPlan(_Plan):
    subject: str
    name: str


class SealPlan(_Plan):
    """An organisation's seal (``POST /seals``); a valid seal of the organisation with the
    same name and signers is the one made before. Validity starts at the first apply."""

    credit_code: str
    organisation: str
    category: str
    name: str
    signers: list[SignerPlan]
    picture_png: str = Field(repr=False, description="The seal picture, PNG, base64.")
    picture_mm: tuple[int, int] = (42, 42)
    valid_days: int = Field(default=365, ge=1, le=3650)


class EsealPlan(_Plan):
    url: str
    operator: Operator
    seals: list[SealPlan] = []


class LicenceTypePlan(_Plan):
    type_code: str
    name: str
    defining_authority_name: str


class AccountRef(_Plan):
    """A person of a realm of the same plan (or already there): their ``sub`` is looked up."""

    realm: str
    username: str


class HolderPlan(_Plan):
    name: str
    code: str = Field(repr=False)
    code_type: str = "111"
    sub: str | None = None
    account: AccountRef | None = None


class LicencePlan(_Plan):
    """A licence to issue; its identifier follows from type, issuer and serial, so one issued
    before is recognised."""

    label: str
    type_code: str
    issuer_code: str
    licence_number: str
    serial: str
    jurisdiction: str
    valid_from: date | None = None
    holder: HolderPlan


class ElicensePlan(_Plan):
    url: str
    operator: Operator
    types: list[LicenceTypePlan] = []
    licences: list[LicencePlan] = []


class HallPlan(_Plan):
    """Catalog items to create and publish (a published item is left as it is)."""

    url: str
    operator: Operator
    items: list[dict[str, Any]] = []


class ProvisioningPlan(_Plan):
    realms: list[RealmPlan] = []
    hub: HubPlan | None = None
    eseal: list[EsealPlan] = []
    elicense: list[ElicensePlan] = []
    hall: list[HallPlan] = []

    @classmethod
    def load(cls, path: Path) -> ProvisioningPlan:
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            return cls.model_validate(raw)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(plan)"
                raise PlanError(f"plan {path}: {where}: {first['msg']}") from None
            raise PlanError(f"plan {path}: {' '.join(str(exc).split())[:300]}") from None

    def realm(self, name: str) -> RealmPlan:
        for realm in self.realms:
            if realm.name == name:
                return realm
        raise PlanError(f"no realm {name} in the plan")
