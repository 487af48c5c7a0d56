"""``zwfw.provisioning`` against a running national side (the IdP and the hub as ``zwfw serve``
processes): a plan is applied through the admin APIs only, a rerun changes nothing and says
so, a dry run changes nothing, changes are applied in place, and ``zwfw provision apply``
gives one-line errors with distinct exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from zwfw.provisioning import Provisioner, ProvisioningError, ProvisioningPlan, apply_plan
from zwfw.provisioning.plan import (
    ClientPlan,
    HubPlan,
    Operator,
    PersonPlan,
    ProvinceRegistrationPlan,
    RealmPlan,
    TrustPlan,
)
from zwfw.reference import keys
from zwfw.reference.national import NATIONAL_OPS, NationalSide

ZWFW = str(Path(sys.executable).with_name("zwfw"))


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NationalSide]:
    with NationalSide(tmp_path_factory.mktemp("national")) as side:
        yield side


def _realm(national: NationalSide, **plan: object) -> RealmPlan:
    identity = national.national["identity"]
    return RealmPlan(name="national", url=identity.url,
                     admin=national.provisioning_client(identity), **plan)  # type: ignore[arg-type]  # fmt: skip


def _ops(national: NationalSide) -> Operator:
    return Operator(token_url=national.url("national", "identity") + "/token",
                    client_id=NATIONAL_OPS,
                    key_file=national.national_clients[NATIONAL_OPS].key_file)  # fmt: skip


def _registration(national: NationalSide, region: str, name: str) -> ProvinceRegistrationPlan:
    channel = national.issue_channel_identity(f"{region} channel")
    tls = keys.tls_client_certificate(f"platform.{region}.zwfw.local")
    base = f"https://{region}.province.test"
    return ProvinceRegistrationPlan(
        region_code=region, name=name,
        endpoints={s: f"{base}/{s}" for s in ("identity", "hall", "elicense", "eseal")}
        | {"discovery": f"{base}/hall/.well-known/zwfw"},
        oauth_client_id=f"province-{region}", tls_fingerprint=tls.fingerprint,
        tls_subject=tls.subject, signing_certificate=channel.certificate.to_pem().decode(),
    )  # fmt: skip


def _results(plan: ProvisioningPlan, *, dry_run: bool = False) -> list[tuple[str, str, str]]:
    outcome = apply_plan(plan, dry_run=dry_run)
    return [(c.kind, c.name, c.result) for c in outcome.changes]


def test_a_plan_is_applied_once_and_a_rerun_changes_nothing(
    national: NationalSide, tmp_path: Path
) -> None:
    key = keys.client_jwk("district-ops-1")
    key_file = keys.write_private(tmp_path / "district.jwk", keys.private_jwk_text(key))
    plan = ProvisioningPlan(
        realms=[_realm(
            national,
            clients=[
                ClientPlan(client_id="district-ops", key_file=key_file,
                           scopes=["hub:provinces:read"],
                           audiences=[national.url("national", "hub")]),
                ClientPlan(client_id="district-portal", auth_method="none",
                           grant_types=["authorization_code"],
                           redirect_uris=["https://portal.district.test/callback"],
                           scopes=["openid"]),
            ],
            trust=[TrustPlan(issuer="https://idp.partner.test",
                             jwks_uri="https://idp.partner.test/jwks")],
            persons=[PersonPlan(username="resident-1", password=keys.password(), name="测试居民",
                                id_number="110101199003070011")],
        )],
        hub=HubPlan(url=national.url("national", "hub"), operator=_ops(national),
                    provinces=[_registration(national, "350000", "福建省")]),
    )  # fmt: skip
    first = apply_plan(plan)
    assert [(c.kind, c.name, c.result) for c in first.changes] == [
        ("client", "district-ops", "created"),
        ("client", "district-portal", "created"),
        ("trust", "https://idp.partner.test", "created"),
        ("person", "resident-1", "created"),
        ("province", "350000", "created"),
    ]
    assert first.changed
    again = apply_plan(plan)
    assert {c.result for c in again.changes} == {"unchanged"}
    assert not again.changed
    # The account found on the rerun is the one made the first time.
    assert again.found("person", "resident-1", "sub") == first.found("person", "resident-1", "sub")
    # What was registered works: the new client gets a token for the hub's registry.
    token = national.client_token(
        national.national_clients[NATIONAL_OPS].__class__("district-ops", key, key_file),
        national.url("national", "identity") + "/token", "hub:provinces:read",
    )  # fmt: skip
    listed = httpx.get(national.url("national", "hub") + "/provinces/350000",
                       headers={"Authorization": f"Bearer {token}"}, timeout=10.0)  # fmt: skip
    assert listed.json()["name"] == "福建省"


def test_a_dry_run_changes_nothing_and_a_change_is_applied_in_place(
    national: NationalSide, tmp_path: Path
) -> None:
    key_file = keys.write_private(
        tmp_path / "k.jwk", keys.private_jwk_text(keys.client_jwk("auditor-1"))
    )
    client = ClientPlan(client_id="auditor", key_file=key_file, scopes=["hub:supervise"])
    registration = _registration(national, "360000", "江西省")
    plan = ProvisioningPlan(
        realms=[_realm(national, clients=[client])],
        hub=HubPlan(url=national.url("national", "hub"), operator=_ops(national),
                    provinces=[registration]),
    )  # fmt: skip
    expected = [("client", "auditor", "would create"), ("province", "360000", "would create")]
    assert _results(plan, dry_run=True) == expected
    assert _results(plan, dry_run=True) == expected  # nothing was made by the first
    assert _results(plan) == [("client", "auditor", "created"), ("province", "360000", "created")]
    assert {r for _, _, r in _results(plan, dry_run=True)} == {"unchanged"}
    narrower = client.model_copy(update={"scopes": ["hub:provinces:read"]})
    changed = ProvisioningPlan(
        realms=[_realm(national, clients=[narrower])],
        hub=HubPlan(url=national.url("national", "hub"), operator=_ops(national),
                    provinces=[registration.model_copy(update={"name": "江西"})]),
    )  # fmt: skip
    assert _results(changed, dry_run=True) == [
        ("client", "auditor", "would update"), ("province", "360000", "would update"),
    ]  # fmt: skip
    outcome = apply_plan(changed)
    assert [c.result for c in outcome.changes] == ["updated", "updated"]
    assert outcome.changes[1].detail == {"fields": "name"}
    assert {r for _, _, r in _results(changed)} == {"unchanged"}


def test_a_caller_without_a_registered_key_is_refused(
    national: NationalSide, tmp_path: Path
) -> None:
    stranger = keys.write_private(
        tmp_path / "stranger.jwk", keys.private_jwk_text(keys.client_jwk("provisioning-9"))
    )
    identity = national.national["identity"]
    admin = Operator(token_url=identity.url + "/token", client_id="provisioning",
                     key_file=stranger)  # fmt: skip
    plan = ProvisioningPlan(realms=[RealmPlan(
        name="national", url=identity.url, admin=admin,
        clients=[ClientPlan(client_id="nope", auth_method="none",
                            grant_types=["authorization_code"],
                            redirect_uris=["https://x.test/cb"])],
    )])  # fmt: skip
    with (
        Provisioner() as provisioner,
        pytest.raises(ProvisioningError, match="token of provisioning"),
    ):
        provisioner.apply(plan)


def test_an_idp_called_at_another_address_takes_assertions_naming_its_public_endpoint(
    national: NationalSide,
) -> None:
    """As a cluster's provisioning Job calls the IdP at its service URL: the assertion names
    the public token endpoint (assertion_audience), which the IdP accepts; naming the address
    called is refused."""
    identity = national.national["identity"]
    public = identity.url
    internal = public.replace("127.0.0.1", "localhost")
    admin = national.provisioning_client(identity)
    trust = [TrustPlan(issuer="https://federation.internal.test", jwks_uri="https://x.test/jwks")]

    def plan(**operator: str) -> ProvisioningPlan:
        inside = admin.model_copy(update={"token_url": f"{internal}/token", **operator})
        return ProvisioningPlan(
            realms=[RealmPlan(name="national", url=internal, admin=inside, trust=trust)]
        )

    outcome = apply_plan(plan(assertion_audience=f"{public}/token"), dry_run=True)
    assert [(c.kind, c.result) for c in outcome.changes] == [("trust", "would create")]
    with pytest.raises(ProvisioningError, match="token of provisioning"):
        apply_plan(plan(), dry_run=True)


# --- zwfw provision apply ------------------------------------------------------------------


def _zwfw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZWFW, *args], capture_output=True, text=True, timeout=120, check=False)


def test_the_command_applies_a_plan_file_and_reruns_change_nothing(
    national: NationalSide, tmp_path: Path
) -> None:
    identity = national.national["identity"]
    admin = national.provisioning_client(identity)
    plan = {
        "realms": [{
            "name": "national", "url": identity.url,
            "admin": {"token_url": admin.token_url, "client_id": admin.client_id,
                      "key_file": str(admin.key_file)},
            "clients": [{"client_id": "county-portal", "auth_method": "none",
                         "grant_types": ["authorization_code"],
                         "redirect_uris": ["https://county.test/callback"]}],
        }],
    }  # fmt: skip
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    dry = _zwfw("provision", "apply", "--plan", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0].split()[:3] == ["would", "create", "client"]
    first = _zwfw("provision", "apply", "--plan", str(path))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1]) == {
        "changed": True, "dry_run": False, "summary": "1 of 1 objects changed",
    }  # fmt: skip
    again = _zwfw("provision", "apply", "--plan", str(path))
    assert again.stdout.splitlines()[0].startswith("unchanged")
    assert json.loads(again.stdout.splitlines()[-1])["summary"] == "nothing to change"


@pytest.mark.parametrize(
    ("content", "reason"),
    [("realms: [{name: x}]", "realms.0.url: Field required"), ("{not yaml: [", "plan ")],
)
def test_an_invalid_plan_is_a_usage_error_in_one_line(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(content)
    result = _zwfw("provision", "apply", "--plan", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("zwfw provision: plan ")
    assert reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_refusal_exits_1_with_the_service_reason(national: NationalSide, tmp_path: Path) -> None:
    identity = national.national["identity"]
    admin = national.provisioning_client(identity)
    plan = {"realms": [{
        "name": "national", "url": identity.url,
        "admin": {"token_url": admin.token_url, "client_id": admin.client_id,
                  "key_file": str(admin.key_file)},
        # A public client without a redirect URI: the IdP refuses it.
        "clients": [{"client_id": "broken", "auth_method": "none",
                     "grant_types": ["authorization_code"]}],
    }]}  # fmt: skip
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    result = _zwfw("provision", "apply", "--plan", str(path))
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("zwfw provision: client broken at national: HTTP 400")
    assert len(result.stderr.strip().splitlines()) == 1
