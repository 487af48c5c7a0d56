"""Signing and verification: authorised signers, the five steps and why each one fails,
offline verification with `zwfw seal verify`, and OpenSSL cross-verification both ways."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from zwfw.cli import app as zwfw_cli
from zwfw.crypto import ses
from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertProfile, SM2Certificate
from zwfw.services.kit import audit, kit_state

from .conftest import Tokens, seal_body

DOCUMENT = "<证照>营业执照 1.2.156.3005.2</证照>".encode()
SM2_ID = "distid:1234567812345678"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign(client: TestClient, tokens: Tokens, es_id: str, sub: str = "officer-1", **body: Any):
    payload = body or {"content": b64(DOCUMENT), "property_info": "/Doc_0/Signs/Sign_0"}
    return client.post(f"/seals/{es_id}/sign", json=payload, headers=tokens.user(sub, "eseal:sign"))


def verify(client: TestClient, signature: bytes | str, content: bytes = DOCUMENT) -> dict:
    sig = signature if isinstance(signature, str) else b64(signature)
    response = client.post("/verify", json={"signature": sig, "content": b64(content)})
    assert response.status_code == 200, response.text
    return response.json()


def statuses(result: dict) -> list[str]:
    return [s["status"] for s in result["steps"]]


def only_failure(result: dict, step: int, code: str) -> None:
    expected = ["passed"] * 5
    expected[step - 1] = "failed"
    assert result["valid"] is False
    assert statuses(result) == expected, [s["reason"] for s in result["steps"]]
    assert result["steps"][step - 1]["code"] == code


def private_key(app: FastAPI, key_id: str) -> SM2PrivateKey:
    """Test-only access to a stored key, to forge what an attacker could not."""
    with kit_state(app).sessions() as session:
        return app.state.eseal.keys.get(session, key_id)


def test_authorised_signer_signs_and_anyone_verifies(
    app: FastAPI, client: TestClient, tokens: Tokens, seal: dict[str, Any]
) -> None:
    signed = sign(client, tokens, seal["es_id"])
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["signer"] == "张三"
    assert body["data_hash"] == sm3(DOCUMENT).hex()
    der = base64.b64decode(body["signature"])
    parsed = ses.parse_signature(der)
    assert parsed["to_sign"]["property_info"].native == "/Doc_0/Signs/Sign_0"
    assert parsed["to_sign"]["time_info"].native is not None
    result = verify(client, body["signature"])
    assert result["valid"] is True
    assert statuses(result) == ["passed"] * 5
    assert result["es_id"] == seal["es_id"]
    assert result["seal_status"]["status"] == "valid"
    by_digest = client.post(
        "/verify", json={"signature": body["signature"], "digest": sm3(DOCUMENT).hex()}
    )
    assert by_digest.json()["valid"] is True
    digest_signed = sign(client, tokens, seal["es_id"], digest=sm3(b"other").hex())
    assert verify(client, digest_signed.json()["signature"], b"other")["valid"] is True
    with kit_state(app).sessions() as session:
        rows = session.execute(
            select(audit.audit_log).where(audit.audit_log.c.action == "seal.sign")
        ).all()
    assert [(r.actor, r.result) for r in rows] == [("officer-1", "success")] * 2
    assert rows[0].detail["data_hash"] == sm3(DOCUMENT).hex()


def test_signing_needs_the_scope_and_a_place_on_the_signer_list(
    app: FastAPI, client: TestClient, tokens: Tokens, seal: dict[str, Any]
) -> None:
    es_id = seal["es_id"]
    no_scope = client.post(
        f"/seals/{es_id}/sign",
        json={"content": b64(DOCUMENT)},
        headers=tokens.user("officer-1", "eseal:read"),
    )
    assert no_scope.status_code == 403
    stranger = sign(client, tokens, es_id, sub="officer-9")
    assert stranger.status_code == 403
    assert "not an authorised signer" in stranger.json()["detail"]
    assert sign(client, tokens, "340000DOESNOTEXIST").status_code == 404
    both = sign(client, tokens, es_id, content=b64(b"x"), digest=sm3(b"x").hex())
    assert both.status_code == 400
    short = sign(client, tokens, es_id, digest="abcd")
    assert short.status_code == 400
    with kit_state(app).sessions() as session:
        refused = session.execute(
            select(audit.audit_log.c.actor, audit.audit_log.c.result).where(
                audit.audit_log.c.action == "seal.sign"
            )
        ).all()
    assert ("officer-9", "refused:403") in [tuple(r) for r in refused]


def test_tampered_content_fails_step_5(client, tokens, seal) -> None:
    sig = sign(client, tokens, seal["es_id"]).json()["signature"]
    only_failure(verify(client, sig, DOCUMENT + b" "), 5, "hash_mismatch")


def test_tampered_signature_fails_step_1(client, tokens, seal) -> None:
    der = bytearray(base64.b64decode(sign(client, tokens, seal["es_id"]).json()["signature"]))
    der[-1] ^= 0x01
    only_failure(verify(client, bytes(der)), 1, "bad_signature")
    garbage = verify(client, b"\x30\x03\x02\x01\x01")
    assert garbage["valid"] is False
    assert garbage["steps"][0]["code"] == "malformed"
    not_b64 = client.post("/verify", json={"signature": "%%%", "content": b64(DOCUMENT)})
    assert not_b64.status_code == 400
    assert not_b64.headers["content-type"] == "application/problem+json"


def test_suspended_and_revoked_seals_fail_step_3_and_cannot_sign(client, tokens, seal) -> None:
    es_id = seal["es_id"]
    sig = sign(client, tokens, es_id).json()["signature"]
    client.post(f"/seals/{es_id}/suspend", json={"reason": "核查中"}, headers=tokens.admin())
    suspended = verify(client, sig)
    only_failure(suspended, 3, "seal_suspended")
    assert suspended["seal_status"]["reason"] == "核查中"
    assert sign(client, tokens, es_id).status_code == 409
    client.post(f"/seals/{es_id}/revoke", json={"reason": "印章注销"}, headers=tokens.admin())
    revoked = verify(client, sig)
    only_failure(revoked, 3, "seal_revoked")
    assert revoked["seal_status"]["status"] == "revoked"
    refused = sign(client, tokens, es_id)
    assert refused.status_code == 409
    assert "revoked" in refused.json()["detail"]


def test_signature_made_after_the_seal_expired_fails_step_3(
    app: FastAPI, client: TestClient, tokens: Tokens
) -> None:
    now = datetime.now(UTC)
    made = client.post(
        "/seals",
        json=seal_body(valid_end=(now + timedelta(hours=1)).isoformat()),
        headers=tokens.admin(),
    )
    seal = made.json()
    later = now + timedelta(hours=2)
    app.state.eseal.clock = lambda: later + timedelta(minutes=1)
    assert sign(client, tokens, seal["es_id"]).status_code == 409
    signer = SM2Certificate.from_pem(seal["signers"][0]["certificate"].encode())
    forged = ses.sign(
        base64.b64decode(seal["seal"]),
        signer,
        private_key(app, f"signer-{seal['es_id']}-0"),
        content=DOCUMENT,
        time_info=later,
    )
    only_failure(verify(client, forged), 3, "seal_expired")


def test_the_status_and_signing_agree_on_the_last_second_of_the_period(
    app: FastAPI, client: TestClient, tokens: Tokens
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    seal = client.post(
        "/seals", json=seal_body(valid_end=end.isoformat()), headers=tokens.admin()
    ).json()
    es_id = seal["es_id"]
    for moment, within in (
        (end + timedelta(microseconds=999_999), True),  # the last second counts, whole
        (end + timedelta(seconds=1), False),
    ):
        app.state.eseal.clock = lambda moment=moment: moment
        status = client.get(f"/seals/{es_id}/status").json()
        assert status["within_validity"] is within, (moment, status)
        assert (sign(client, tokens, es_id).status_code == 200) is within, moment


def test_signer_missing_from_the_seal_fails_step_2(
    app: FastAPI, client: TestClient, tokens: Tokens, seal: dict[str, Any]
) -> None:
    other = client.post(
        "/seals",
        json=seal_body(signers=[{"subject": "officer-2", "name": "李四"}]),
        headers=tokens.admin(),
    ).json()
    outsider = SM2Certificate.from_pem(other["signers"][0]["certificate"].encode())
    tbs = ses.build_tbs(
        base64.b64decode(seal["seal"]),
        data_hash=sm3(DOCUMENT),
        time_info=datetime.now(UTC),
        property_info="",
    )
    forged = ses.sign_tbs(tbs, outsider, private_key(app, f"signer-{other['es_id']}-0"))
    only_failure(verify(client, forged), 2, "signer_not_listed")


def test_altered_seal_fails_step_3_bad_maker_signature(
    app: FastAPI, client: TestClient, seal: dict[str, Any]
) -> None:
    parsed = ses.parse_seal(base64.b64decode(seal["seal"]))
    parsed["e_seal_info"]["property"]["name"] = ses.core.UTF8String("伪造的合同专用章")
    altered = ses.SESeal.load(parsed.dump(force=True))
    signer = SM2Certificate.from_pem(seal["signers"][0]["certificate"].encode())
    tbs = ses.build_tbs(
        altered, data_hash=sm3(DOCUMENT), time_info=datetime.now(UTC), property_info=""
    )
    forged = ses.sign_tbs(tbs, signer, private_key(app, f"signer-{seal['es_id']}-0"))
    result = verify(client, forged)
    only_failure(result, 3, "bad_maker_signature")
    assert result["seal_name"] == "伪造的合同专用章"


def test_signer_certificate_expired_at_signing_time_fails_step_4(
    app: FastAPI, client: TestClient, seal: dict[str, Any]
) -> None:
    svc = app.state.eseal
    with kit_state(app).sessions() as session:
        ca = svc.authority.ca(svc.keys, session)
        maker_key = svc.keys.get(session, svc.authority.maker_key_id)
    key = SM2PrivateKey.generate()
    expired = ca.issue(
        key.public_key,
        "过期签章人",
        CertProfile.SIGNER,
        valid_from=datetime.now(UTC) - timedelta(days=2),
        valid_days=1,
    )
    start, end = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(days=1)
    reseal = ses.make_seal(
        maker_cert=svc.authority.maker, maker_key=maker_key, es_id=seal["es_id"], name="印章",
        seal_type=1, signer_certs=[expired], picture=ses.SealPicture("PNG", b"\x89PNG", 40, 40),
        valid_start=start, valid_end=end,
    )  # fmt: skip
    forged = ses.sign(reseal, expired, key, content=DOCUMENT)
    only_failure(verify(client, forged), 4, "signer_expired")


def test_zwfw_seal_verify_works_offline_on_what_the_service_returns(
    client: TestClient, tokens: Tokens, seal: dict[str, Any], tmp_path: Path
) -> None:
    signature = sign(client, tokens, seal["es_id"]).json()["signature"]
    (tmp_path / "root.pem").write_text(client.get("/trust").json()["root_certificate"])
    (tmp_path / "doc").write_bytes(DOCUMENT)
    (tmp_path / "doc.sig").write_text(signature)
    runner = CliRunner()
    args = ["seal", "verify", str(tmp_path / "doc"), str(tmp_path / "doc.sig")]
    args += ["--trust", str(tmp_path / "root.pem")]
    ok = runner.invoke(zwfw_cli, args)
    assert ok.exit_code == 0, ok.output
    assert "VALID" in ok.output
    (tmp_path / "doc").write_bytes(DOCUMENT + b"!")
    bad = runner.invoke(zwfw_cli, args)
    assert bad.exit_code == 1
    assert "content altered" in bad.output


def openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    # Cross-verification with openssl is required: without it these tests fail, never skip.
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, timeout=60, check=False
    )


def test_openssl_verifies_the_service_signature_and_certificates(
    client: TestClient, tokens: Tokens, seal: dict[str, Any], tmp_path: Path
) -> None:
    der = base64.b64decode(sign(client, tokens, seal["es_id"]).json()["signature"])
    parsed = ses.parse_signature(der)
    (tmp_path / "tbs.der").write_bytes(parsed["to_sign"].dump())
    (tmp_path / "sig.der").write_bytes(parsed["signature"].native)
    (tmp_path / "signer.pem").write_text(seal["signers"][0]["certificate"])
    (tmp_path / "root.pem").write_text(client.get("/trust").json()["root_certificate"])
    args = ["pkeyutl", "-verify", "-certin", "-inkey", tmp_path / "signer.pem", "-rawin"]
    args += ["-digest", "sm3", "-pkeyopt", SM2_ID, "-in", tmp_path / "tbs.der"]
    out = openssl(*args, "-sigfile", tmp_path / "sig.der")
    assert out.returncode == 0, out.stderr
    chain = openssl(
        "verify", "-vfyopt", SM2_ID, "-CAfile", tmp_path / "root.pem", tmp_path / "signer.pem"
    )
    assert chain.returncode == 0, chain.stderr
    (tmp_path / "tbs.der").write_bytes(parsed["to_sign"].dump() + b"\x00")
    assert openssl(*args, "-sigfile", tmp_path / "sig.der").returncode != 0


def test_service_verifies_a_signature_openssl_made(
    app: FastAPI, client: TestClient, seal: dict[str, Any], tmp_path: Path
) -> None:
    key = private_key(app, f"signer-{seal['es_id']}-0")
    (tmp_path / "key.pem").write_bytes(key.to_pem())
    signer = SM2Certificate.from_pem(seal["signers"][0]["certificate"].encode())
    tbs = ses.build_tbs(
        base64.b64decode(seal["seal"]),
        data_hash=sm3(DOCUMENT),
        time_info=datetime.now(UTC),
        property_info="openssl",
    )
    (tmp_path / "tbs.der").write_bytes(tbs.dump())
    made = openssl(
        "pkeyutl", "-sign", "-inkey", tmp_path / "key.pem", "-rawin", "-digest", "sm3",
        "-pkeyopt", SM2_ID, "-in", tmp_path / "tbs.der", "-out", tmp_path / "sig.der",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assembled = ses.SESSignature(
        {
            "to_sign": tbs,
            "cert": signer.der,
            "signature_alg_id": "1.2.156.10197.1.501",
            "signature": (tmp_path / "sig.der").read_bytes(),
        }
    ).dump()
    result = verify(client, assembled)
    assert result["valid"] is True, result["steps"]
    assert result["property_info"] == "openssl"
