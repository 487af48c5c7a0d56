"""Apply a ``ProvisioningPlan`` over HTTP only: the IdPs' admin APIs, the hub's registry, the
e-seal, e-licence and hall services' own APIs, each called as a private_key_jwt client (the
kit's ``ClientCredentials``). Nothing here opens a service's database, so the same code works
from a host, a Kubernetes Job or a test.

Rerunnable: what exists as planned is reported ``unchanged``; a dry run looks everything up
and reports what it would do, changing nothing."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import ECKey

from zwfw.codes import build_licence_id
from zwfw.provisioning.plan import (
    GRANT_ALIASES,
    ClientPlan,
    ElicensePlan,
    EsealPlan,
    HallPlan,
    HolderPlan,
    HubPlan,
    Operator,
    PlanError,
    ProvisioningPlan,
    RealmPlan,
    SealPlan,
    TrustPlan,
)
from zwfw.services.kit.tokens import ClientCredentials, TokenRequestError, load_client_key

ADMIN_SCOPE = "identity:admin"


class ProvisioningError(RuntimeError):
    """A step was refused or could not be done: names what and why (one line)."""


@dataclass(frozen=True)
class Change:
    """One planned object and what applying did to it (or would do, on a dry run)."""

    kind: str  # client, trust, person, province, seal, licence-type, licence, item
    name: str
    where: str
    result: str  # created, updated, unchanged (a dry run: "would create", "would update")
    detail: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.detail.items())
        return f"{self.result:14} {self.kind:12} {self.name} at {self.where} {extra}".rstrip()


@dataclass
class Outcome:
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return any(c.result != "unchanged" for c in self.changes)

    def found(self, kind: str, name: str, key: str) -> str:
        """A detail of a planned object, e.g. a person's ``sub`` or a seal's ``es_id``."""
        for change in self.changes:
            if change.kind == kind and change.name == name and key in change.detail:
                return change.detail[key]
        raise KeyError(f"{kind} {name} has no {key}")

    def as_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "dry_run": self.dry_run,
            "changes": [
                {"kind": c.kind, "name": c.name, "where": c.where, "result": c.result,
                 **({"detail": c.detail} if c.detail else {})}
                for c in self.changes
            ],
        }  # fmt: skip


def public_jwks(key_file: Path) -> dict[str, Any]:
    """The public half of a private key file, as a JWKS."""
    try:
        key = load_client_key(key_file)
    except (OSError, ValueError) as exc:
        raise ProvisioningError(f"cannot read the key {key_file}: {exc}") from None
    return {"keys": [ECKey.import_key(key.as_dict(private=False)).as_dict(private=False)]}


class Provisioner:
    """Applies plans; tokens are cached per operator across calls."""

    def __init__(self, *, dry_run: bool = False, ca_file: Path | None = None) -> None:
        self.dry_run = dry_run
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self.http = httpx.Client(verify=verify, timeout=30.0)
        self._tokens: dict[tuple[str, str, str], ClientCredentials] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Provisioner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- HTTP ----------------------------------------------------------------------------

    def _token(self, operator: Operator, scope: str) -> str:
        cache_key = (operator.token_url, operator.client_id, scope)
        tokens = self._tokens.get(cache_key)
        if tokens is None:
            try:
                key = load_client_key(operator.key_file)
            except (OSError, ValueError) as exc:
                raise ProvisioningError(
                    f"cannot read the key of {operator.client_id} ({operator.key_file}): {exc}"
                ) from None
            tokens = ClientCredentials(
                operator.token_url, operator.client_id, key, scope, http=self.http,
                assertion_audience=operator.assertion_audience,
            )  # fmt: skip
            self._tokens[cache_key] = tokens
        try:
            return tokens()
        except TokenRequestError as exc:
            raise ProvisioningError(f"token of {operator.client_id}: {exc}") from None

    def _call(
        self, operator: Operator, scope: str, method: str, url: str, what: str,
        expect: tuple[int, ...], **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        headers = {"Authorization": f"Bearer {self._token(operator, scope)}"}
        try:
            response = self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ProvisioningError(f"{what}: cannot reach {url}: {exc}") from None
        if response.status_code not in expect:
            try:
                body = response.json()
                reason = str(body.get("detail") or body.get("title") or body)
            except ValueError:
                reason = response.text
            reason = " ".join(reason.split())[:300]
            raise ProvisioningError(f"{what}: HTTP {response.status_code}: {reason}")
        return response

    # --- the plan ------------------------------------------------------------------------

    def apply(self, plan: ProvisioningPlan) -> Outcome:
        """Every section in dependency order: IdPs, hub, seals, licence types and licences,
        catalog items."""
        outcome = Outcome(dry_run=self.dry_run)
        for realm in plan.realms:
            outcome.changes.extend(self._realm(realm))
        if plan.hub is not None:
            outcome.changes.extend(self._hub(plan.hub))
        for eseal in plan.eseal:
            outcome.changes.extend(self._eseal(eseal))
        for elicense in plan.elicense:
            outcome.changes.extend(self._elicense(plan, elicense, outcome))
        for hall in plan.hall:
            outcome.changes.extend(self._hall(hall))
        return outcome

    def _result(self, exists: bool, same: bool) -> str:
        if exists and same:
            return "unchanged"
        verb = "update" if exists else "create"
        return f"would {verb}" if self.dry_run else f"{verb}d"

    # --- identity ------------------------------------------------------------------------

    def _realm(self, realm: RealmPlan) -> Iterator[Change]:
        for client in realm.clients:
            yield self._client(realm, client)
        for entry in realm.trust:
            yield self._trust(realm, entry)
        for person in realm.persons:
            yield self._person(realm, person)

    def _admin(
        self, realm: RealmPlan, method: str, path: str, what: str, expect: tuple[int, ...],
        **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        return self._call(realm.admin, ADMIN_SCOPE, method, realm.url.rstrip("/") + path,
                          f"{what} at {realm.name}", expect, **kwargs)  # fmt: skip

    def _client(self, realm: RealmPlan, client: ClientPlan) -> Change:
        spec: dict[str, Any] = {
            "name": client.name or client.client_id,
            "auth_method": client.auth_method,
            "grant_types": [GRANT_ALIASES.get(g, g) for g in client.grant_types],
            "scopes": client.scopes,
            "audiences": client.audiences,
            "redirect_uris": client.redirect_uris,
            "post_logout_redirect_uris": client.post_logout_redirect_uris,
        }
        if client.auth_method == "private_key_jwt":
            if client.key_file is not None:
                spec["jwks"] = public_jwks(client.key_file)
            elif client.jwks is not None:
                spec["jwks"] = client.jwks
            else:
                raise PlanError(f"client {client.client_id}: private_key_jwt needs its keys")
        what = f"client {client.client_id}"
        if self.dry_run:
            found = self._admin(realm, "GET", f"/admin/clients/{client.client_id}", what,
                                (200, 404))  # fmt: skip
            exists = found.status_code == 200
            same = exists and all(
                _same(found.json().get(k), v) for k, v in spec.items() if k != "jwks"
            ) and _same_jwks(found.json().get("jwks"), spec.get("jwks"))  # fmt: skip
            result = self._result(exists, same)
        else:
            answer = self._admin(realm, "PUT", f"/admin/clients/{client.client_id}", what,
                                 (200, 201), json=spec)  # fmt: skip
            result = str(answer.json()["result"])
        return Change("client", client.client_id, realm.name, result)

    def _trust(self, realm: RealmPlan, entry: TrustPlan) -> Change:
        body: dict[str, Any] = {"issuer": entry.issuer}
        if entry.jwks_uri is not None:
            body["jwks_uri"] = entry.jwks_uri
        if entry.jwks is not None:
            body["jwks"] = entry.jwks
        if entry.key_file is not None:
            body["jwks"] = public_jwks(entry.key_file)
        if entry.max_level is not None:
            body["max_level"] = entry.max_level
        what = f"trust in {entry.issuer}"
        if self.dry_run:
            listed = self._admin(realm, "GET", "/admin/trust", what, (200,)).json()
            found = next((e for e in listed if e.get("issuer") == entry.issuer), None)
            same = found is not None and all(
                _same_jwks(found.get(k), v) if k == "jwks" else _same(found.get(k), v)
                for k, v in body.items()
            )
            result = self._result(found is not None, same)
        else:
            answer = self._admin(realm, "PUT", "/admin/trust", what, (200, 201), json=body)
            result = str(answer.json()["result"])
        return Change("trust", entry.issuer, realm.name, result)

    def _person(self, realm: RealmPlan, person: Any) -> Change:
        what = f"account {person.username}"
        found = self._admin(realm, "GET", "/admin/accounts", what, (200,),
                            params={"username": person.username}).json()  # fmt: skip
        if found:
            return Change("person", person.username, realm.name, "unchanged",
                          {"sub": str(found[0]["sub"])})  # fmt: skip
        if self.dry_run:
            return Change("person", person.username, realm.name, "would create")
        body = {"kind": "person", "username": person.username, "password": person.password,
                "name": person.name, "id_number": person.id_number}  # fmt: skip
        made = self._admin(realm, "POST", "/admin/accounts", what, (201,), json=body).json()
        return Change("person", person.username, realm.name, "created", {"sub": str(made["sub"])})

    # --- hub -----------------------------------------------------------------------------

    def _hub(self, hub: HubPlan) -> Iterator[Change]:
        scope = "hub:provinces:write hub:provinces:read"
        base = hub.url.rstrip("/") + "/provinces"
        for province in hub.provinces:
            what = f"province {province.region_code} at the hub"
            wanted = province.model_dump()
            found = self._call(hub.operator, scope, "GET", f"{base}/{province.region_code}",
                               what, (200, 404))  # fmt: skip
            if found.status_code == 404:
                if not self.dry_run:
                    self._call(hub.operator, scope, "POST", base, what, (201,), json=wanted)
                yield Change("province", province.region_code, "hub", self._result(False, False))
                continue
            current = found.json()
            changes = {
                k: v for k, v in wanted.items()
                if k != "region_code" and not _same(_pem(current.get(k)), _pem(v))
            }  # fmt: skip
            if changes and not self.dry_run:
                self._call(hub.operator, scope, "PATCH", f"{base}/{province.region_code}", what,
                           (200,), json=changes)  # fmt: skip
            yield Change("province", province.region_code, "hub",
                         self._result(True, not changes),
                         {"fields": ",".join(sorted(changes))} if changes else {})  # fmt: skip

    # --- e-seal --------------------------------------------------------------------------

    def _eseal(self, eseal: EsealPlan) -> Iterator[Change]:
        base = eseal.url.rstrip("/")
        for seal in eseal.seals:
            what = f"seal {seal.name}"
            mine = {"credit_code": seal.credit_code}
            listed = self._call(eseal.operator, "eseal:read", "GET", base + "/seals", what,
                                (200,), params=mine).json()  # fmt: skip
            signers = sorted(s.subject for s in seal.signers)
            # A seal of the organisation with another signer list (an issuer's seal that once
            # had a general signing client) is not this one: a new seal is made.
            found = next(
                (s for s in listed
                 if s["name"] == seal.name and s["status"]["status"] == "valid"
                 and sorted(x["subject"] for x in s["signers"]) == signers),
                None,
            )  # fmt: skip
            if found is not None:
                yield Change("seal", seal.credit_code, base, "unchanged",
                             {"es_id": str(found["es_id"])})  # fmt: skip
                continue
            if self.dry_run:
                yield Change("seal", seal.credit_code, base, "would create")
                continue
            made = self._call(eseal.operator, "eseal:admin", "POST", base + "/seals", what,
                              (201,), json=seal_body(seal)).json()  # fmt: skip
            yield Change("seal", seal.credit_code, base, "created", {"es_id": str(made["es_id"])})

    # --- e-licence -----------------------------------------------------------------------

    def _elicense(
        self, plan: ProvisioningPlan, elicense: ElicensePlan, so_far: Outcome
    ) -> Iterator[Change]:
        base = elicense.url.rstrip("/")
        scope = "elicense:issue elicense:admin"
        for kind in elicense.types:
            what = f"licence type {kind.type_code}"
            found = self._call(elicense.operator, scope, "GET", f"{base}/types/{kind.type_code}",
                               what, (200, 404))  # fmt: skip
            if found.status_code == 404 and not self.dry_run:
                self._call(elicense.operator, scope, "POST", base + "/types", what, (201,),
                           json=kind.model_dump())  # fmt: skip
            yield Change("licence-type", kind.type_code, base,
                         self._result(found.status_code == 200, True))  # fmt: skip
        for licence in elicense.licences:
            identifier = str(
                build_licence_id(licence.type_code, licence.issuer_code, licence.serial, 1)
            )
            what = f"licence {licence.label} ({identifier})"
            found = self._call(elicense.operator, scope, "GET", f"{base}/licences/{identifier}",
                               what, (200, 404))  # fmt: skip
            detail = {"identifier": identifier}
            if found.status_code == 200:
                yield Change("licence", licence.label, base, "unchanged", detail)
                continue
            if self.dry_run:
                yield Change("licence", licence.label, base, "would create", detail)
                continue
            body = {
                **licence.model_dump(mode="json", exclude={"label", "holder"}, exclude_none=True),
                "holder": self._holder(plan, licence.holder, so_far),
            }
            made = self._call(elicense.operator, scope, "POST", base + "/licences", what,
                              (201,), json=body).json()  # fmt: skip
            yield Change("licence", licence.label, base, "created",
                         {"identifier": str(made["identifier"])})  # fmt: skip

    def _holder(
        self, plan: ProvisioningPlan, holder: HolderPlan, so_far: Outcome
    ) -> dict[str, str]:
        body = {"name": holder.name, "code": holder.code, "code_type": holder.code_type}
        if holder.sub is not None:
            body["sub"] = holder.sub
        elif holder.account is not None:
            ref = holder.account
            try:
                body["sub"] = so_far.found("person", ref.username, "sub")
            except KeyError:
                realm = plan.realm(ref.realm)
                found = self._admin(realm, "GET", "/admin/accounts", f"account {ref.username}",
                                    (200,), params={"username": ref.username}).json()  # fmt: skip
                if not found:
                    raise ProvisioningError(f"no account {ref.username} at {ref.realm}") from None
                body["sub"] = str(found[0]["sub"])
        return body

    # --- hall ----------------------------------------------------------------------------

    def _hall(self, hall: HallPlan) -> Iterator[Change]:
        base = hall.url.rstrip("/") + "/items"
        scope = "hall:catalog:write"
        for item in hall.items:
            code = str(item["implementation_code"])
            what = f"catalog item {code}"
            published = self._call(hall.operator, scope, "GET", f"{base}/{code}", what,
                                   (200, 404))  # fmt: skip
            if published.status_code == 200 or self.dry_run:
                yield Change("item", code, hall.url, self._result(published.status_code == 200,
                                                                  True))  # fmt: skip
                continue
            made = self._call(hall.operator, scope, "POST", base, what, (201, 409), json=item)
            if made.status_code == 409:
                # A draft left by an interrupted run: published as it is.
                made = self._call(hall.operator, scope, "GET", f"{base}/{code}/draft", what,
                                  (200,))  # fmt: skip
            version = made.json()["version"]
            self._call(hall.operator, scope, "POST", f"{base}/{code}/versions/{version}/publish",
                       f"publishing {what}", (200,))  # fmt: skip
            yield Change("item", code, hall.url, "created", {"version": str(version)})


def seal_body(seal: SealPlan) -> dict[str, Any]:
    """The ``POST /seals`` body of a planned seal, valid from a few minutes ago."""
    now = datetime.now(UTC)
    width, height = seal.picture_mm
    return {
        "credit_code": seal.credit_code,
        "organisation": seal.organisation,
        "category": seal.category,
        "name": seal.name,
        "signers": [s.model_dump() for s in seal.signers],
        "picture": {"png": seal.picture_png, "width_mm": width, "height_mm": height},
        "valid_start": (now - timedelta(minutes=5)).isoformat(),
        "valid_end": (now + timedelta(days=seal.valid_days)).isoformat(),
    }


def picture_text(png: bytes) -> str:
    return base64.b64encode(png).decode()


def _pem(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(found, list) and isinstance(wanted, list):
        return sorted(map(str, found)) == sorted(map(str, wanted))
    return bool(found == wanted)


def _same_jwks(found: Any, wanted: Any) -> bool:
    def keys(jwks: Any) -> list[str]:
        return sorted(json.dumps(k, sort_keys=True) for k in (jwks or {}).get("keys", []))

    return keys(found) == keys(wanted)


def apply_plan(plan: ProvisioningPlan, *, dry_run: bool = False,
               ca_file: Path | None = None) -> Outcome:  # fmt: skip
    with Provisioner(dry_run=dry_run, ca_file=ca_file) as provisioner:
        return provisioner.apply(plan)
