"""The hall conformance suite (IC-DISC, IC-CAT, IC-CASE, IC-EVAL) run by `zwfw certify`
against a hall served as a separate `zwfw serve` process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .support import AUDIENCE, EDITOR, ISSUER, RECTIFIER, REGION, STAFF, TokenMint, guide

ZWFW = str(Path(sys.executable).with_name("zwfw"))
REPO = Path(__file__).resolve().parents[2]
HALL_IDS = {
    "IC-DISC-001",
    "IC-CAT-001",
    "IC-CAT-002",
    "IC-CAT-003",
    "IC-CAT-004",
    "IC-CASE-001",
    "IC-CASE-002",
    "IC-CASE-003",
    "IC-CASE-004",
    "IC-CASE-005",
    "IC-CASE-006",
    "IC-CASE-007",
    "IC-CASE-008",
    "IC-EVAL-001",
    "IC-EVAL-002",
    "IC-EVAL-003",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServedHall:
    url: str
    mint: Any

    def token(self, sub: str, scopes: tuple[str, ...] = (), **claims: Any) -> str:
        return self.mint.token(sub=sub, scopes=scopes, expires_in=600, extra=claims)


@contextmanager
def jwks_served(document: dict[str, Any]) -> Iterator[str]:
    """The issuer's JWKS at a URL, as the discovery document names it, and the IdP's discovery
    naming it (IC-DISC-001 fetches both); yields the JWKS URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            base = f"http://127.0.0.1:{self.server.server_address[1]}/identity"
            if self.path.endswith("/.well-known/openid-configuration"):
                body = json.dumps({"issuer": base, "jwks_uri": f"{base}/jwks"}).encode()
            else:
                body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/identity/jwks"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def served_hall(tmp_path: Path) -> Iterator[ServedHall]:
    mint = TokenMint(issuer=ISSUER, audience=AUDIENCE)
    with jwks_served(mint.jwks()) as jwks_uri:
        yield from _served_hall(tmp_path, mint, jwks_uri)


def _served_hall(tmp_path: Path, mint: Any, jwks_uri: str) -> Iterator[ServedHall]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "hall.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "region_code": REGION,
                "database_url": f"sqlite:///{tmp_path / 'hall.sqlite3'}",
                "public_base_url": url,
                "port": port,
                "auth": {"issuer": ISSUER, "audience": AUDIENCE, "jwks": mint.jwks()},
                "discovery": {
                    "services": {"identity": jwks_uri.removesuffix("/jwks")},
                    "jwks_uris": {"identity": jwks_uri},
                },
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    log = (tmp_path / "hall.log").open("wb")
    process = subprocess.Popen(
        [ZWFW, "serve", "hall", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"hall did not start: {(tmp_path / 'hall.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield ServedHall(url, mint)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def certify(hall: ServedHall, tmp_path: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    profile = tmp_path / "target.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "hall under test",
                "region_code": REGION,
                "services": {"hall": hall.url},
                "credentials": {
                    "hall_applicant_token": {"env": "HALL_APPLICANT_TOKEN"},
                    "hall_other_applicant_token": {"env": "HALL_OTHER_APPLICANT_TOKEN"},
                    "hall_staff_token": {"env": "HALL_STAFF_TOKEN"},
                    "hall_catalog_editor_token": {"env": "HALL_CATALOG_EDITOR_TOKEN"},
                },
            }
        ),
        encoding="utf-8",
    )
    person = {"user_type": "person", "acr": "real-name", "region": REGION}
    env = {
        **os.environ,
        "HALL_APPLICANT_TOKEN": hall.token("conf-citizen-1", ("openid",), **person),
        "HALL_OTHER_APPLICANT_TOKEN": hall.token("conf-citizen-2", ("openid",), **person),
        "HALL_STAFF_TOKEN": hall.token("conf-officer", (*STAFF, *RECTIFIER)),
        "HALL_CATALOG_EDITOR_TOKEN": hall.token("conf-editor", EDITOR),
    }
    out = tmp_path / "out"
    result = subprocess.run(
        [ZWFW, "certify", "--target", str(profile), "--out", str(out), "--suites",
         "conformance/hall", "--quiet"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return result.returncode, {entry["id"]: entry for entry in document["requirements"]}


def test_reference_hall_passes_the_hall_suite(served_hall: ServedHall, tmp_path: Path) -> None:
    editor = {"Authorization": f"Bearer {served_hall.token('conf-editor', EDITOR)}"}
    body = guide()
    created = httpx.post(f"{served_hall.url}/items", json=body, headers=editor)
    assert created.status_code == 201, created.text
    published = httpx.post(
        f"{served_hall.url}/items/{body['implementation_code']}/versions/1/publish",
        headers=editor,
    )
    assert published.status_code == 200
    _, results = certify(served_hall, tmp_path)
    statuses = {rid: results[rid]["status"] for rid in HALL_IDS}
    failing = {rid: results[rid].get("reason") for rid, s in statuses.items() if s != "pass"}
    assert not failing, failing


def test_empty_catalog_fails_the_catalog_requirements(
    served_hall: ServedHall, tmp_path: Path
) -> None:
    code, results = certify(served_hall, tmp_path)
    assert code == 1
    assert results["IC-DISC-001"]["status"] == "pass"
    for rid in ("IC-CAT-001", "IC-CAT-002", "IC-CAT-003", "IC-CASE-001", "IC-EVAL-002"):
        assert results[rid]["status"] == "fail", rid
    assert "no published item" in results["IC-CAT-001"]["reason"]
