"""The security suite's 密评 checks, offline: the e-seal register's seals and certificates are
judged SM2 with SM3 (SEC-CRY-001), and a requirement only documents can show is reported
"manual evidence required", never passed (SEC-CRY-002)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from zwfw.crypto import ses
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile, SM2Certificate
from zwfw.harness import results as outcomes
from zwfw.harness.cryptoreview import register_findings
from zwfw.harness.requirements import load_catalog
from zwfw.harness.results import MANUAL_EVIDENCE, aggregate, is_certified

ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
NOW = datetime.now(UTC)


def _register() -> tuple[dict[str, str], dict[str, Any]]:
    """An SM2 register: its trust document and one seal as GET /seals lists it."""
    root = CertificateAuthority.create_root("zwfw 测试根CA", valid_from=NOW - timedelta(days=1))
    maker_key, signer_key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    maker = root.issue(maker_key.public_key, "制章者 340000", CertProfile.SEAL_MAKER)
    signer = root.issue(signer_key.public_key, "合肥市市场监督管理局", CertProfile.SIGNER)
    seal = ses.make_seal(
        maker_cert=maker, maker_key=maker_key, es_id="3400000000007", name="测试章",
        seal_type=1, signer_certs=[signer], picture=ses.SealPicture("PNG", b"png", 30, 30),
        valid_start=NOW - timedelta(minutes=1), valid_end=NOW + timedelta(days=30),
    )  # fmt: skip
    trust = {
        "root_certificate": root.certificate.to_pem().decode(),
        "maker_certificate": maker.to_pem().decode(),
    }
    listed = {
        "es_id": "3400000000007",
        "seal": base64.b64encode(seal).decode(),
        "signers": [_signer(signer)],
    }
    return trust, listed


def _signer(cert: SM2Certificate) -> dict[str, str]:
    return {
        "subject": "signer",
        "certificate": cert.to_pem().decode(),
        "sm3_fingerprint": cert.fingerprint.hex(),
    }


def _ecdsa_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not sm2")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _modes(trust: dict[str, str], seals: list[dict[str, Any]]) -> list[str]:
    return [mode for mode, _ in register_findings(trust, seals)]


def test_an_sm2_register_has_no_finding() -> None:
    trust, seal = _register()
    assert _modes(trust, [seal]) == []


def test_a_trust_certificate_that_is_not_sm2_is_found() -> None:
    trust, seal = _register()
    assert _modes({**trust, "root_certificate": _ecdsa_pem()}, [seal]) == ["certificate-not-sm2"]


def test_a_seal_signed_with_another_algorithm_is_found() -> None:
    trust, seal = _register()
    parsed = ses.parse_seal(base64.b64decode(seal["seal"]))
    parsed["sign_alg_id"] = ECDSA_WITH_SHA256
    other = {**seal, "seal": base64.b64encode(parsed.dump(force=True)).decode()}
    assert _modes(trust, [other]) == ["seal-not-sm2"]
    assert _modes(trust, [{**seal, "seal": "bm90IGEgc2VhbA=="}]) == ["seal-not-sm2"]


def test_signer_certificates_and_fingerprints() -> None:
    trust, seal = _register()
    signer = seal["signers"][0]
    pem = signer["certificate"].encode()
    sha256 = hashlib.sha256(SM2Certificate.from_pem(pem).der).hexdigest()
    assert _modes(trust, [{**seal, "signers": [{**signer, "sm3_fingerprint": sha256}]}]) == [
        "fingerprint-not-sm3"
    ]
    foreign = {**signer, "certificate": _ecdsa_pem()}
    assert _modes(trust, [{**seal, "signers": [foreign]}]) == ["certificate-not-sm2"]


def test_a_manual_evidence_requirement_is_never_passed_nor_blocking() -> None:
    catalog = load_catalog()
    manual = [r.id for r in catalog.requirements if r.manual_evidence]
    assert "SEC-CRY-002" in manual
    nodeid = "security/test_crypto.py::documentary"
    records = [outcomes.TestRecord(nodeid, ("SEC-CRY-002",), "passed")]
    results = {r.requirement.id: r for r in aggregate(catalog, records)}
    result = results["SEC-CRY-002"]
    assert result.status == "not-tested"
    assert result.in_scope is False
    assert result.reason is not None
    assert result.reason.startswith(f"{MANUAL_EVIDENCE}: ")
    assert "SEC-CRY-002" not in [r.requirement.id for r in results.values() if r.status == "pass"]
    only = [r for r in results.values() if r.requirement.id == "SEC-CRY-002"]
    assert is_certified(only)
