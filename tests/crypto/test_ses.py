from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core

from zwfw.crypto import ses
from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import OID_SM2_WITH_SM3, SM2PrivateKey
from zwfw.crypto.x509 import CertProfile

CONTENT = "<Signature>营业执照 电子证照 1.2.156.3005.2</Signature>".encode()
PICTURE = ses.SealPicture("PNG", b"\x89PNG\r\n\x1a\n" + bytes(64), 40, 40)
NOW = datetime.now(UTC).replace(microsecond=0)


def _seal(maker, signers, **overrides) -> bytes:
    args = {
        "maker_cert": maker.cert,
        "maker_key": maker.key,
        "es_id": "3401000000001",
        "name": "合肥市市场监督管理局行政审批专用章",
        "seal_type": 2,
        "signer_certs": [s.cert for s in signers],
        "picture": PICTURE,
        "valid_start": NOW - timedelta(days=10),
        "valid_end": NOW + timedelta(days=365),
    }
    args.update(overrides)
    return ses.make_seal(**args)


@pytest.fixture(scope="module")
def seal_der(maker, signer) -> bytes:
    return _seal(maker, [signer])


@pytest.fixture(scope="module")
def sig_der(seal_der, signer) -> bytes:
    return ses.sign(
        seal_der, signer.cert, signer.key, content=CONTENT, time_info=NOW,
        property_info="/Doc_0/Signs/Sign_0/Signature.xml",
    )  # fmt: skip


def _statuses(result: ses.VerificationResult) -> list[str]:
    return [s.status.value for s in result.steps]


def _only_failure(result: ses.VerificationResult, step: int, code: str) -> None:
    assert not result.valid
    expected = ["passed"] * 5
    expected[step - 1] = "failed"
    assert _statuses(result) == expected, [s.reason for s in result.steps]
    assert result.step(step).code == code


def test_valid_signature_passes_all_five_steps(sig_der, root_ca) -> None:
    result = ses.verify_signature(sig_der, CONTENT, trust_anchors=[root_ca.certificate])
    assert result.valid
    assert _statuses(result) == ["passed"] * 5
    assert [s.name for s in result.steps] == list(ses.STEP_NAMES.values())
    assert result.es_id == "3401000000001"
    assert result.seal_name == "合肥市市场监督管理局行政审批专用章"
    assert result.signer == "合肥市市场监督管理局"
    assert result.time_info == NOW
    assert result.as_dict()["valid"] is True
    by_digest = ses.verify_signature(
        sig_der, digest=sm3(CONTENT), trust_anchors=[root_ca.certificate]
    )
    assert by_digest.valid


def test_seal_round_trips_through_der(seal_der, maker, signer) -> None:
    seal = ses.parse_seal(seal_der)
    assert seal.dump(force=True) == seal_der
    info = seal["e_seal_info"]
    assert info["header"].native == {"id": "ES", "version": 4, "vid": "zwfw"}
    prop = info["property"]
    assert prop["cert_list_type"].native == 1
    assert [bytes(c.native) for c in prop["cert_list"]] == [signer.cert.der]
    assert prop["valid_end"].native == NOW + timedelta(days=365)
    assert info["picture"].native == {
        "type": "PNG", "data": PICTURE.data, "width": 40, "height": 40
    }  # fmt: skip
    assert bytes(seal["cert"].native) == maker.cert.der
    assert seal["sign_alg_id"].dotted == OID_SM2_WITH_SM3
    # The maker's signature covers DER(SES_SealInfo) exactly.
    assert maker.cert.public_key.verify(seal["signed_value"].native, info.dump())


def test_signature_round_trips_and_signs_der_tbs(sig_der, signer) -> None:
    sig = ses.parse_signature(sig_der)
    assert sig.dump(force=True) == sig_der
    tbs = sig["to_sign"]
    assert tbs["version"].native == 4
    assert bytes(tbs["data_hash"].native) == sm3(CONTENT)
    assert tbs["property_info"].native == "/Doc_0/Signs/Sign_0/Signature.xml"
    assert signer.cert.public_key.verify(sig["signature"].native, tbs.dump())
    assert sig["time_stamp"].native is None


def test_openssl_verifies_the_signature_inside_ses_signature(
    sig_der, signer, tmp_path, run_openssl
) -> None:
    sig = ses.parse_signature(sig_der)
    (tmp_path / "tbs.der").write_bytes(sig["to_sign"].dump())
    (tmp_path / "sig.der").write_bytes(sig["signature"].native)
    (tmp_path / "cert.pem").write_bytes(signer.cert.to_pem())
    out = run_openssl(
        "pkeyutl", "-verify", "-certin", "-inkey", tmp_path / "cert.pem", "-rawin",
        "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
        "-in", tmp_path / "tbs.der", "-sigfile", tmp_path / "sig.der",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_cert_digest_list_and_extensions_round_trip(maker, signer, root_ca) -> None:
    ext = ses.Extension("1.2.156.3005.9.1", b"vendor data", critical=True)
    seal_der = _seal(
        maker, [signer], cert_list_type=ses.CertListType.CERT_DIGESTS, extensions=[ext]
    )
    seal = ses.parse_seal(seal_der)
    assert seal.dump(force=True) == seal_der
    digests = seal["e_seal_info"]["property"]["cert_list"].native
    assert digests == [{"type": "SM3", "value": signer.cert.fingerprint}]
    assert seal["e_seal_info"]["ext_datas"].native == [
        {"extn_id": "1.2.156.3005.9.1", "critical": True, "extn_value": b"vendor data"}
    ]
    plain = ses.Extension("1.2.156.3005.9.2", b"x")
    sig_der = ses.sign(
        seal_der, signer.cert, signer.key, content=CONTENT, time_info=NOW, extensions=[plain]
    )
    tbs = ses.parse_signature(sig_der)["to_sign"]
    # critical DEFAULT FALSE is omitted in DER; TBS_Sign.extDatas is [0] EXPLICIT.
    assert tbs["ext_datas"].native == [
        {"extn_id": "1.2.156.3005.9.2", "critical": False, "extn_value": b"x"}
    ]
    assert b"\xa0" in tbs.dump()[-40:]
    result = ses.verify_signature(sig_der, CONTENT, trust_anchors=[root_ca.certificate])
    assert result.valid, [s.reason for s in result.steps]
    assert "digest" in result.step(2).reason


# --- one forgery per step ------------------------------------------------------------------


def test_step5_tampered_content(sig_der, root_ca) -> None:
    result = ses.verify_signature(sig_der, CONTENT + b" ", trust_anchors=[root_ca.certificate])
    _only_failure(result, 5, "hash_mismatch")
    assert "content altered" in result.step(5).reason


def test_step1_tampered_signed_data(sig_der, root_ca) -> None:
    forged = sig_der.replace(b"/Doc_0/Signs/Sign_0", b"/Doc_9/Signs/Sign_0")
    assert forged != sig_der
    result = ses.verify_signature(forged, CONTENT, trust_anchors=[root_ca.certificate])
    _only_failure(result, 1, "bad_signature")


def test_step2_signer_not_in_seal(seal_der, root_ca, make_party) -> None:
    outsider = make_party(
        root_ca, "未授权人员", CertProfile.SIGNER, valid_from=NOW - timedelta(days=1)
    )
    with pytest.raises(ses.SealError, match="not in the seal"):
        ses.sign(seal_der, outsider.cert, outsider.key, content=CONTENT)
    # A forger skipping the check: every step but 2 holds.
    tbs = ses.build_tbs(seal_der, data_hash=sm3(CONTENT), time_info=NOW, property_info="x")
    forged = ses.sign_tbs(tbs, outsider.cert, outsider.key)
    result = ses.verify_signature(forged, CONTENT, trust_anchors=[root_ca.certificate])
    _only_failure(result, 2, "signer_not_listed")


def test_step3_bad_maker_signature(maker, signer, root_ca) -> None:
    seal = ses.parse_seal(_seal(maker, [signer]))
    # Change the seal's name after the maker signed it, then sign a document with it.
    info = ses.SESSealInfo.load(seal["e_seal_info"].dump())
    prop = info["property"]
    prop["name"] = core.UTF8String("伪造的公章")
    forged_seal = ses.SESeal(
        {
            "e_seal_info": info,
            "cert": seal["cert"],
            "sign_alg_id": seal["sign_alg_id"],
            "signed_value": seal["signed_value"],
        }
    )
    sig = ses.sign(forged_seal, signer.cert, signer.key, content=CONTENT, time_info=NOW)
    result = ses.verify_signature(sig, CONTENT, trust_anchors=[root_ca.certificate])
    _only_failure(result, 3, "bad_maker_signature")


def test_step3_seal_window_expired(maker, signer, root_ca) -> None:
    old = _seal(
        maker, [signer], valid_start=NOW - timedelta(days=30), valid_end=NOW - timedelta(days=1)
    )
    sig = ses.sign(old, signer.cert, signer.key, content=CONTENT, time_info=NOW)
    result = ses.verify_signature(sig, CONTENT, trust_anchors=[root_ca.certificate])
    _only_failure(result, 3, "seal_expired")
    # Signed while the seal was valid, checked later: still good.
    earlier = ses.sign(
        old, signer.cert, signer.key, content=CONTENT, time_info=NOW - timedelta(days=2)
    )
    assert ses.verify_signature(earlier, CONTENT, trust_anchors=[root_ca.certificate]).valid


def test_step3_untrusted_maker_chain(signer, root_ca, other_ca, make_party) -> None:
    rogue = make_party(other_ca, "rogue maker", CertProfile.SEAL_MAKER)
    sig = ses.sign(_seal(rogue, [signer]), signer.cert, signer.key, content=CONTENT)
    result = ses.verify_signature(sig, CONTENT, trust_anchors=[root_ca.certificate])
    _only_failure(result, 3, "maker_unknown_issuer")
    assert "maker certificate rejected" in result.step(3).reason


@pytest.mark.parametrize(
    ("status", "code"),
    [(ses.SealStatus.REVOKED, "seal_revoked"), (ses.SealStatus.SUSPENDED, "seal_suspended")],
)
def test_step3_seal_status_lookup(sig_der, root_ca, status, code) -> None:
    seen: list[str] = []

    def lookup(es_id: str) -> ses.SealStatus:
        seen.append(es_id)
        return status

    result = ses.verify_signature(
        sig_der, CONTENT, trust_anchors=[root_ca.certificate], seal_status_lookup=lookup
    )
    _only_failure(result, 3, code)
    assert seen == ["3401000000001"]
    unknown = ses.verify_signature(
        sig_der, CONTENT, trust_anchors=[root_ca.certificate], seal_status_lookup=lambda _: None
    )
    _only_failure(unknown, 3, "seal_unknown")
    ok = ses.verify_signature(
        sig_der, CONTENT, trust_anchors=[root_ca.certificate],
        seal_status_lookup=lambda _: ses.SealStatus.VALID,
    )  # fmt: skip
    assert ok.valid
    assert "status valid" in ok.step(3).reason


def test_step4_signer_certificate_expired_at_time_info(maker, root_ca, make_party) -> None:
    short = make_party(
        root_ca, "短期签章人", CertProfile.SIGNER,
        valid_from=NOW - timedelta(days=5), valid_days=2,
    )  # fmt: skip
    seal = _seal(maker, [short])
    sig = ses.sign(seal, short.cert, short.key, content=CONTENT, time_info=NOW)
    result = ses.verify_signature(sig, CONTENT, trust_anchors=[root_ca.certificate])
    _only_failure(result, 4, "signer_expired")
    assert "not valid at signing time" in result.step(4).reason
    # The same certificate was fine for a signature made while it was valid.
    inside = ses.sign(
        seal, short.cert, short.key, content=CONTENT, time_info=NOW - timedelta(days=4)
    )
    assert ses.verify_signature(inside, CONTENT, trust_anchors=[root_ca.certificate]).valid


def test_step4_time_info_in_the_future(seal_der, signer, root_ca) -> None:
    sig = ses.sign(
        seal_der, signer.cert, signer.key, content=CONTENT, time_info=NOW + timedelta(days=1)
    )
    result = ses.verify_signature(sig, CONTENT, trust_anchors=[root_ca.certificate], at=NOW)
    _only_failure(result, 4, "time_in_future")


def test_every_failure_is_reported_at_once(maker, signer, root_ca, other_ca) -> None:
    old = _seal(maker, [signer], valid_end=NOW - timedelta(days=1))
    sig = ses.sign(old, signer.cert, signer.key, content=CONTENT, time_info=NOW)
    result = ses.verify_signature(sig, b"other", trust_anchors=[other_ca.certificate])
    assert _statuses(result) == ["passed", "passed", "failed", "failed", "failed"]


@pytest.mark.parametrize("garbage", [b"", b"\x30\x00", b"not asn.1", base64.b64encode(b"x")])
def test_garbage_is_invalid_not_an_exception(garbage: bytes, root_ca) -> None:
    result = ses.verify_signature(garbage, CONTENT, trust_anchors=[root_ca.certificate])
    assert not result.valid
    assert _statuses(result) == ["failed"] + ["skipped"] * 4
    assert result.step(1).code == "malformed"


def test_missing_content_is_not_valid(sig_der, root_ca) -> None:
    result = ses.verify_signature(sig_der, trust_anchors=[root_ca.certificate])
    assert _statuses(result) == ["passed"] * 4 + ["skipped"]
    assert not result.valid
    with pytest.raises(ValueError, match="not both"):
        ses.verify_signature(sig_der, CONTENT, digest=sm3(CONTENT), trust_anchors=[])


def test_sign_and_make_seal_reject_bad_input(seal_der, maker, signer) -> None:
    other = SM2PrivateKey.generate()
    with pytest.raises(ses.SealError, match="exactly one"):
        ses.sign(seal_der, signer.cert, signer.key)
    with pytest.raises(ses.SealError, match="32-byte"):
        ses.sign(seal_der, signer.cert, signer.key, data_hash=b"short")
    with pytest.raises(ses.SealError, match="does not match"):
        ses.sign(seal_der, signer.cert, other, content=CONTENT)
    with pytest.raises(ses.SealError, match="ASCII"):
        ses.sign(seal_der, signer.cert, signer.key, content=CONTENT, property_info="签章")
    with pytest.raises(ses.SealError, match="not a DER SESeal"):
        ses.sign(b"\x30\x03\x02\x01\x00", signer.cert, signer.key, content=CONTENT)
    with pytest.raises(ses.SealError, match="does not match"):
        _seal(maker, [signer], maker_key=other)
    with pytest.raises(ses.SealError, match="at least one"):
        _seal(maker, [])
    with pytest.raises(ses.SealError, match="end after"):
        _seal(maker, [signer], valid_end=NOW - timedelta(days=20))
    with pytest.raises(ses.SealError, match="timezone"):
        _seal(maker, [signer], valid_start=datetime(2026, 1, 1))  # noqa: DTZ001


def test_unknown_cert_list_type_and_local_times(maker, signer, root_ca) -> None:
    seal = ses.parse_seal(_seal(maker, [signer]))
    info = ses.SESSealInfo.load(seal["e_seal_info"].dump())
    prop = info["property"]
    prop["cert_list_type"] = 3
    # GeneralizedTime without "Z" (local time): read as UTC rather than crash.
    prop["valid_end"] = core.GeneralizedTime.load(b"\x18\x0e20990101000000")
    odd = ses.SESeal(
        {
            "e_seal_info": info,
            "cert": maker.cert.der,
            "sign_alg_id": OID_SM2_WITH_SM3,
            "signed_value": maker.key.sign(info.dump()),
        }
    ).dump()
    reparsed = ses.parse_seal(odd)
    assert reparsed["e_seal_info"]["property"]["valid_end"].native.tzinfo is None
    tbs = ses.build_tbs(odd, data_hash=sm3(CONTENT), time_info=NOW, property_info="p")
    result = ses.verify_signature(
        ses.sign_tbs(tbs, signer.cert, signer.key), CONTENT, trust_anchors=[root_ca.certificate]
    )
    _only_failure(result, 2, "cert_list_type")
    assert result.step(3).status is ses.StepStatus.PASSED
