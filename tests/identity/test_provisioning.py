"""Provisioning clients declared in the settings: registered at start-up as private_key_jwt
clients holding identity:admin only, for the IdP's own audience; changed or removed in the
settings, they change or stop working at the next start."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy import select

from zwfw.services.identity import IdentitySettings, build
from zwfw.services.kit import SettingsError, audit, load_settings, migrate

from .support import ISSUER, Idp, client_assertion, make_settings, started

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _declared(client_id: str, key: ECKey) -> dict[str, Any]:
    return {"client_id": client_id, "jwks": {"keys": [key.as_dict(private=False)]}}


def _token(client: TestClient, client_id: str, key: ECKey, scope: str = "identity:admin"):
    return client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, client_id, ISSUER + "/token"),
        },
    )


def _bearer(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def keys() -> dict[str, str]:
    # One instance's data keys, kept across its restarts.
    return {"data_key": os.urandom(16).hex(), "lookup_key": os.urandom(32).hex()}


def test_a_declared_client_can_provision_through_the_admin_api(
    tmp_path: Path, keys: dict[str, str]
) -> None:
    key = ECKey.generate_key("P-256")
    with started(tmp_path, provisioning_clients=[_declared("ansible", key)], **keys) as idp:
        headers = _bearer(_token(idp.client, "ansible", key))
        mine = idp.client.get("/admin/clients/ansible", headers=headers).json()
        assert mine["auth_method"] == "private_key_jwt"
        assert mine["grant_types"] == ["client_credentials"]
        assert mine["scopes"] == ["identity:admin"]
        assert mine["audiences"] == [ISSUER]
        assert mine["from_settings"] is True
        # It holds identity:admin and nothing else.
        assert _token(idp.client, "ansible", key, "openid").json()["error"] == "invalid_scope"
        created = idp.client.put(
            "/admin/clients/portal",
            json={
                "name": "portal",
                "auth_method": "none",
                "grant_types": ["authorization_code"],
                "redirect_uris": ["https://portal.test/cb"],
                "scopes": ["openid"],
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        # The settings own it: the admin API neither changes nor disables it.
        spec = {k: v for k, v in mine.items() if k not in ("client_id", "from_settings")}
        spec.pop("client_secret")
        widened = {**spec, "scopes": ["identity:admin", "openid"]}
        for refused in (
            idp.client.put("/admin/clients/ansible", json=widened, headers=headers),
            idp.client.delete("/admin/clients/ansible", headers=headers),
        ):
            assert refused.status_code == 409, refused.text
            assert "provisioning_clients" in refused.json()["detail"]
        assert idp.client.get("/admin/clients/ansible", headers=headers).json() == mine
        with idp.db() as db:
            rows = list(db.execute(select(audit.audit_log).order_by(audit.audit_log.c.seq)))
        actions = [(r.actor, r.action) for r in rows if r.action.startswith(("prov", "admin"))]
        assert actions == [
            ("settings:provisioning_clients", "provisioning.client.create"),
            ("ansible", "admin.client.create"),
        ]


def test_changed_and_removed_clients_take_effect_at_restart(
    tmp_path: Path, keys: dict[str, str]
) -> None:
    old, new, other = (ECKey.generate_key("P-256") for _ in range(3))
    with started(
        tmp_path,
        provisioning_clients=[_declared("ansible", old), _declared("pulumi", other)],
        **keys,
    ) as idp:
        held = _bearer(_token(idp.client, "ansible", old))
        held_by_pulumi = _bearer(_token(idp.client, "pulumi", other))
        assert idp.client.get("/admin/clients", headers=held).status_code == 200
    # Restart: ansible's key replaced, pulumi no longer declared.
    with started(tmp_path, provisioning_clients=[_declared("ansible", new)], **keys) as idp:
        assert _token(idp.client, "ansible", old).json()["error"] == "invalid_client"
        fresh = _bearer(_token(idp.client, "ansible", new))
        # Tokens from before the change no longer open the admin API.
        assert idp.client.get("/admin/clients", headers=held).status_code == 401
        assert idp.client.get("/admin/clients", headers=held_by_pulumi).status_code == 401
        assert _token(idp.client, "pulumi", other).json()["error"] == "invalid_client"
        listed = {c["client_id"]: c for c in idp.client.get("/admin/clients", headers=fresh).json()}
        assert listed["pulumi"]["disabled"] is True
        assert listed["ansible"]["jwks"]["keys"][0]["x"] == new.as_dict(private=False)["x"]
    # An unchanged restart changes nothing.
    with started(tmp_path, provisioning_clients=[_declared("ansible", new)], **keys) as idp:
        with idp.db() as db:
            actions = [
                r.action
                for r in db.execute(select(audit.audit_log).order_by(audit.audit_log.c.seq))
                if r.action.startswith("provisioning.")
            ]
        assert actions == [
            "provisioning.client.create",
            "provisioning.client.create",
            "provisioning.client.update",
            "provisioning.client.disable",
        ]


def test_an_api_client_of_the_same_id_is_taken_over_by_the_settings(
    tmp_path: Path, keys: dict[str, str]
) -> None:
    key, api_key = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    with started(tmp_path, provisioning_clients=[_declared("ansible", key)], **keys) as idp:
        headers = _bearer(_token(idp.client, "ansible", key))
        body = {
            "name": "ops",
            "auth_method": "private_key_jwt",
            "jwks": {"keys": [api_key.as_dict(private=False)]},
            "grant_types": ["client_credentials"],
            "scopes": ["identity:admin", "hall:catalog:write"],
        }
        assert idp.client.put("/admin/clients/ops", json=body, headers=headers).status_code == 201
    declared = [_declared("ansible", key), _declared("ops", api_key)]
    with started(tmp_path, provisioning_clients=declared, **keys) as idp:
        headers = _bearer(_token(idp.client, "ansible", key))
        ops = idp.client.get("/admin/clients/ops", headers=headers).json()
        assert ops["from_settings"] is True
        assert ops["scopes"] == ["identity:admin"]


def test_provisioning_waits_for_an_unmigrated_database(tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256")
    app = build(make_settings(tmp_path, provisioning_clients=[_declared("ansible", key)]))
    with TestClient(app, base_url=ISSUER) as client:
        # Started before `zwfw migrate`: not ready, and nothing provisioned yet.
        assert client.get("/readyz").status_code == 503
        migrate(app)
        assert client.get("/readyz").status_code == 200
        assert _token(client, "ansible", key).json()["error"] == "invalid_client"
        # The first admin request brings the settings' clients in first; the token request
        # that follows succeeds.
        assert client.get("/admin/clients").status_code == 401
        headers = _bearer(_token(client, "ansible", key))
        assert client.get("/admin/clients", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ([{"client_id": "a b", "jwks": {"keys": []}}], "provisioning_clients.0.client_id"),
        ([{"client_id": "ansible", "jwks": {"keys": []}}], "1 to 10 keys"),
        ("private", "private key material"),
        ("twice", "names ansible more than once"),
        (
            [{"client_id": "ansible", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}],
            "private key",
        ),
    ],
)
def test_declarations_are_checked_when_the_settings_load(
    tmp_path: Path, declared: Any, message: str
) -> None:
    key = ECKey.generate_key("P-256")
    if declared == "private":
        declared = [{"client_id": "ansible", "jwks": {"keys": [key.as_dict(private=True)]}}]
    elif declared == "twice":
        declared = [_declared("ansible", key), _declared("ansible", key)]
    config = tmp_path / "idp.yaml"
    config.write_text(
        json.dumps(
            {
                "database_url": "sqlite://",
                "data_key": os.urandom(16).hex(),
                "lookup_key": os.urandom(32).hex(),
                "provisioning_clients": declared,
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(SettingsError, match=message):
        load_settings(IdentitySettings, config)


def test_declarations_come_from_the_environment_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ECKey.generate_key("P-256")
    monkeypatch.setenv("ZWFW_PROVISIONING_CLIENTS", json.dumps([_declared("ansible", key)]))
    config = tmp_path / "idp.yaml"
    config.write_text(
        json.dumps({"data_key": os.urandom(16).hex(), "lookup_key": os.urandom(32).hex()}),
        encoding="utf-8",
    )
    settings = load_settings(IdentitySettings, config)
    assert [c.client_id for c in settings.provisioning_clients] == ["ansible"]


def test_unused_idp_fixture_keeps_no_provisioning_clients(idp: Idp) -> None:
    with idp.db() as db:
        from zwfw.services.identity.clients import list_clients

        assert list_clients(db) == []
