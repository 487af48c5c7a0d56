"""Provisioning in the cluster: per platform a Job runs ``zwfw provision apply`` with a plan
rendered from the stack configuration, against the services' in-cluster URLs, with a key from
secret config whose public half the platform's IdP registers as its provisioning client."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from joserfc.jwk import ECKey
from zwfw_infra import labels
from zwfw_infra.config import ConfigError
from zwfw_infra.render import Rendered, deploy_time_values, render, stack_values

from zwfw.crypto.sm2 import load_private_key
from zwfw.provisioning import ProvisioningPlan
from zwfw.services.kit.registry import resolve_service
from zwfw.services.kit.settings import load_settings
from zwfw.services.kit.tokens import TOKEN_EXCHANGE


def _provisioning_jobs(rendered: Rendered) -> list[dict[str, Any]]:
    return [
        job
        for job in rendered.of_kind("Job")
        if job["metadata"]["labels"].get(labels.COMPONENT) == labels.PROVISIONING_COMPONENT
    ]


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def _plan(rendered: Rendered, namespace: str, tmp_path: Path) -> ProvisioningPlan:
    text = rendered.find("ConfigMap", "provisioning-plan", namespace)["data"]["plan.json"]
    path = tmp_path / f"{namespace}-plan.json"
    path.write_text(text, encoding="utf-8")
    return ProvisioningPlan.load(path)


def test_each_platform_gets_one_provisioning_job_after_its_services(stack: Rendered) -> None:
    platforms = stack.outputs["platforms"]
    jobs = _provisioning_jobs(stack)
    assert sorted(j["metadata"]["namespace"] for j in jobs) == sorted(
        p["namespace"] for p in platforms.values()
    )
    for job in jobs:
        ns = job["metadata"]["namespace"]
        outputs = next(p for p in platforms.values() if p["namespace"] == ns)["provisioning"]
        assert job["metadata"]["name"] == outputs["job"]
        pod = _pod(job)
        (container,) = pod["containers"]
        assert container["args"] == [
            "provision", "apply", "--plan", "/plan/plan.json",
            "--ca-file", "/etc/zwfw/ca/ca.crt",
        ]  # fmt: skip
        # Bounded: a stuck run ends, a refused one is retried a few times, then fails.
        assert 0 < job["spec"]["activeDeadlineSeconds"] <= 1800
        assert 0 < job["spec"]["backoffLimit"] <= 6
        assert pod["restartPolicy"] == "Never"
        # No Kubernetes API: no token, in its own account that has none either.
        assert pod["automountServiceAccountToken"] is False
        account = stack.find("ServiceAccount", pod["serviceAccountName"], ns)
        assert account["automountServiceAccountToken"] is False
        # The same image and restricted pod security as the services it provisions.
        identity = stack.find("Deployment", "identity", ns)
        served = identity["spec"]["template"]["spec"]
        assert container["image"] == served["containers"][0]["image"]
        assert pod["securityContext"] == served["securityContext"]
        assert container["securityContext"] == served["containers"][0]["securityContext"]
        assert container["resources"]["limits"]
        assert container["resources"]["requests"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["plan"]["configMap"]["name"] == outputs["plan_config_map"]
        assert volumes["keys"]["secret"]["secretName"] == outputs["keys_secret"]
        assert volumes["ca"]["secret"]["secretName"] == "zwfw-internal-ca-bundle"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["plan"] == "/plan"
        assert mounts["ca"] == "/etc/zwfw/ca"


def test_the_plan_is_a_valid_plan_against_the_in_cluster_services(
    stack: Rendered, tmp_path: Path
) -> None:
    platforms = stack.outputs["platforms"]
    national = platforms.get("national")
    for name, platform in platforms.items():
        ns = platform["namespace"]
        plan = _plan(stack, ns, tmp_path)
        identity = platform["services"]["identity"]
        (realm,) = plan.realms
        assert realm.name == name
        assert realm.url == identity["internal_url"]
        assert realm.admin.client_id == "provisioning"
        assert realm.admin.token_url == f"{identity['internal_url']}/token"
        # The IdP accepts assertions naming its public token endpoint only.
        settings_text = stack.find("ConfigMap", "identity-settings", ns)["data"]["settings.yaml"]
        settings_file = tmp_path / f"{ns}-identity.yaml"
        settings_file.write_text(settings_text, encoding="utf-8")
        public = identity["public_url"]
        assert realm.admin.assertion_audience == f"{public}/token"
        assert public in settings_text
        # The key file is where the Job mounts the Secret's key.
        job = next(j for j in _provisioning_jobs(stack) if j["metadata"]["namespace"] == ns)
        mounts = {m["name"]: m["mountPath"] for m in _pod(job)["containers"][0]["volumeMounts"]}
        keys = stack.find("Secret", "provisioning-keys", ns)["stringData"]
        assert {str(realm.admin.key_file)} == {f"{mounts['keys']}/{key}" for key in keys}
        trusted = [(t.issuer, t.jwks_uri) for t in realm.trust]
        if platform["kind"] == "province" and national is not None:
            national_idp = national["services"]["identity"]
            assert trusted == [(national_idp["public_url"], f"{national_idp['internal_url']}/jwks")]
        elif platform["kind"] == "province":
            # The national side elsewhere: its IdP at its public URL.
            idp = stack_values(stack.stack)["externalNational"]["identityUrl"]
            assert trusted == [(idp, f"{idp}/jwks")]
        else:
            assert trusted == []
        # The hub registers the stack's provinces (test_the_hub_registers_...).
        assert (plan.hub is not None) == (platform["kind"] == "national")
        # The issuer seal where the province names its issuer (the demo's provinces).
        issuer = next(
            (p.get("issuer") for p in stack_values(stack.stack).get("provinces", [])
             if p["name"] == name),
            None,
        )  # fmt: skip
        assert len(plan.eseal) == (1 if issuer else 0)
        assert not plan.elicense
        assert not plan.hall


def test_the_idp_registers_the_public_half_of_the_jobs_key(
    stack: Rendered, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for platform in stack.outputs["platforms"].values():
        ns = platform["namespace"]
        secret = stack.find("Secret", "provisioning-keys", ns)
        (key_name,) = secret["stringData"]
        # From secret config, never plain text: written redacted by make k8s-manifests.
        assert ("Secret", ns, "provisioning-keys", key_name) in stack.secret_paths
        private = ECKey.import_key(json.loads(secret["stringData"][key_name]))
        assert private.is_private
        assert private.kid
        settings_file = tmp_path / f"{ns}-identity.yaml"
        settings_file.write_text(
            stack.find("ConfigMap", "identity-settings", ns)["data"]["settings.yaml"],
            encoding="utf-8",
        )
        env = stack.find("Secret", "identity-secrets", ns)["stringData"]
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            settings = load_settings(resolve_service("identity").settings_class, settings_file)
        (client,) = settings.provisioning_clients
        assert client.client_id == "provisioning"
        registered = client.model_dump(mode="json")["jwks"]["keys"]
        assert registered == [private.as_dict(private=False)]
        assert "d" not in registered[0]


def test_a_provisioning_key_that_is_not_an_ec_private_key_is_refused_in_one_line() -> None:
    values = stack_values("province-example")
    _, secrets = deploy_time_values(values)
    secrets = copy.deepcopy(secrets)
    name = values["provinces"][0]["name"]
    secrets[name]["identity"]["provisioning_key"] = "0123456789abcdef0123456789abcdef"
    with pytest.raises(ConfigError) as refused:
        render("province-example", values=values, secret_values=secrets)
    message = str(refused.value)
    assert message.startswith(f"secret zwfw:secrets.{name}.identity.provisioning_key: ")
    assert "\n" not in message
    assert "0123456789abcdef" not in message


def test_the_services_clients_are_registered_by_the_public_halves_of_their_own_keys(
    stack: Rendered, tmp_path: Path
) -> None:
    """As the host target: a province's IdP registers its hall's client (elicense:share at its
    library), its library's (eseal:sign) and the stack's national hub's; each key is in the
    owning service's own Secret, mounted as a file, and the plan holds public halves only."""
    platforms = stack.outputs["platforms"]
    national = platforms.get("national")

    def service_key(platform: dict[str, Any], service: str) -> ECKey:
        ns = platform["namespace"]
        secret_name = platform["services"][service]["secret"]
        secret = stack.find("Secret", secret_name, ns)
        assert ("Secret", ns, secret_name, "client.jwk") in stack.secret_paths
        pod = stack.find("Deployment", service, ns)["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "client"]
        assert volume["secret"]["secretName"] == secret_name
        assert {"key": "client.jwk", "path": "client.jwk"} in volume["secret"]["items"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["client"] == "/etc/zwfw/client"
        return ECKey.import_key(json.loads(secret["stringData"]["client.jwk"]))

    provinces = {n: p for n, p in platforms.items() if p["kind"] == "province"}
    assert provinces
    for name, platform in provinces.items():
        ns = platform["namespace"]
        region = platform["region_code"]
        services = platform["services"]
        plan = _plan(stack, ns, tmp_path)
        (realm,) = plan.realms
        clients = {c.client_id: c for c in realm.clients}
        expected = {
            f"hall-{region}": (platform, "hall", ["elicense:share"], "elicense"),
            f"elicense-{region}": (platform, "elicense", ["eseal:sign"], "eseal"),
        }
        if national is not None:
            expected["national-hub"] = (
                national,
                "hub",
                ["elicense:share", "elicense:consent"],
                "elicense",
            )
        if plan.eseal:
            expected["provisioning-seals"] = (None, "", ["eseal:admin", "eseal:read"], "eseal")
        assert set(clients) == set(expected), name
        for client_id, (owner, service, scopes, audience) in expected.items():
            client = clients[client_id]
            private = (
                service_key(owner, service)
                if owner is not None
                # The Job's own client at its e-seal service: its own key.
                else ECKey.import_key(
                    json.loads(
                        stack.find("Secret", "provisioning-keys", ns)["stringData"]["admin.jwk"]
                    )
                )
            )
            assert client.auth_method == "private_key_jwt"
            assert client.key_file is None
            assert client.jwks == {"keys": [private.as_dict(private=False)]}
            assert client.scopes == scopes
            assert client.audiences == [services[audience]["public_url"]]
        if national is not None:
            # The hub exchanges citizens' national tokens for their consent here.
            assert TOKEN_EXCHANGE in clients["national-hub"].grant_types
        text = stack.find("ConfigMap", "provisioning-plan", ns)["data"]["plan.json"]
        assert '"d"' not in text
        # The Job acts with its own key only, never with the services'.
        assert list(stack.find("Secret", "provisioning-keys", ns)["stringData"]) == ["admin.jwk"]
    if national is not None:
        # The national IdP: each hall as its province's client for the hub, by the same key.
        (realm,) = _plan(stack, national["namespace"], tmp_path).realms
        hub = national["services"]["hub"]["public_url"]
        registered = {c.client_id: c for c in realm.clients}
        assert set(registered) == {
            *(f"province-{p['region_code']}" for p in provinces.values()),
            # The Job's own client at the hub's registry (its key).
            "provisioning-hub",
        }
        for province in provinces.values():
            client = registered[f"province-{province['region_code']}"]
            private = service_key(province, "hall")
            assert client.jwks == {"keys": [private.as_dict(private=False)]}
            assert client.scopes == ["hub:report", "hub:exchange"]
            assert client.audiences == [hub]


def test_a_province_with_an_issuer_gets_its_licence_seal_signed_by_its_library_only(
    demo: Rendered, tmp_path: Path
) -> None:
    """As the host target's platform stage: the issuer's 电子证照专用章 at the province's e-seal
    service, its one signer the library's client, which the e-seal service is told of."""
    values = stack_values("demo")
    for province in values["provinces"]:
        platform = demo.outputs["platforms"][province["name"]]
        ns, region = platform["namespace"], platform["region_code"]
        services = platform["services"]
        plan = _plan(demo, ns, tmp_path)
        (eseal,) = plan.eseal
        assert eseal.url == services["eseal"]["internal_url"]
        operator = eseal.operator
        assert operator.client_id == "provisioning-seals"
        assert operator.token_url == f"{services['identity']['internal_url']}/token"
        assert operator.assertion_audience == f"{services['identity']['public_url']}/token"
        assert operator.key_file == plan.realms[0].admin.key_file
        (seal,) = eseal.seals
        assert seal.credit_code == province["issuer"]["creditCode"]
        assert seal.organisation == province["issuer"]["name"]
        assert seal.category == "licence"
        assert [s.subject for s in seal.signers] == [f"elicense-{region}"]
        assert seal.picture_png
        settings = yaml.safe_load(
            demo.find("ConfigMap", "eseal-settings", ns)["data"]["settings.yaml"]
        )
        assert settings["licence_client"] == f"elicense-{region}"


def _settings(rendered: Rendered, namespace: str, service: str) -> dict[str, Any]:
    text = rendered.find("ConfigMap", f"{service}-settings", namespace)["data"]["settings.yaml"]
    settings: dict[str, Any] = yaml.safe_load(text)
    return settings


def test_the_services_call_their_idp_inside_the_cluster_with_their_registered_clients(
    stack: Rendered, tmp_path: Path
) -> None:
    """The hall's library client and the library's e-seal client are the clients the Job
    registers (hall-<region>, elicense-<region>), with the key of their own Secret; they call
    the IdP at its service URL and name its public token endpoint in their assertions. The hub
    uses its national-hub client key at the provinces' IdPs."""
    platforms = stack.outputs["platforms"]
    provinces = {n: p for n, p in platforms.items() if p["kind"] == "province"}
    assert provinces
    for platform in provinces.values():
        ns, region = platform["namespace"], platform["region_code"]
        services = platform["services"]
        (realm,) = _plan(stack, ns, tmp_path).realms
        registered = {c.client_id for c in realm.clients}
        idp = services["identity"]
        expected = {
            "token_url": f"{idp['internal_url']}/token",
            "assertion_audience": f"{idp['public_url']}/token",
            "client_key_file": "/etc/zwfw/client/client.jwk",
        }
        library = _settings(stack, ns, "hall")["elicense"]
        assert library["base_url"] == services["elicense"]["internal_url"]
        assert library["trust_url"] == f"{services['eseal']['internal_url']}/trust"
        assert {k: library[k] for k in expected} == expected
        assert library["client_id"] == f"hall-{region}"
        assert library["client_id"] in registered
        sealing = _settings(stack, ns, "elicense")["eseal"]
        assert {k: sealing[k] for k in expected} == expected
        assert sealing["client_id"] == f"elicense-{region}"
        assert sealing["client_id"] in registered
    national = platforms.get("national")
    if national is not None:
        hub = _settings(stack, national["namespace"], "hub")
        assert hub["province_client_id"] == "national-hub"
        assert hub["province_client_key_file"] == "/etc/zwfw/client/client.jwk"


def test_the_hub_registers_the_stacks_provinces_through_its_admin_api(tmp_path: Path) -> None:
    """As the host target's national stage: the national Job registers each province at the
    hub (its public endpoints, its hall's client province-<region>, the intake client
    certificate's fingerprint and subject, its channel signing certificate), as its own client
    provisioning-hub at the national IdP (its key's public half, the registry's scopes), calling
    the hub at its service URL."""
    values = copy.deepcopy(stack_values("demo"))
    additions, secrets = deploy_time_values(values)
    values.update(additions)
    demo = render("demo", values, secret_values=secrets)
    platforms = demo.outputs["platforms"]
    national = platforms["national"]
    ns = national["namespace"]
    plan = _plan(demo, ns, tmp_path)
    assert plan.hub is not None
    hub, idp = national["services"]["hub"], national["services"]["identity"]
    assert plan.hub.url == hub["internal_url"]
    operator = plan.hub.operator
    assert operator.client_id == "provisioning-hub"
    assert operator.token_url == f"{idp['internal_url']}/token"
    assert operator.assertion_audience == f"{idp['public_url']}/token"
    (realm,) = plan.realms
    (ops,) = [c for c in realm.clients if c.client_id == "provisioning-hub"]
    admin = ECKey.import_key(
        json.loads(demo.find("Secret", "provisioning-keys", ns)["stringData"]["admin.jwk"])
    )
    assert ops.jwks == {"keys": [admin.as_dict(private=False)]}
    assert operator.key_file == realm.admin.key_file
    assert ops.scopes == ["hub:provinces:write", "hub:provinces:read"]
    assert ops.audiences == [hub["public_url"]]
    channels = {p["name"]: p["channel"] for p in values["provinces"]}
    provinces = {p["region_code"]: (n, p) for n, p in platforms.items() if p["kind"] == "province"}
    assert {r.region_code for r in plan.hub.provinces} == set(provinces)
    for registration in plan.hub.provinces:
        name, province = provinces[registration.region_code]
        services = province["services"]
        intake = x509.load_pem_x509_certificate(channels[name]["intakeCertificate"].encode())
        assert registration.oauth_client_id == f"province-{registration.region_code}"
        assert registration.tls_fingerprint == intake.fingerprint(hashes.SHA256()).hex()
        assert registration.tls_subject == intake.subject.rfc4514_string()
        assert registration.signing_certificate == channels[name]["signingCertificate"]
        assert registration.endpoints == {
            "discovery": f"{services['hall']['public_url']}/.well-known/zwfw",
            **{s: services[s]["public_url"] for s in ("identity", "hall", "elicense", "eseal")},
        }
    # Public certificates only: no private key in the plan.
    text = demo.find("ConfigMap", "provisioning-plan", ns)["data"]["plan.json"]
    assert "PRIVATE KEY" not in text
    assert '"d"' not in text


def test_a_channel_certificate_that_is_not_one_is_refused_in_one_line() -> None:
    values = copy.deepcopy(stack_values("demo"))
    additions, _ = deploy_time_values(values)
    values.update(additions)
    values["provinces"][0]["channel"]["signingCertificate"] = values["provinces"][0]["channel"][
        "intakeCertificate"
    ]
    with pytest.raises(ConfigError, match=r"channel\.signingCertificate: not an SM2") as error:
        render("demo", values)
    assert "\n" not in str(error.value)


def test_the_library_seals_with_the_issuer_seal_once_its_es_id_is_given(demo: Rendered) -> None:
    """The seal's es_id is known once the Job has made it; given as issuer.esId, the library's
    issuers setting names it (loaded by the library's own settings class), and not before."""
    for province in stack_values("demo")["provinces"]:
        ns = demo.outputs["platforms"][province["name"]]["namespace"]
        assert "issuers" not in _settings(demo, ns, "elicense")
    values = copy.deepcopy(stack_values("demo"))
    first, second = values["provinces"][:2]
    es_id = f"{first['regionCode']}0A1B2C3D4E"
    first["issuer"]["esId"] = es_id
    rendered = render("demo", values)
    platforms = rendered.outputs["platforms"]
    settings = _settings(rendered, platforms[first["name"]]["namespace"], "elicense")
    library = resolve_service("elicense").settings_class.model_validate(settings)
    issuer = library.issuers[first["issuer"]["creditCode"]]  # type: ignore[attr-defined]
    assert (issuer.name, issuer.es_id) == (first["issuer"]["name"], es_id)
    assert "issuers" not in _settings(rendered, platforms[second["name"]]["namespace"], "elicense")
    values["provinces"][0]["issuer"]["esId"] = "seal-1"
    with pytest.raises(ConfigError, match=r"issuer\.esId: 'seal-1' is not valid"):
        render("demo", values)


def _mounted(rendered: Rendered, namespace: str, service: str) -> dict[str, str]:
    """The files of the service's own Secret mounted at /etc/zwfw/client/, by path."""
    deployment = rendered.find("Deployment", service, namespace)
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "client"]
    assert volume["secret"]["secretName"] == f"{service}-secrets"
    (container,) = [c for c in pod["containers"] if c["name"] == service]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "client"]
    data = rendered.find("Secret", f"{service}-secrets", namespace)["stringData"]
    root = mount["mountPath"]
    return {f"{root}/{i['path']}": data[i["key"]] for i in volume["secret"]["items"]}


def test_the_hall_reports_to_the_stacks_hub_with_its_channel_identity_from_its_secret(
    tmp_path: Path,
) -> None:
    """A province that gives its channel: its hall's hub settings name the hub's service URL,
    its client province-<region> at the national IdP (the one the national Job registers), and
    its channel signing key and intake client key from secret config, mounted from its own
    Secret beside the public certificates of the config. The hub's TLS accepts the intake
    certificate's CA (the channel CA) in the cluster."""
    values = copy.deepcopy(stack_values("demo"))
    additions, secrets = deploy_time_values(values)
    values.update(additions)
    demo = render("demo", values, secret_values=secrets)
    platforms = demo.outputs["platforms"]
    national = platforms["national"]
    idp = national["services"]["identity"]
    (realm,) = _plan(demo, national["namespace"], tmp_path).realms
    registered = {c.client_id for c in realm.clients}
    channels = {p["name"]: p["channel"] for p in values["provinces"]}
    for name, province in platforms.items():
        if province["kind"] != "province":
            continue
        ns, region = province["namespace"], province["region_code"]
        hub = _settings(demo, ns, "hall")["hub"]
        assert hub["base_url"] == national["services"]["hub"]["internal_url"]
        assert hub["token_url"] == f"{idp['internal_url']}/token"
        assert hub["assertion_audience"] == f"{idp['public_url']}/token"
        assert hub["client_id"] == f"province-{region}"
        assert hub["client_id"] in registered
        files = _mounted(demo, ns, "hall")
        keys = secrets[name]["hall"]
        assert files[hub["signing_cert_file"]] == channels[name]["signingCertificate"]
        assert files[hub["tls_cert_file"]] == channels[name]["intakeCertificate"]
        signing_key = load_private_key(files[hub["signing_key_file"]].encode())
        assert signing_key.public_key == load_private_key(keys["channel_key"].encode()).public_key
        assert files[hub["tls_key_file"]].strip() == keys["intake_client_key"].strip()
        assert hub["client_key_file"] in files
        assert hub["ca_bundle"] == "/etc/zwfw/tls/ca.crt"
    ns = national["namespace"]
    client_ca = _settings(demo, ns, "hub")["tls"]["client_ca"]
    bundle = _mounted(demo, ns, "hub")[client_ca]
    assert values["pki"]["channelCaCertificate"].strip() in bundle
    assert values["pki"]["internalCaCertificate"].strip() in bundle


@pytest.mark.parametrize(
    ("key", "certificate"),
    [("channel_key", "signingCertificate"), ("intake_client_key", "intakeCertificate")],
)
def test_a_channel_key_that_is_not_the_certificates_is_refused_in_one_line(
    key: str, certificate: str
) -> None:
    values = copy.deepcopy(stack_values("demo"))
    additions, secrets = deploy_time_values(values)
    values.update(additions)
    # Province B's key for province A's certificate.
    secrets["province-a"]["hall"][key] = secrets["province-b"]["hall"][key]
    with pytest.raises(
        ConfigError,
        match=rf"^secret zwfw:secrets\.province-a\.hall\.{key} is not the key of the "
        rf"province's channel\.{certificate}$",
    ):
        render("demo", values, secret_values=secrets)
    secrets["province-a"]["hall"][key] = "0123456789abcdef"
    with pytest.raises(ConfigError, match=rf"^secret zwfw:secrets\.province-a\.hall\.{key}: not"):
        render("demo", values, secret_values=secrets)
