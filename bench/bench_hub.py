"""Hub report intake per second: signed case reports over HTTP to one hub worker (uvicorn,
SQLite), each verified (SM2 signature, SM3 digest, nonce) and stored once.

Baseline, same server, same run: ``GET /healthz`` per second (the HTTP floor of the process).
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from figure import Figure, rate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hub"))

from hub_support import (  # noqa: E402
    HUB_AUDIENCE,
    IMPL_340,
    NATIONAL_ISSUER,
    NationalIdP,
    make_province,
)

from zwfw.codes import build_case_number  # noqa: E402
from zwfw.crypto.x509 import CertificateAuthority  # noqa: E402
from zwfw.services.hub import HubSettings, build  # noqa: E402
from zwfw.services.kit import migrate  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _report(n: int) -> dict[str, object]:
    accepted = datetime(2025, 3, 3, 9, 0, tzinfo=UTC).isoformat()
    return {
        "report": "case",
        "version": 1,
        "region_code": "340000",
        # 9999 cases per day: the case-number sequence has four digits.
        "case_number": str(
            build_case_number(IMPL_340, date(2025, 1, 1) + timedelta(days=n // 9999), n % 9999 + 1)
        ),
        "implementation_code": IMPL_340,
        "item_name": "户口迁移",
        "dept_code": IMPL_340[:18],
        "dept_name": "合肥市公安局",
        "user_type": "0",
        "state": "accepted",
        "apply_time": accepted,
        "accept_time": accepted,
        "promised_days": 5,
        "promise_date": "2025-03-10",
        "steps": [{"seq": 1, "nodetype": 1, "noderesult": 4, "time": accepted}],
        "materials": [],
    }


def figures() -> list[Figure]:
    ca = CertificateAuthority.create_root("bench national CA")
    idp = NationalIdP()
    province = make_province(ca, "340000", "安徽省")
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = Path(tmp) / "ca.pem"
        ca_file.write_bytes(ca.certificate.to_pem())
        auth = {"issuer": NATIONAL_ISSUER, "audience": HUB_AUDIENCE, "jwks": idp.jwks()}
        settings = HubSettings(
            database_url=f"sqlite:///{tmp}/hub.sqlite3",
            national_ca_file=ca_file,
            auth=auth,
            log_level="WARNING",
        )
        app = build(settings)
        migrate(app)
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            ops = idp.client_token("ops", "hub:provinces:write")
            token = idp.client_token(province.client_id, "hub:report")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                client.post(
                    "/provinces",
                    json=province.registration(),
                    headers={"Authorization": f"Bearer {ops}"},
                ).raise_for_status()
                counter = iter(range(10**9))

                def intake() -> None:
                    n = next(counter)
                    body = json.dumps(_report(n), separators=(",", ":")).encode()
                    headers = province.signer.headers(
                        "POST", "/reports/cases", body, recipient="hub",
                        idempotency_key=f"bench-case-{n:08}",
                    )  # fmt: skip
                    headers |= {"Authorization": f"Bearer {token}"}
                    response = client.post("/reports/cases", content=body, headers=headers)
                    if response.status_code != 201:
                        raise RuntimeError(f"intake failed: {response.status_code} {response.text}")

                def healthz() -> None:
                    client.get("/healthz").raise_for_status()

                floor = rate(healthz, seconds=2.0)
                reports = rate(intake, seconds=3.0)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    return [
        Figure(
            name="hub signed case-report intake (HTTP, 1 worker, SQLite)",
            value=reports,
            unit="reports/s",
            baseline_name="GET /healthz on the same server",
            baseline_value=floor,
        )
    ]
