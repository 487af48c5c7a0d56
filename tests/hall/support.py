"""Helpers for the hall's tests: tokens shaped like identity's, sample guides, a fake
e-licence library, and a driven hall app."""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from zwfw.codes.personal import build_resident_id
from zwfw.services.hall import HallSettings, build
from zwfw.services.hall.elicense import ElicenseClient
from zwfw.services.kit import migrate


def _kit_tokens() -> Any:
    # The kit's own test token helper, reused so tokens look the same across the project.
    if "kit_tokens" in sys.modules:
        return sys.modules["kit_tokens"]
    path = Path(__file__).resolve().parents[1] / "kit" / "kit_tokens.py"
    spec = importlib.util.spec_from_file_location("kit_tokens", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kit_tokens"] = module
    spec.loader.exec_module(module)
    return module


TokenMint = _kit_tokens().TokenMint

ISSUER = "https://idp.test.zwfw/340000"
AUDIENCE = "zwfw-hall"
REGION = "340000"

DEPT = "113401000030547255"
IMPLEMENTATION = f"{DEPT}3442199806003"
HANDLING = f"{IMPLEMENTATION}01"
LICENCE_TYPE = "11100000000013338W001"
LICENCE_ID = "1.2.156.3005.2.11100000000013338W001.113401000030547255.00000000016.001.Y"
OTHER_TYPE_LICENCE = (
    "1.2.156.3005.2.11100000MB03271699022.11340000002988139G.3401002024000123ABCD.001.1"
)
RESIDENT_ID = str(build_resident_id("340104", date(1990, 3, 7), 123))
PHONE = "13812345678"

STAFF = ("hall:case:handle",)
EDITOR = ("hall:catalog:write",)
RECTIFIER = ("hall:rectification",)


def guide(**overrides: Any) -> dict[str, Any]:
    """A complete 办事指南 for a municipal item in Hefei."""
    value: dict[str, Any] = {
        "name": "企业投资项目备案",
        "implementation_code": IMPLEMENTATION,
        "item_type": "20",
        "handling_items": [{"code": HANDLING, "name": "首次备案"}],
        "dept_code": DEPT,
        "dept_name": "合肥市发展和改革委员会",
        "region_code": "340100",
        "by_law": ["《企业投资项目核准和备案管理条例》第十三条"],
        "accept_condition": "在本市行政区域内投资建设的企业投资项目",
        "anticipate_day": 20,
        "anticipate_day_unit": "working_day",
        "promise_day": 5,
        "promise_day_unit": "working_day",
        "is_fee": False,
        "fees": [],
        "handle_flow": ["申请", "受理", "审查", "决定", "办结"],
        "handle_type": ["online", "window"],
        "limit_scene_num": 0,
        "link_addr": "https://hall.example.gov.cn/items/1",
        "link_way": "0551-12345",
        "supervise_way": "12345 热线",
        "project_type": 2,
        "server_type": ["person", "legal_person"],
        "transact_addr": "合肥市政务服务中心",
        "transact_time": "工作日 9:00-17:00",
        "materials": [
            {
                "name": "项目备案申请表",
                "basis": "《企业投资项目核准和备案管理办法》",
                "formats": ["electronic", "paper"],
                "copies": 1,
                "seal_required": True,
                "signature_required": True,
            },
            {
                "name": "营业执照",
                "basis": "《企业投资项目核准和备案管理办法》",
                "formats": ["electronic"],
                "copies": 1,
                "seal_required": False,
                "signature_required": False,
                "licence_type_code": LICENCE_TYPE,
            },
        ],
    }
    value.update(overrides)
    if "implementation_code" in overrides and "handling_items" not in overrides:
        value["handling_items"] = [
            {"code": f"{overrides['implementation_code']}01", "name": "办理"}
        ]
    return copy.deepcopy(value)


def upload(name: str = "项目备案申请表", content: bytes = b"%PDF-1.7 form") -> dict[str, Any]:
    return {
        "name": name,
        "gettype": 2,
        "media_type": "application/pdf",
        "content_base64": base64.b64encode(content).decode(),
    }


def application(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "implementation_code": IMPLEMENTATION,
        "handling_item_code": HANDLING,
        "channel": "online",
        "applicant": {
            "name": "张三",
            "certificate_type": "10",
            "certificate_number": RESIDENT_ID,
            "phone": PHONE,
        },
        "materials": [upload()],
    }
    value.update(overrides)
    return value


@dataclass
class FakeLibrary:
    """An e-licence library answering the GB/T 36906 share request: licence holders by
    ``sub``, statuses, and the requests it saw."""

    mint: Any
    holders: dict[str, str] = field(default_factory=dict)  # identifier -> holder sub
    status: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False
    tamper: str | None = None  # "cause" | "identifier" | "digest"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/licences/{identifier}/annotated-copies", status_code=201)
        def share(
            identifier: str, body: dict[str, Any], authorization: str = Header()
        ) -> dict[str, Any]:
            if self.down:
                raise HTTPException(503, "maintenance")
            from joserfc import jwt

            token = authorization.removeprefix("Bearer ")
            claims = jwt.decode(token, self.mint.key).claims
            self.requests.append({"identifier": identifier, "sub": claims["sub"], **body})
            if self.holders.get(identifier) != claims["sub"]:
                raise HTTPException(404, "no such licence for this holder")
            file_bytes = f"OFD {identifier} {body['cause']}".encode()
            return {
                "identifier": identifier if self.tamper != "identifier" else LICENCE_ID[:-1] + "Z",
                "status": self.status.get(identifier, "01"),
                "type_code": identifier.split(".")[5],
                "holder_name": "张三",
                "copy": {
                    "id": f"copy-{len(self.requests)}",
                    "cause": body["cause"] if self.tamper != "cause" else "其他用途",
                    "expires_at": body["expires_at"],
                    "made_at": "2026-01-05T08:00:00+00:00",
                    "made_by": "安徽省电子证照库",
                    "sha256": hashlib.sha256(file_bytes).hexdigest()
                    if self.tamper != "digest"
                    else "",
                },
            }

        return app


@dataclass
class Hall:
    client: TestClient
    app: FastAPI
    mint: Any
    library: FakeLibrary

    def bearer(self, sub: str, scopes: tuple[str, ...] = (), **claims: Any) -> dict[str, str]:
        token = self.mint.token(sub=sub, scopes=scopes, extra=claims)
        return {"Authorization": f"Bearer {token}"}

    def citizen(self, sub: str = "citizen-1", user_type: str = "person") -> dict[str, str]:
        return self.bearer(sub, ("openid",), user_type=user_type, acr="real-name", region=REGION)

    def staff(self, *scopes: str) -> dict[str, str]:
        return self.bearer("officer-7", scopes or STAFF)

    def publish(self, **overrides: Any) -> dict[str, Any]:
        body = guide(**overrides)
        created = self.client.post("/items", json=body, headers=self.staff(*EDITOR))
        assert created.status_code == 201, created.text
        code = body["implementation_code"]
        published = self.client.post(
            f"/items/{code}/versions/{created.json()['version']}/publish",
            headers=self.staff(*EDITOR),
        )
        assert published.status_code == 200, published.text
        return published.json()

    def apply(self, sub: str = "citizen-1", **overrides: Any) -> dict[str, Any]:
        response = self.client.post(
            "/cases", json=application(**overrides), headers=self.citizen(sub)
        )
        assert response.status_code == 201, response.text
        return response.json()

    def step(self, number: str, nodetype: int, noderesult: int) -> httpx.Response:
        return self.client.post(
            f"/cases/{number}/steps",
            json={"nodetype": nodetype, "noderesult": noderesult, "handler_name": "李四"},
            headers=self.staff(),
        )

    def finish(self, number: str) -> dict[str, Any]:
        for nodetype, noderesult in ((1, 4), (2, 1), (3, 1)):
            response = self.step(number, nodetype, noderesult)
            assert response.status_code == 201, response.text
        return response.json()

    def db(self):  # noqa: ANN201 - a sessionmaker.begin() context manager
        return self.app.state.kit.sessions.begin()


@contextmanager
def running_hall(database_url: str, tmp_path: Path, **overrides: Any) -> Iterator[Hall]:
    mint = TokenMint(issuer=ISSUER, audience=AUDIENCE)
    values: dict[str, Any] = {
        "database_url": database_url,
        "region_code": REGION,
        "public_base_url": "https://hall.test.zwfw",
        "auth": {"issuer": ISSUER, "audience": AUDIENCE, "jwks": mint.jwks()},
        "elicense": {"base_url": "http://elicense.test"},
        "discovery": {
            "services": {
                "identity": "https://identity.test.zwfw",
                "elicense": "https://elicense.test.zwfw",
                "eseal": "https://eseal.test.zwfw",
            },
            "jwks_uris": {"identity": "https://identity.test.zwfw/jwks"},
            "hub_url": "https://hub.test.zwfw",
        },
    }
    values.update(overrides)
    settings = HallSettings(**values)
    app = build(settings)
    migrate(app)
    library = FakeLibrary(mint)
    library_client = TestClient(library.app(), base_url="http://elicense.test")
    app.state.hall.elicense = ElicenseClient("http://elicense.test", client=library_client)
    try:
        with TestClient(app) as client:
            yield Hall(client, app, mint, library)
    finally:
        app.state.kit.engine.dispose()
