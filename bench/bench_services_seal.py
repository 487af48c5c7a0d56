"""E-seal and e-licence throughput through HTTP, against SM2 itself measured in the same run.

Each service runs as `zwfw serve NAME` (uvicorn, one worker, its own process) on 127.0.0.1 with
a SQLite file and a fresh KEK. The load comes from this process: 8 asyncio connections, each
kept alive for the whole run and sending its next request as soon as the previous answer is in
(plain HTTP/1.1 over asyncio streams, answers parsed with httptools, the parser uvicorn uses),
so the client costs far less CPU than the server and the figure is the server's.

Figures:
- seal verify requests/s (`POST /verify`, all five steps + registry status) against raw SM2
  verify of the binding (gmalglib) — the goal is a ratio of at least 0.5 — and against
  `openssl speed sm2` verify;
- seal sign requests/s (`POST /seals/{id}/sign`: token check, signer list, SM2 sign, audit
  record committed) against `openssl speed sm2` sign;
- licence verify requests/s (`GET /verify/{identifier}`: identifier, seal's five steps, issuer
  seal, current status) against raw SM2 verify.

Verify requests cycle through 256 different signatures so that no per-signature cache can
make the figure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httptools
import httpx
import yaml
from bench_crypto import openssl_speed_sm2
from figure import Figure, rate
from gmalglib.sm2 import SM2 as RawSM2
from joserfc import jwt
from joserfc.jwk import ECKey

from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.crypto.sm2 import SM2PrivateKey, signature_to_raw

ZWFW = Path(sys.executable).with_name("zwfw")
ISSUER = "https://idp.bench.zwfw"
CONNECTIONS = 8
SECONDS = 4.0
SIGNATURES = 256
ISSUER_CODE = "11340100MB0000000T"
TYPE_CODE = "11100000000013338W001"
PLATFORM = "elicense-platform"


class Mint:
    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": "bench", "alg": "ES256"})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def bearer(self, sub: str, audience: str, *scopes: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": audience, "sub": sub, "client_id": sub,
                  "iat": now, "exp": now + 3600, "scope": " ".join(scopes)}  # fmt: skip
        return "Bearer " + jwt.encode({"alg": "ES256", "kid": "bench"}, claims, self.key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(name: str, workdir: Path, settings: dict[str, Any], kek: str) -> Iterator[str]:
    port = _free_port()
    config = workdir / f"{name}.yaml"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True))
    env = {**os.environ, "ZWFW_KEK": kek}
    process = subprocess.Popen(
        [str(ZWFW), "serve", name, "--config", str(config), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / f"{name}.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / f"{name}.log").read_text()[-2000:])
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _request(method: str, path: str, host: str, body: bytes | None, auth: str | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    if auth:
        lines.append(f"Authorization: {auth}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class _Response:
    def __init__(self) -> None:
        self.done = False
        self.body = b""

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        self.done = True


async def _connection(base: str, requests: list[bytes], until: float, check) -> int:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    count = 0
    try:
        while time.perf_counter() < until:
            writer.write(requests[count % len(requests)])
            response = _Response()
            parser = httptools.HttpResponseParser(response)
            while not response.done:
                parser.feed_data(await reader.read(65536))
            if parser.get_status_code() != 200 or not check(response.body):
                status = parser.get_status_code()
                raise RuntimeError(f"unexpected answer {status}: {response.body[:300]!r}")
            count += 1
    finally:
        writer.close()
    return count


def http_rate(base: str, requests: list[bytes], check=lambda body: True) -> float:
    async def run() -> float:
        await asyncio.gather(*(_connection(base, requests[:1], time.perf_counter() + 0.5, check)
                               for _ in range(CONNECTIONS)))  # fmt: skip
        start = time.perf_counter()
        until = start + SECONDS
        counts = await asyncio.gather(
            *(_connection(base, requests[i::CONNECTIONS] or requests, until, check)
              for i in range(CONNECTIONS))
        )  # fmt: skip
        return sum(counts) / (time.perf_counter() - start)

    return asyncio.run(run())


def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    raw = b"".join(b"\x00" + b"\xc0\x00\x00" * 64 for _ in range(64))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def figures() -> list[Figure]:
    key = SM2PrivateKey.generate()
    message = os.urandom(256)
    raw_engine = RawSM2(pk=key.public_key.point)
    raw_sig = signature_to_raw(key.sign(message))
    ossl_sign, ossl_verify = openssl_speed_sm2()
    raw_verify = max(
        rate(lambda: raw_engine.verify(message, raw_sig), seconds=0.7) for _ in range(3)
    )

    mint = Mint()
    kek = KeyEncryptionKey.generate().to_text()
    common = {"log_level": "WARNING", "auth": {"issuer": ISSUER, "jwks": mint.jwks()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        eseal_settings = {**common, "database_url": f"sqlite:///{work / 'eseal.sqlite3'}"}
        eseal_settings["auth"] = {**common["auth"], "audience": "eseal"}
        with serve("eseal", work, eseal_settings, kek) as eseal:
            admin = mint.bearer("admin", "eseal", "eseal:admin")
            now = datetime.now(UTC)
            made = httpx.post(f"{eseal}/seals", headers={"Authorization": admin}, json={
                "credit_code": ISSUER_CODE, "organisation": "合肥市市场监督管理局",
                "category": "business", "name": "电子证照专用章",
                "picture": {"png": base64.b64encode(_png()).decode()},
                "valid_end": (now + timedelta(days=365)).isoformat(),
                "signers": [{"subject": "officer", "name": "签章人"},
                            {"subject": PLATFORM, "name": "电子证照库"}],
            }, timeout=30)  # fmt: skip
            made.raise_for_status()
            es_id = made.json()["es_id"]
            signer = mint.bearer("officer", "eseal", "eseal:sign")
            host = eseal.removeprefix("http://")
            documents = [uuid.uuid4().bytes * 8 for _ in range(SIGNATURES)]
            with httpx.Client(base_url=eseal, headers={"Authorization": signer}) as client:
                signatures = [
                    client.post(f"/seals/{es_id}/sign", json={
                        "content": base64.b64encode(doc).decode()}).json()["signature"]
                    for doc in documents
                ]  # fmt: skip
            verify_requests = [
                _request("POST", "/verify", host, json.dumps({
                    "signature": sig, "content": base64.b64encode(doc).decode()}).encode(), None)
                for sig, doc in zip(signatures, documents, strict=True)
            ]  # fmt: skip
            valid = b'"valid":true'
            seal_verify = http_rate(eseal, verify_requests, lambda body: valid in body)
            digest = {"digest": "ab" * 32, "property_info": "bench"}
            sign_request = _request("POST", f"/seals/{es_id}/sign", host,
                                    json.dumps(digest).encode(), signer)  # fmt: skip
            seal_sign = http_rate(eseal, [sign_request])
            licence_verify = _licence_rate(work, mint, kek, eseal, es_id, common)
    return [
        Figure("eseal POST /verify through HTTP (1 worker)", seal_verify, "requests/s",
               "raw gmalglib sm2 verify", raw_verify),
        Figure("eseal POST /verify through HTTP (1 worker), vs openssl", seal_verify,
               "requests/s", "openssl speed sm2 verify", ossl_verify),
        Figure("eseal POST /seals/{id}/sign through HTTP (1 worker)", seal_sign, "requests/s",
               "openssl speed sm2 sign", ossl_sign),
        Figure("elicense GET /verify/{identifier} through HTTP (1 worker)", licence_verify,
               "requests/s", "raw gmalglib sm2 verify", raw_verify),
    ]  # fmt: skip


def _licence_rate(
    work: Path, mint: Mint, kek: str, eseal: str, es_id: str, common: dict[str, Any]
) -> float:
    """Issue licences through an in-process e-licence app sealing over HTTP, then serve that
    database with `zwfw serve elicense` and measure verification by identifier."""
    from fastapi.testclient import TestClient

    from zwfw.services.elicense import ElicenseSettings, SealClient, SealServiceConfig, build
    from zwfw.services.kit import migrate

    settings = {
        **common,
        "database_url": f"sqlite:///{work / 'elicense.sqlite3'}",
        "auth": {**common["auth"], "audience": "elicense"},
        "issuers": {ISSUER_CODE: {"name": "合肥市市场监督管理局", "es_id": es_id}},
        "eseal": {"base_url": eseal},
    }
    seals = SealClient(
        SealServiceConfig(base_url=eseal),
        token=lambda: mint.bearer(PLATFORM, "eseal", "eseal:sign").removeprefix("Bearer "),
    )
    app = build(ElicenseSettings(**settings), seal_client=seals)
    migrate(app)
    issuer = {"Authorization": mint.bearer("regulator", "elicense", "elicense:issue",
                                           "elicense:admin")}  # fmt: skip
    identifiers = []
    with TestClient(app) as client:
        client.post("/types", headers=issuer, json={
            "type_code": TYPE_CODE, "name": "营业执照",
            "defining_authority_name": "国家市场监督管理总局"}).raise_for_status()  # fmt: skip
        for n in range(64):
            response = client.post("/licences", headers=issuer, json={
                "type_code": TYPE_CODE, "issuer_code": ISSUER_CODE,
                "licence_number": f"N{n}", "jurisdiction": "340104",
                "holder": {"name": "张三", "code": "340104199001011234",
                           "sub": f"h{n}"}})  # fmt: skip
            response.raise_for_status()
            identifiers.append(response.json()["identifier"])
    app.state.kit.engine.dispose()
    with serve("elicense", work, settings, kek) as elicense:
        host = elicense.removeprefix("http://")
        requests = [_request("GET", f"/verify/{i}", host, None, None) for i in identifiers]
        return http_rate(elicense, requests, lambda body: b'"valid":true' in body)
