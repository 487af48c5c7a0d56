"""Holder access, annotated copies, status, verification, usage records, the face PDF."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdf
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from zwfw.services.elicense import cli as licence_cli

from .conftest import Tokens


def consent(tokens: Tokens, sub: str = "holder-a") -> str:
    return tokens.user(sub, "elicense:consent")


def copy_request(tokens: Tokens, client: TestClient, identifier: str, **overrides: Any):
    body = {
        "cause": "办理食品经营许可（免提交营业执照）",
        "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        "holder_token": consent(tokens),
    }
    body.update(overrides)
    return client.post(f"/licences/{identifier}/copies", json=body, headers=tokens.organisation())


def verify(client: TestClient, document: str, signature: str) -> dict[str, Any]:
    response = client.post("/verify", json={"document": document, "signature": signature})
    assert response.status_code == 200, response.text
    return response.json()


def failed(result: dict[str, Any]) -> dict[str, str | None]:
    return {c["name"]: c["code"] for c in result["checks"] if c["status"] == "failed"}


def test_holders_see_their_own_licences_and_nobody_elses(
    client: TestClient, tokens: Tokens, issue
) -> None:
    mine = issue("holder-a")
    theirs = issue("holder-b", holder={"name": "李四", "code": "340104199002020022",
                                       "code_type": "111", "sub": "holder-b"})  # fmt: skip
    listed = client.get("/me/licences", headers=tokens.holder("holder-a")).json()
    assert [entry["identifier"] for entry in listed] == [mine["identifier"]]
    own = client.get(f"/me/licences/{mine['identifier']}", headers=tokens.holder("holder-a"))
    assert own.status_code == 200
    assert own.json()["metadata"]["holder_name"] == "张三"
    stolen = client.get(f"/me/licences/{theirs['identifier']}", headers=tokens.holder("holder-a"))
    missing = client.get(
        f"/me/licences/{theirs['identifier'][:-3]}999.X", headers=tokens.holder("holder-a")
    )
    assert stolen.status_code == missing.status_code == 404
    assert stolen.json()["title"] == missing.json()["title"]
    for path in ("face.pdf", "usage"):
        other = client.get(
            f"/me/licences/{theirs['identifier']}/{path}", headers=tokens.holder("holder-a")
        )
        assert other.status_code == 404
    assert client.get("/me/licences").status_code == 401


def test_annotated_copy_states_cause_and_expiry_and_verifies(
    client: TestClient, tokens: Tokens, issue
) -> None:
    licence = issue()
    response = copy_request(tokens, client, licence["identifier"])
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["cause"] == "办理食品经营许可（免提交营业执照）"
    assert copy["made_by"] == "hall-340000"
    document = base64.b64decode(copy["document"]).decode()
    assert "办理食品经营许可" in document
    assert copy["expires_at"][:10] in document
    result = verify(client, copy["document"], copy["signature"])
    assert result["valid"] is True, result["checks"]
    assert result["kind"] == "copy"
    assert result["cause"] == copy["cause"]
    assert result["status"]["code"] == "01"
    assert [s["status"] for s in result["seal"]["steps"]] == ["passed"] * 5


def test_copy_needs_the_holders_consent_and_respects_limits(
    client: TestClient, tokens: Tokens, issue
) -> None:
    licence = issue()
    identifier = licence["identifier"]
    other_holder = copy_request(tokens, client, identifier, holder_token=consent(tokens, "x"))
    assert other_holder.status_code == 404
    no_consent_scope = copy_request(
        tokens, client, identifier, holder_token=tokens.user("holder-a", "elicense:read")
    )
    assert no_consent_scope.status_code == 403
    forged = copy_request(tokens, client, identifier, holder_token="not-a-token")
    assert forged.status_code == 401
    assert "holder_token" in forged.json()["detail"]
    too_long = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    limited = copy_request(tokens, client, identifier, expires_at=too_long)
    assert limited.status_code == 400
    assert "30 days" in limited.json()["detail"]
    past = copy_request(tokens, client, identifier, expires_at="2020-01-01T00:00:00+08:00")
    assert past.status_code == 400
    no_share = client.post(
        f"/licences/{identifier}/copies",
        json={"cause": "x", "expires_at": too_long, "holder_token": consent(tokens)},
        headers=tokens.holder("holder-a"),
    )
    assert no_share.status_code == 403


def test_expired_copy_fails_verification_online_and_offline(
    app: FastAPI, client: TestClient, eseal_client: TestClient, tokens: Tokens, issue,
    tmp_path: Path,
) -> None:  # fmt: skip
    licence = issue()
    copy = copy_request(
        tokens, client, licence["identifier"],
        expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    ).json()  # fmt: skip
    (tmp_path / "copy.json").write_bytes(base64.b64decode(copy["document"]))
    (tmp_path / "copy.sig").write_text(copy["signature"])
    (tmp_path / "root.pem").write_text(eseal_client.get("/trust").json()["root_certificate"])
    root = typer.Typer()
    licence_cli.register(root)
    runner = CliRunner()
    args = ["licence", "verify", str(tmp_path / "copy.json"), str(tmp_path / "copy.sig")]
    args += ["--trust", str(tmp_path / "root.pem")]
    fresh = runner.invoke(root, args)
    assert fresh.exit_code == 0, fresh.output
    assert "办理食品经营许可" in fresh.output
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    expired = runner.invoke(root, [*args, "--at", later])
    assert expired.exit_code == 1
    assert "copy_expiry" in expired.output
    assert "expired" in expired.output
    app.state.elicense.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    online = verify(client, copy["document"], copy["signature"])
    assert failed(online) == {"copy_expiry": "copy_expired"}
    usage = runner.invoke(root, ["licence", "verify", str(tmp_path / "nope"), str(tmp_path)])
    assert usage.exit_code == 2


def test_tampered_or_foreign_documents_fail_the_right_check(
    client: TestClient, tokens: Tokens, issue
) -> None:
    licence = issue()
    document = base64.b64decode(licence["document"])
    tampered = document.replace("张三".encode(), "李四".encode())
    result = verify(client, base64.b64encode(tampered).decode(), licence["signature"])
    assert failed(result) == {"seal": "hash_mismatch", "registry": "not_as_issued"}
    spaced = document.replace(b'","', b'", "', 1)
    result = verify(client, base64.b64encode(spaced).decode(), licence["signature"])
    assert "document" in failed(result)
    other = issue()
    swapped = verify(client, licence["document"], other["signature"])
    assert "seal" in failed(swapped)


def test_status_changes_show_in_verification_and_block_copies(
    client: TestClient, tokens: Tokens, issue
) -> None:
    licence = issue()
    identifier = licence["identifier"]
    suspended = client.post(
        f"/licences/{identifier}/status", json={"status": "02", "reason": "涉嫌违法经营"},
        headers=tokens.issuer(),
    )  # fmt: skip
    assert suspended.json()["code"] == "02"
    result = client.get(f"/verify/{identifier}").json()
    assert failed(result) == {"status": "suspended"}
    assert result["licence"]["status"]["reason"] == "涉嫌违法经营"
    assert copy_request(tokens, client, identifier).status_code == 409
    back = client.post(
        f"/licences/{identifier}/status", json={"status": "01", "reason": "整改完成"},
        headers=tokens.issuer(),
    )  # fmt: skip
    assert back.json()["code"] == "01"
    assert client.get(f"/verify/{identifier}").json()["valid"] is True
    client.post(
        f"/licences/{identifier}/status", json={"status": "03", "reason": "吊销"},
        headers=tokens.issuer(),
    )  # fmt: skip
    final = client.post(
        f"/licences/{identifier}/status", json={"status": "01", "reason": "x"},
        headers=tokens.issuer(),
    )  # fmt: skip
    assert final.status_code == 409
    assert failed(client.get(f"/verify/{identifier}").json()) == {"status": "revoked"}


def test_licence_expires_by_date(client: TestClient, tokens: Tokens, issue) -> None:
    licence = issue(valid_from="2020-01-01", valid_until="2021-12-31")
    result = client.get(f"/verify/{licence['identifier']}").json()
    assert failed(result) == {"status": "expired"}
    assert result["status"]["code"] == "05"
    assert copy_request(tokens, client, licence["identifier"]).status_code == 409


def test_verify_by_identifier_rejects_bad_identifiers(client: TestClient, issue) -> None:
    licence = issue()
    good = client.get(f"/verify/{licence['identifier']}")
    assert good.json()["valid"] is True
    assert "holder_name" not in good.text
    broken = licence["identifier"][:-1] + ("0" if licence["identifier"][-1] != "0" else "1")
    bad = client.get(f"/verify/{broken}")
    assert bad.status_code == 400
    assert "check character" in bad.json()["detail"]


def test_every_access_is_a_usage_record_the_holder_sees(
    client: TestClient, tokens: Tokens, issue
) -> None:
    licence = issue()
    identifier = licence["identifier"]
    client.get(f"/me/licences/{identifier}", headers=tokens.holder("holder-a"))
    copy_request(tokens, client, identifier)
    client.get(f"/me/licences/{identifier}/face.pdf", headers=tokens.holder("holder-a"))
    client.get(f"/licences/{identifier}", headers=tokens.issuer())
    records = client.get(f"/me/licences/{identifier}/usage", headers=tokens.holder("holder-a"))
    rows = [(r["actor"], r["actor_kind"], r["action"], r["cause"]) for r in records.json()]
    assert rows == [
        ("holder-a", "holder", "view", "持证人查看"),
        ("hall-340000", "organisation", "copy", "办理食品经营许可（免提交营业执照）"),
        ("holder-a", "holder", "download", "持证人下载照面"),
        ("market-regulator", "issuer", "view", "颁证机构查阅"),
    ]
    assert all(r["at"] for r in records.json())


def test_face_pdf_parses_and_carries_identifier_and_verify_link(
    client: TestClient, tokens: Tokens, issue
) -> None:
    licence = issue()
    response = client.get(
        f"/me/licences/{licence['identifier']}/face.pdf", headers=tokens.holder("holder-a")
    )
    assert response.headers["content-type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(response.content))
    text = reader.pages[0].extract_text()
    assert licence["identifier"] in text
    assert f"https://elicense.test/verify/{licence['identifier']}" in text
    assert "个体工商户营业执照" in text
    assert "340***********1234" in text
