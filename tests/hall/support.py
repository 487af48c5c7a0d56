"""Helpers for the hall's tests: tokens shaped like identity's, sample guides, a fake
e-licence library, and a driven hall app."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from zwfw.codes.personal import build_resident_id
from zwfw.crypto import ses
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile
from zwfw.services.elicense.document import (
    COPY_FORMAT,
    LICENCE_FORMAT,
    canonical,
    copy_property,
)
from zwfw.services.hall import HallSettings, build
from zwfw.services.hall.elicense import ElicenseClient, TrustRoots
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


class SealKit:
    """A seal authority root, a seal maker, a signer and an issuer seal, made with
    ``zwfw.crypto`` (what an e-seal service holds), to seal copies like a library does."""

    def __init__(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.root = CertificateAuthority.create_root(
            "测试印章根CA", valid_from=now - timedelta(days=1)
        )
        maker_key, self.signer_key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
        maker = self.root.issue(
            maker_key.public_key,
            "制章者",
            CertProfile.SEAL_MAKER,
            valid_from=now - timedelta(days=1),
        )
        self.signer = self.root.issue(
            self.signer_key.public_key,
            "合肥市发展和改革委员会",
            CertProfile.SIGNER,
            valid_from=now - timedelta(days=1),
        )
        self.seal = ses.make_seal(
            maker_cert=maker,
            maker_key=maker_key,
            es_id="3401000000001",
            name="合肥市发展和改革委员会电子证照专用章",
            seal_type=2,
            signer_certs=[self.signer],
            picture=ses.SealPicture("PNG", b"\x89PNG\r\n\x1a\n" + bytes(64), 40, 40),
            valid_start=now - timedelta(days=1),
            valid_end=now + timedelta(days=365),
        )

    def root_pem(self) -> bytes:
        return self.root.certificate.to_pem()

    def sealed_copy(
        self, identifier: str, copy_id: str, cause: str, expires_at: str, holder: str = "张三"
    ) -> tuple[bytes, bytes]:
        document = canonical(
            {
                "format": COPY_FORMAT,
                "licence": {
                    "format": LICENCE_FORMAT,
                    "identifier": identifier,
                    "issuer_code": DEPT,
                    "type_code": identifier.split(".")[5],
                    "holder_name": holder,
                },
                "annotation": {
                    "copy_id": copy_id,
                    "made_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
                    "made_by": "hall-340000",
                    "cause": cause,
                    "expires_at": expires_at,
                },
            }
        )
        signature = ses.sign(
            self.seal, self.signer, self.signer_key, content=document,
            property_info=copy_property(copy_id),
        )  # fmt: skip
        return document, signature


_SEALS: list[SealKit] = []


def seal_kit() -> SealKit:
    # Making SM2 certificates and a seal takes a moment; one kit serves every test.
    if not _SEALS:
        _SEALS.append(SealKit())
    return _SEALS[0]


@dataclass
class FakeLibrary:
    """An e-licence library answering the GB/T 36906 share request the way ``elicense``
    does (``POST /licences/{id}/copies``): the caller's token needs ``elicense:share``, the
    holder's token (``holder_token``) ``elicense:consent``; licence holders by ``sub``,
    statuses, the requests it saw, and faults to inject. Its registry keeps every copy it
    made and answers the public ``POST /verify`` about it (checks ``registry`` and
    ``copy_registry``), as the real library does."""

    mint: Any
    seals: SealKit
    holders: dict[str, str] = field(default_factory=dict)  # identifier -> holder sub
    status: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    made: dict[str, bytes] = field(default_factory=dict)  # copy id -> document made
    verified: list[str] = field(default_factory=list)  # copy ids asked about
    down: bool = False
    registry_down: bool = False
    prefix: str = "copy"
    # "cause" | "identifier" | "signature" | "sealed_cause" | "unregistered" (a validly sealed
    # copy of another holder's licence, not the one the registry made)
    tamper: str | None = None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/licences/{identifier}/copies", status_code=201)
        def share(
            identifier: str, body: dict[str, Any], authorization: str = Header()
        ) -> dict[str, Any]:
            if self.down:
                raise HTTPException(503, "maintenance")
            from joserfc import jwt

            caller = jwt.decode(authorization.removeprefix("Bearer "), self.mint.key).claims
            holder = jwt.decode(body["holder_token"], self.mint.key).claims
            self.requests.append(
                {"identifier": identifier, "caller": caller["sub"], "sub": holder["sub"],
                 "cause": body["cause"], "expires_at": body["expires_at"]}
            )  # fmt: skip
            if "elicense:share" not in caller.get("scope", "").split():
                raise HTTPException(403, "the token lacks the scopes elicense:share")
            if "elicense:consent" not in holder.get("scope", "").split():
                raise HTTPException(403, "holder_token lacks the scope elicense:consent")
            if self.holders.get(identifier) != holder["sub"]:
                raise HTTPException(404, "no such licence for this holder")
            status = self.status.get(identifier, "01")
            if status != "01":
                raise HTTPException(409, f"licence {identifier} is not valid (status {status})")
            copy_id = f"{self.prefix}{len(self.requests)}"
            sealed_cause = "其他用途" if self.tamper == "sealed_cause" else body["cause"]
            document, signature = self.seals.sealed_copy(
                identifier, copy_id, sealed_cause, body["expires_at"]
            )
            self.made[copy_id] = document
            if self.tamper == "unregistered":
                document, signature = self.seals.sealed_copy(
                    identifier, copy_id, sealed_cause, body["expires_at"], holder="李四"
                )
            if self.tamper == "signature":
                document = document.replace(b"hall-340000", b"hall-340001")
            return {
                "copy_id": copy_id,
                "identifier": identifier if self.tamper != "identifier" else OTHER_TYPE_LICENCE,
                "cause": body["cause"] if self.tamper != "cause" else "其他用途",
                "made_at": "2026-01-05T08:00:00+00:00",
                "made_by": caller["sub"],
                "expires_at": body["expires_at"],
                "es_id": "3401000000001",
                "document": base64.b64encode(document).decode(),
                "signature": base64.b64encode(signature).decode(),
                "verify_url": f"https://elicense.test/verify/{identifier}",
            }

        @app.post("/verify")
        def verify(body: dict[str, str]) -> dict[str, Any]:
            if self.registry_down:
                raise HTTPException(503, "maintenance")
            document = base64.b64decode(body["document"])
            copy_id = str(json.loads(document)["annotation"]["copy_id"])
            self.verified.append(copy_id)
            made = self.made.get(copy_id)
            if made is None:
                checks = [("copy_registry", "failed", "no annotated copy was made under this id")]
            elif made != document:
                checks = [
                    ("registry", "failed", "the copy's licence differs from the one issued"),
                    ("copy_registry", "failed", "the copy differs from the one made under its id"),
                ]
            else:
                checks = [
                    ("registry", "passed", "the copy's licence is the one issued"),
                    ("copy_registry", "passed", "the copy is the one made under its id"),
                ]
            return {
                "valid": all(status == "passed" for _, status, _ in checks),
                "checks": [
                    {"name": name, "status": status, "reason": reason, "code": None}
                    for name, status, reason in checks
                ],
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
        # elicense:consent: the applicant agrees that the hall fetches their licences.
        return self.bearer(
            sub, ("openid", "elicense:consent"), user_type=user_type, acr="real-name",
            region=REGION,
        )  # fmt: skip

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
    seals = seal_kit()
    library = FakeLibrary(mint, seals)
    library_client = TestClient(library.app(), base_url="http://elicense.test")
    bundle = tmp_path / "seal-roots.pem"
    bundle.write_bytes(seals.root_pem())
    app.state.hall.elicense = ElicenseClient(
        "http://elicense.test",
        region_code=REGION,
        token=lambda: mint.token(
            sub="hall-340000", scopes=("elicense:share",), extra={"client_id": "hall-340000"}
        ),
        trust=TrustRoots(bundle=bundle),
        client=library_client,
    )
    try:
        with TestClient(app) as client:
            yield Hall(client, app, mint, library)
    finally:
        app.state.kit.engine.dispose()
