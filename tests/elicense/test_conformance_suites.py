"""The IC-SEAL-* and IC-LIC-* conformance suites pass against the reference services, served
for real (uvicorn on localhost) with test accounts minted like identity's tokens."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from kit.kit_tokens import TokenMint

from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.services import eseal
from zwfw.services.elicense import ElicenseSettings, SealClient, SealServiceConfig, build
from zwfw.services.kit import migrate

from .conftest import ISSUER_CODE, TYPE_CODE, issue_body, seal_body

REPO = Path(__file__).resolve().parents[2]
ZWFW = Path(sys.executable).with_name("zwfw")


def _serve(app: FastAPI) -> tuple[str, uvicorn.Server]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return base, server
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the service did not start")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[TokenMint, str, str]]:
    mint = TokenMint(audience="eseal")
    auth = {"issuer": mint.issuer, "jwks": mint.jwks()}
    seal_app = eseal.build(
        eseal.EsealSettings(
            database_url=f"sqlite:///{tmp_path / 'eseal.db'}", auth={**auth, "audience": "eseal"}
        ),
        kek=KeyEncryptionKey.generate(),
    )
    migrate(seal_app)
    eseal_url, eseal_server = _serve(seal_app)
    admin = {"Authorization": "Bearer " + mint.token(sub="admin", scopes=["eseal:admin"])}
    body = seal_body(
        credit_code=ISSUER_CODE, signers=[{"subject": "elicense-platform", "name": "电子证照库"}]
    )
    seal = httpx.post(f"{eseal_url}/seals", json=body, headers=admin).json()
    seals = SealClient(
        SealServiceConfig(base_url=eseal_url),
        token=lambda: mint.token(sub="elicense-platform", scopes=["eseal:sign"]),
    )
    licence_app = build(
        ElicenseSettings(
            database_url=f"sqlite:///{tmp_path / 'elicense.db'}",
            auth={**auth, "audience": "elicense"},
            issuers={ISSUER_CODE: {"name": "合肥市市场监督管理局", "es_id": seal["es_id"]}},
        ),
        seal_client=seals,
    )
    migrate(licence_app)
    elicense_url, elicense_server = _serve(licence_app)
    issuer = {
        "Authorization": "Bearer "
        + mint.token(sub="regulator", scopes=["elicense:issue", "elicense:admin"],
                     audience="elicense")
    }  # fmt: skip
    httpx.post(
        f"{elicense_url}/types",
        json={"type_code": TYPE_CODE, "name": "营业执照", "defining_authority_name": "总局"},
        headers=issuer,
    ).raise_for_status()
    for sub in ("holder-a", "holder-b"):
        response = httpx.post(
            f"{elicense_url}/licences", json=issue_body(sub, data={}), headers=issuer
        )
        response.raise_for_status()
    try:
        yield mint, eseal_url, elicense_url
    finally:
        eseal_server.should_exit = elicense_server.should_exit = True


def test_seal_and_licence_suites_pass(platform: tuple[TokenMint, str, str], tmp_path: Path) -> None:
    mint, eseal_url, elicense_url = platform
    names = [
        "eseal_admin_token",
        "eseal_signer_token",
        "eseal_signer_subject",
        "elicense_holder_token",
        "elicense_other_holder_token",
        "elicense_share_token",
    ]
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "reference platform",
                "region_code": "340000",
                "services": {"eseal": eseal_url, "elicense": elicense_url},
                "credentials": {name: {"env": name.upper()} for name in names},
            }
        )
    )

    def token(sub: str, audience: str, *scopes: str) -> str:
        return mint.token(sub=sub, scopes=scopes, audience=audience, expires_in=600)

    env = {
        **os.environ,
        "ESEAL_ADMIN_TOKEN": token("admin", "eseal", "eseal:admin"),
        "ESEAL_SIGNER_TOKEN": token("officer-c", "eseal", "eseal:sign"),
        "ESEAL_SIGNER_SUBJECT": "officer-c",
        "ELICENSE_HOLDER_TOKEN": token("holder-a", "elicense", "elicense:read", "elicense:consent"),
        "ELICENSE_OTHER_HOLDER_TOKEN": token("holder-b", "elicense", "elicense:read"),
        "ELICENSE_SHARE_TOKEN": token("hall-340000", "elicense", "elicense:share"),
    }
    out = tmp_path / "out"
    run = subprocess.run(
        [str(ZWFW), "certify", "--target", str(profile), "--out", str(out),
         "--suites", "conformance/seal", "--suites", "conformance/licence"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    ours = {
        r["id"]: r["status"]
        for r in results["requirements"]
        if r["id"].startswith(("IC-SEAL-", "IC-LIC-"))
    }
    assert len(ours) == 8
    assert set(ours.values()) == {"pass"}, ours
