"""Problem+json for every failure kind, request ids and security headers."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from kit_example_service import build
from kit_tokens import TokenMint

from zwfw.services.kit import migrate

PROBLEM = "application/problem+json"
RESIDENT_ID = "110101199003074578"


def _bearer(mint: TokenMint, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint.token(scopes=scopes)}"}


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    _assert_problem(client.get("/no/such/thing"), 404)


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/healthz")
    _assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


def test_validation_problem_lists_invalid_fields_without_echoing_input(
    client: TestClient, mint: TokenMint
) -> None:
    response = client.post(
        "/notes",
        json={"code": "", "copies": "13812345678"},
        headers=_bearer(mint, "notes:write"),
    )
    body = _assert_problem(response, 422)
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"body.code", "body.text", "body.copies"}
    assert "13812345678" not in response.text


def test_missing_resource_is_a_404_problem_with_personal_data_masked(client: TestClient) -> None:
    response = client.get(f"/notes/{RESIDENT_ID}")
    body = _assert_problem(response, 404)
    assert RESIDENT_ID not in response.text
    assert body["detail"].startswith("note 110")


def test_duplicate_is_a_409_problem(client: TestClient, mint: TokenMint) -> None:
    note = {"code": "n1", "text": "first"}
    assert client.post("/notes", json=note, headers=_bearer(mint, "notes:write")).status_code == 201
    response = client.post("/notes", json=note, headers=_bearer(mint, "notes:write"))
    assert _assert_problem(response, 409)["detail"] == "note n1 already exists"


def test_internal_error_says_nothing_internal_but_carries_the_request_id(
    client: TestClient, json_logs
) -> None:
    response = client.get("/boom", headers={"X-Request-ID": "trace-boom-1"})
    body = _assert_problem(response, 500)
    assert body["request_id"] == "trace-boom-1"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    # The details go to the log instead, under the same request id.
    errors = [r for r in json_logs.records() if r["message"] == "unhandled error"]
    assert errors
    assert errors[0]["request_id"] == "trace-boom-1"
    assert "RuntimeError" in errors[0]["exception"]


def test_a_lost_database_connection_is_a_503_problem_to_retry(
    client: TestClient, json_logs
) -> None:
    response = client.get("/database-gone")
    body = _assert_problem(response, 503)
    assert body["detail"] == "the database is unavailable for the moment; retry shortly"
    assert response.headers["retry-after"] == "1"
    assert "SELECT" not in response.text
    assert [r for r in json_logs.records() if r["message"] == "database unavailable"]


def test_a_value_the_database_cannot_hold_is_a_422_problem(client: TestClient, json_logs) -> None:
    response = client.get("/out-of-range/41646889395")
    body = _assert_problem(response, 422)
    assert body["detail"] == "a value of the request is out of the range the service accepts"
    assert "SELECT" not in response.text
    assert "41646889395" not in response.text
    assert [r for r in json_logs.records() if r["message"] == "value refused by the database"]


def test_security_headers_on_success_and_failure(client: TestClient) -> None:
    for response in (client.get("/healthz"), client.get("/missing"), client.get("/boom")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in response.headers


def test_hsts_when_served_over_https(make_settings: Callable) -> None:
    app = build(make_settings(public_base_url="https://hall.example.gov.cn"))
    with TestClient(app) as client:
        assert "max-age=" in client.get("/healthz").headers["strict-transport-security"]


def test_sane_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123.4:5_6"})
    assert response.headers["x-request-id"] == "abc-123.4:5_6"


def test_insane_or_personal_request_id_is_replaced(client: TestClient) -> None:
    for bad in ("has space", "x" * 300, "<script>", RESIDENT_ID):
        response = client.get("/healthz", headers={"X-Request-ID": bad})
        generated = response.headers["x-request-id"]
        assert generated != bad
        assert len(generated) == 32


def test_generated_request_ids_differ(client: TestClient) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    assert first != client.get("/healthz").headers["x-request-id"]


def test_healthz_does_not_need_the_database(make_settings: Callable) -> None:
    app = build(make_settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with TestClient(app) as client:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        ready = client.get("/readyz")
        _assert_problem(ready, 503)
        assert ready.json()["detail"] == "the database is unreachable"
        assert "127.0.0.1" not in ready.text


def test_service_settings_reach_endpoints(client: TestClient) -> None:
    assert client.get("/greeting").json() == {"greeting": "你好"}


def test_database_session_rolls_back_when_the_endpoint_fails(
    client: TestClient, mint: TokenMint, app
) -> None:
    # The second note collides inside the same request: nothing of it may remain.
    client.post("/notes", json={"code": "dup", "text": "one"}, headers=_bearer(mint, "notes:write"))
    client.post("/notes", json={"code": "dup", "text": "two"}, headers=_bearer(mint, "notes:write"))
    assert client.get("/notes/dup").json()["text"] == "one"
    migrate(app)  # idempotent: nothing to do, nothing broken
    assert client.get("/readyz").status_code == 200
