"""Fixtures for the hub's tests: a migrated hub with two registered provinces."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

sys.path.insert(0, str(Path(__file__).parent))

from hub_support import (  # noqa: E402
    HUB_AUDIENCE,
    HUB_CLIENT_AT_PROVINCES,
    NATIONAL_ISSUER,
    NationalIdP,
    ProvinceIdentity,
    fake_elicense,
    licence_id,
    make_province,
)

from zwfw.crypto.x509 import CertificateAuthority  # noqa: E402
from zwfw.services.hub import HubSettings, build  # noqa: E402
from zwfw.services.kit import migrate  # noqa: E402

OPS_SCOPES = ("hub:provinces:write", "hub:provinces:read", "hub:supervise")


@dataclass
class Hub:
    client: TestClient
    idp: NationalIdP
    ca: CertificateAuthority
    a: ProvinceIdentity
    b: ProvinceIdentity
    ops_token: str
    elicense_calls: list[dict[str, Any]]
    holders: dict[str, str]
    province_idp: FastAPI  # B's IdP and library (``state.token_grants``, ``state.token_outage``)

    def token(self, province: ProvinceIdentity, *scopes: str) -> str:
        return self.idp.client_token(province.client_id, *(scopes or ("hub:report",)))

    def ops(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ops_token}"}


@pytest.fixture(scope="session")
def national_ca() -> CertificateAuthority:
    return CertificateAuthority.create_root("National interconnection CA", organization="zwfw")


@pytest.fixture
def hub(database_url: str, tmp_path: Path, national_ca: CertificateAuthority) -> Iterator[Hub]:
    idp = NationalIdP()
    ca_file = tmp_path / "national-ca.pem"
    ca_file.write_bytes(national_ca.certificate.to_pem())
    auth = {"issuer": NATIONAL_ISSUER, "audience": HUB_AUDIENCE, "jwks": idp.jwks()}
    hub_key = ECKey.generate_key("P-256", parameters={"kid": "hub-1"})
    key_file = tmp_path / "hub-client.jwk"
    key_file.write_text(json.dumps(hub_key.as_dict(private=True)))
    settings = HubSettings(
        database_url=database_url,
        national_ca_file=ca_file,
        auth=auth,
        subject_tokens=auth,
        province_client_id=HUB_CLIENT_AT_PROVINCES,
        province_client_key_file=key_file,
    )
    holders = {licence_id(): "citizen-b-1"}
    elicense, calls = fake_elicense(holders, idp, hub_key)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=elicense))
    app = build(settings, http=http)
    migrate(app)
    a = make_province(national_ca, "340000", "安徽省")
    b = make_province(national_ca, "330000", "浙江省")
    with TestClient(app) as client:
        hub = Hub(
            client=client,
            idp=idp,
            ca=national_ca,
            a=a,
            b=b,
            ops_token=idp.client_token("national-ops", *OPS_SCOPES),
            elicense_calls=calls,
            holders=holders,
            province_idp=elicense,
        )
        for province in (a, b):
            response = client.post("/provinces", json=province.registration(), headers=hub.ops())
            assert response.status_code == 201, response.text
        yield hub
