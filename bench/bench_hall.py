"""The hall through HTTP: one `zwfw serve hall` process (one uvicorn worker, SQLite file),
driven by one keep-alive client.

1. Catalog reads/s: ``GET /items/{code}`` (public, one published item with its full guide).
2. Case submissions/s: ``POST /cases`` by a citizen token with one uploaded material (case
   number allocation, audit record and hub report queued in the same transaction).

Baseline for both: the same process's bare ``/healthz`` rate, measured in the same run, so
the figure is the hall's own cost over the kit's request path.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import yaml
from figure import Figure, rate
from joserfc import jwt
from joserfc.jwk import ECKey

from zwfw.codes.personal import build_resident_id
from zwfw.crypto.keystore import KeyEncryptionKey

ISSUER = "https://idp.bench.zwfw"
AUDIENCE = "zwfw-hall"
DEPT = "113401000030547255"
CODE = f"{DEPT}3442199806003"
ZWFW = str(Path(sys.executable).with_name("zwfw"))


def _guide() -> dict[str, object]:
    return {
        "name": "企业投资项目备案",
        "implementation_code": CODE,
        "item_type": "20",
        "handling_items": [{"code": f"{CODE}01", "name": "首次备案"}],
        "dept_code": DEPT,
        "dept_name": "合肥市发展和改革委员会",
        "region_code": "340100",
        "by_law": ["《企业投资项目核准和备案管理条例》第十三条"],
        "accept_condition": "在本市行政区域内投资建设的企业投资项目",
        "anticipate_day": 20,
        "promise_day": 5,
        "is_fee": False,
        "handle_flow": ["申请", "受理", "审查", "决定", "办结"],
        "handle_type": ["online", "window"],
        "limit_scene_num": 0,
        "link_addr": "https://hall.example.gov.cn/items/1",
        "link_way": "0551-12345",
        "supervise_way": "12345 热线",
        "project_type": 2,
        "server_type": ["person"],
        "transact_addr": "合肥市政务服务中心",
        "transact_time": "工作日 9:00-17:00",
        "materials": [
            {
                "name": "项目备案申请表",
                "basis": "《企业投资项目核准和备案管理办法》",
                "formats": ["electronic"],
                "copies": 1,
                "seal_required": True,
                "signature_required": True,
            }
        ],
    }


def _token(key: ECKey, sub: str, scopes: str, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 3600}
    body.update(scope=scopes, client_id="bench", **claims)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def figures() -> list[Figure]:
    key = ECKey.generate_key("P-256", parameters={"kid": "bench", "use": "sig", "alg": "ES256"})
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        config = Path(tmp) / "hall.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "database_url": f"sqlite:///{Path(tmp) / 'hall.sqlite3'}",
                    "port": port,
                    "workers": 1,
                    "log_level": "WARNING",
                    "auth": {
                        "issuer": ISSUER,
                        "audience": AUDIENCE,
                        "jwks": {"keys": [key.as_dict(private=False)]},
                    },
                }
            )
        )
        # Cases keep certificate numbers encrypted: the hall needs its KEK, fresh per run.
        kek = KeyEncryptionKey.generate().secret.hex()
        process = subprocess.Popen(
            [ZWFW, "serve", "hall", "--config", str(config)],
            env={**os.environ, "ZWFW_KEK": kek},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(base_url=url, timeout=10) as client:
                for _ in range(150):
                    try:
                        if client.get("/readyz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)
                editor = {"Authorization": f"Bearer {_token(key, 'editor', 'hall:catalog:write')}"}
                assert client.post("/items", json=_guide(), headers=editor).status_code == 201
                published = client.post(f"/items/{CODE}/versions/1/publish", headers=editor)
                assert published.status_code == 200
                citizen = {
                    "Authorization": "Bearer "
                    + _token(key, "citizen", "openid", user_type="person", acr="real-name")
                }
                application = {
                    "implementation_code": CODE,
                    "applicant": {
                        "name": "张三",
                        "certificate_type": "10",
                        "certificate_number": str(
                            build_resident_id("340104", date(1990, 3, 7), 123)
                        ),
                    },
                    "materials": [
                        {
                            "name": "项目备案申请表",
                            "gettype": 2,
                            "media_type": "application/pdf",
                            "content_base64": base64.b64encode(b"%PDF-1.7 " * 200).decode(),
                        }
                    ],
                }

                def healthz() -> object:
                    return client.get("/healthz").raise_for_status()

                def read_item() -> object:
                    return client.get(f"/items/{CODE}").raise_for_status()

                def submit() -> object:
                    response = client.post("/cases", json=application, headers=citizen)
                    assert response.status_code == 201, response.text
                    return response

                base_rate = rate(healthz, seconds=3.0)
                read_rate = rate(read_item, seconds=3.0)
                submit_rate = rate(submit, seconds=3.0)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return [
        Figure(
            name="hall catalog reads/s (GET /items/{code}, HTTP, 1 worker, SQLite)",
            value=read_rate,
            unit="requests/s",
            baseline_name="same process GET /healthz",
            baseline_value=base_rate,
        ),
        Figure(
            name="hall case submissions/s (POST /cases, 1 upload, HTTP, 1 worker, SQLite)",
            value=submit_rate,
            unit="requests/s",
            baseline_name="same process GET /healthz",
            baseline_value=base_rate,
        ),
    ]
