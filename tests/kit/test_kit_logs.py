"""JSON logs, with resident ID numbers and phone numbers never in clear."""

from __future__ import annotations

import io
import json
import logging

from fastapi.testclient import TestClient
from kit_tokens import TokenMint

from zwfw.services.kit import JsonFormatter

RESIDENT_ID = "11010119900307457X"
PHONE = "13812345678"


def test_request_logs_are_json_and_mask_personal_data(
    client: TestClient, mint: TokenMint, json_logs
) -> None:
    client.get(f"/notes/{RESIDENT_ID}", headers={"X-Request-ID": "req-mask-1"})
    client.post(
        "/notes",
        json={"code": PHONE, "text": f"call {PHONE} about {RESIDENT_ID}"},
        headers={"Authorization": f"Bearer {mint.token(sub=RESIDENT_ID, scopes=['notes:write'])}"},
    )
    logging.getLogger("zwfw.test").info(
        "citizen %s phoned from %s", RESIDENT_ID, PHONE, extra={"detail": {"phone": int(PHONE)}}
    )
    text = json_logs.text
    records = json_logs.records()  # every line parses as JSON
    assert records
    assert RESIDENT_ID not in text
    assert RESIDENT_ID.lower() not in text
    assert PHONE not in text
    access = [r for r in records if r["logger"] == "zwfw.access" and r["status"] == 404]
    assert access[0]["request_id"] == "req-mask-1"
    assert access[0]["route"] == "/notes/{code}"
    assert access[0]["path"].startswith("/notes/110")
    mine = [r for r in records if r["logger"] == "zwfw.test"][0]
    assert mine["message"].startswith("citizen 110")
    assert mine["detail"]["phone"] == "138****5678"


def test_health_probes_log_at_debug_only(client: TestClient, json_logs) -> None:
    client.get("/healthz")
    client.get("/greeting")
    levels = {r["path"]: r["level"] for r in json_logs.records() if r["logger"] == "zwfw.access"}
    assert levels == {"/healthz": "DEBUG", "/greeting": "INFO"}


def test_formatter_masks_exception_text() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("zwfw.test.exc")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"bad holder {RESIDENT_ID}")
        except ValueError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "ERROR"
    assert "ValueError: bad holder 110" in entry["exception"]
    assert RESIDENT_ID not in stream.getvalue()
