"""Seal verification remembers decoded seals, maker signatures and certificate paths; none of
that may let altered input pass, or stop a time- or status-dependent check from running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509

from zwfw.crypto import ses, x509
from zwfw.crypto.caching import BoundedCache
from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import OID_SM2_WITH_SM3
from zwfw.crypto.x509 import CertFailure, CertificateError, CertProfile, SM2Certificate

CONTENT = "<Signature>准予行政许可决定书 皖市监许〔2026〕17号</Signature>".encode()
PICTURE = ses.SealPicture("PNG", b"\x89PNG\r\n\x1a\n" + bytes(64), 40, 40)
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _cold_caches():
    ses.clear_verification_caches()
    yield
    ses.clear_verification_caches()


def _seal(maker, signer, **overrides) -> bytes:
    args = {
        "maker_cert": maker.cert,
        "maker_key": maker.key,
        "es_id": "3401000000042",
        "name": "合肥市市场监督管理局行政审批专用章",
        "seal_type": 2,
        "signer_certs": [signer.cert],
        "picture": PICTURE,
        "valid_start": NOW - timedelta(days=10),
        "valid_end": NOW + timedelta(days=365),
    }
    args.update(overrides)
    return ses.make_seal(**args)


def _sign(seal_der: bytes, signer, *, time_info: datetime = NOW, content: bytes = CONTENT) -> bytes:
    return ses.sign(
        seal_der, signer.cert, signer.key, content=content, time_info=time_info, property_info="p"
    )


def _codes(result: ses.VerificationResult) -> dict[int, str | None]:
    return {s.step: s.code for s in result.steps if s.status is not ses.StepStatus.PASSED}


def _verify(sig: bytes, root, content: bytes | None = CONTENT, **kw) -> ses.VerificationResult:
    return ses.verify_signature(sig, content, trust_anchors=[root.certificate], **kw)


def _with_changed_window(seal_der: bytes, valid_end: datetime) -> bytes:
    """The same seal with a longer validity window and the maker's original signature."""
    seal = ses.parse_seal(seal_der)
    info = ses.SESSealInfo.load(seal["e_seal_info"].dump())
    info["property"]["valid_end"] = valid_end
    return ses.SESeal(
        {
            "e_seal_info": info,
            "cert": seal["cert"].native,
            "sign_alg_id": OID_SM2_WITH_SM3,
            "signed_value": seal["signed_value"].native,
        }
    ).dump()


# --- altered input after the genuine one was remembered ------------------------------------


def test_altered_signature_fails_after_the_genuine_one_verified(maker, signer, root_ca) -> None:
    sig = _sign(_seal(maker, signer), signer)
    assert _verify(sig, root_ca).valid
    flipped = sig[:-1] + bytes([sig[-1] ^ 0x01])  # last byte of s in the BIT STRING
    assert _codes(_verify(flipped, root_ca)) == {1: "bad_signature"}
    # The genuine one still verifies: the failure left nothing behind.
    assert _verify(sig, root_ca).valid


def test_altered_seal_fails_after_the_genuine_seal_was_remembered(maker, signer, root_ca) -> None:
    seal_der = _seal(maker, signer)
    assert _verify(_sign(seal_der, signer), root_ca).valid
    # A signer re-signs over a seal whose window was stretched: same maker certificate, same
    # maker signature bytes, so only the seal's own signature check can catch it.
    stretched = _with_changed_window(seal_der, NOW + timedelta(days=3650))
    forged = ses.sign_tbs(
        ses.build_tbs(stretched, data_hash=sm3(CONTENT), time_info=NOW, property_info="p"),
        signer.cert,
        signer.key,
    )
    result = _verify(forged, root_ca)
    assert _codes(result) == {3: "bad_maker_signature"}
    assert not result.valid
    # Asked again, it still fails: a failure is never remembered as a success.
    assert _codes(_verify(forged, root_ca)) == {3: "bad_maker_signature"}


def test_altered_content_fails_after_the_genuine_content_verified(maker, signer, root_ca) -> None:
    sig = _sign(_seal(maker, signer), signer)
    assert _verify(sig, root_ca).valid
    assert _codes(_verify(sig, root_ca, CONTENT + b" ")) == {5: "hash_mismatch"}
    assert _codes(_verify(sig, root_ca, None, digest=bytes(32))) == {5: "hash_mismatch"}


def test_altered_signed_field_fails_after_the_genuine_one_verified(maker, signer, root_ca) -> None:
    sig = _sign(_seal(maker, signer), signer)
    assert _verify(sig, root_ca).valid
    parsed = ses.parse_signature(sig)
    tbs = ses.TBSSign.load(parsed["to_sign"].dump())
    tbs["property_info"] = "/Doc_1/Signs/Sign_0/Signature.xml"
    altered = ses.SESSignature(
        {
            "to_sign": tbs,
            "cert": signer.cert.der,
            "signature_alg_id": OID_SM2_WITH_SM3,
            "signature": parsed["signature"].native,
        }
    ).dump()
    assert _codes(_verify(altered, root_ca)) == {1: "bad_signature"}


def test_seal_listed_by_other_signer_fails_with_a_remembered_seal(
    maker, signer, root_ca, make_party
) -> None:
    seal_der = _seal(maker, signer)
    assert _verify(_sign(seal_der, signer), root_ca).valid
    stranger = make_party(
        root_ca, "不在印章中的签章人", CertProfile.SIGNER, valid_from=NOW - timedelta(days=20)
    )
    tbs = ses.build_tbs(seal_der, data_hash=sm3(CONTENT), time_info=NOW, property_info="p")
    result = _verify(ses.sign_tbs(tbs, stranger.cert, stranger.key), root_ca)
    assert _codes(result) == {2: "signer_not_listed"}


# --- checks that depend on time or status still run on every call -------------------------


def test_seal_window_is_checked_per_signature_with_a_remembered_seal(
    maker, signer, root_ca
) -> None:
    seal_der = _seal(
        maker, signer, valid_start=NOW - timedelta(days=10), valid_end=NOW - timedelta(days=2)
    )
    assert _verify(_sign(seal_der, signer, time_info=NOW - timedelta(days=5)), root_ca).valid
    late = _sign(seal_der, signer, time_info=NOW - timedelta(days=1))
    assert _codes(_verify(late, root_ca)) == {3: "seal_expired"}
    early = _sign(seal_der, signer, time_info=NOW - timedelta(days=11))
    assert _codes(_verify(early, root_ca)) == {3: "seal_not_yet_valid"}


def test_seal_status_is_asked_on_every_call(maker, signer, root_ca) -> None:
    sig = _sign(_seal(maker, signer), signer)
    statuses = iter([ses.SealStatus.VALID, ses.SealStatus.REVOKED, None])
    asked: list[str] = []

    def lookup(es_id: str) -> ses.SealStatus | None:
        asked.append(es_id)
        return next(statuses)

    assert _verify(sig, root_ca, seal_status_lookup=lookup).valid
    assert _codes(_verify(sig, root_ca, seal_status_lookup=lookup)) == {3: "seal_revoked"}
    assert _codes(_verify(sig, root_ca, seal_status_lookup=lookup)) == {3: "seal_unknown"}
    assert asked == ["3401000000042"] * 3


def test_other_trust_anchors_do_not_reuse_a_remembered_path(
    maker, signer, root_ca, other_ca
) -> None:
    sig = _sign(_seal(maker, signer), signer)
    assert _verify(sig, root_ca).valid
    result = ses.verify_signature(sig, CONTENT, trust_anchors=[other_ca.certificate])
    assert _codes(result) == {3: "maker_unknown_issuer", 4: "signer_unknown_issuer"}


def test_certificate_validity_is_checked_per_call_on_a_remembered_path(root_ca, signer) -> None:
    anchors = [root_ca.certificate]
    assert x509.verify_chain(signer.cert, anchors) == [signer.cert, root_ca.certificate]
    with pytest.raises(CertificateError) as expired:
        x509.verify_chain(signer.cert, anchors, at=signer.cert.not_after + timedelta(seconds=1))
    assert expired.value.code is CertFailure.EXPIRED
    with pytest.raises(CertificateError) as early:
        x509.verify_chain(signer.cert, anchors, at=signer.cert.not_before - timedelta(seconds=1))
    assert early.value.code is CertFailure.NOT_YET_VALID
    assert x509.verify_chain(signer.cert, anchors) == [signer.cert, root_ca.certificate]


def test_expired_intermediate_is_reported_on_a_remembered_path(make_party) -> None:
    start = NOW - timedelta(days=30)
    root = x509.CertificateAuthority.create_root("层级根CA", valid_from=start)
    sub_party = make_party(root, "省级子CA", CertProfile.SUB_CA, valid_from=start, valid_days=60)
    sub = x509.CertificateAuthority(sub_party.cert, sub_party.key)
    leaf = make_party(sub, "签章人", CertProfile.SIGNER, valid_from=start, valid_days=3000)
    anchors = [root.certificate]
    path = x509.verify_chain(leaf.cert, anchors, intermediates=[sub.certificate])
    assert path == [leaf.cert, sub.certificate, root.certificate]
    # The leaf's validity was clipped to the sub-CA's; past it the leaf is reported first,
    # as a full walk reports it.
    with pytest.raises(CertificateError) as expired:
        x509.verify_chain(
            leaf.cert,
            anchors,
            intermediates=[sub.certificate],
            at=sub.certificate.not_after + timedelta(days=1),
        )
    assert expired.value.code is CertFailure.EXPIRED
    assert "签章人" in expired.value.message
    # Without the intermediate the remembered path must not be used.
    with pytest.raises(CertificateError) as unknown:
        x509.verify_chain(leaf.cert, anchors)
    assert unknown.value.code is CertFailure.UNKNOWN_ISSUER


def test_altered_certificate_fails_after_the_genuine_one_was_remembered(root_ca, signer) -> None:
    anchors = [root_ca.certificate]
    x509.verify_chain(signer.cert, anchors)
    cert = asn1_x509.Certificate.load(signer.cert.der)
    cert["tbs_certificate"]["serial_number"] = signer.cert.serial_number + 1
    altered = SM2Certificate.from_der(cert.dump(force=True))
    assert altered.der != signer.cert.der
    with pytest.raises(CertificateError) as bad:
        x509.verify_chain(altered, anchors)
    assert bad.value.code is CertFailure.BAD_SIGNATURE


# --- what is remembered --------------------------------------------------------------------


def test_only_successes_are_remembered(maker, signer, root_ca, other_ca) -> None:
    seal_der = _seal(maker, signer)
    forged_seal = _with_changed_window(seal_der, NOW + timedelta(days=3650))
    forged = ses.sign_tbs(
        ses.build_tbs(forged_seal, data_hash=sm3(CONTENT), time_info=NOW, property_info="p"),
        signer.cert,
        signer.key,
    )
    assert not _verify(forged, root_ca).valid
    assert sm3(forged_seal) not in ses._maker_signed
    with pytest.raises(CertificateError):
        x509.verify_chain(signer.cert, [other_ca.certificate])
    assert len(x509._chains) == 1  # the maker's path from the forged seal's check, no other
    assert _verify(_sign(seal_der, signer), root_ca).valid
    assert sm3(seal_der) in ses._maker_signed
    with pytest.raises(ses.SealError, match="not a DER SESeal"):
        ses.seal_facts(b"\x30\x03\x02\x01\x00")
    assert sm3(b"\x30\x03\x02\x01\x00") not in ses._seal_facts


def test_malformed_nested_seal_is_reported_as_malformed(root_ca) -> None:
    # A well-formed SES_Signature shell around a seal that is not a SESeal: the lazy reader
    # must still reject it.
    tbs = core.Sequence(
        contents=b"".join(
            [
                core.Integer(4).dump(),
                b"\x30\x03\x02\x01\x00",
                core.GeneralizedTime(NOW).dump(),
                core.OctetBitString(sm3(CONTENT)).dump(),
                core.IA5String("p").dump(),
            ]
        )
    ).dump()
    sig = core.Sequence(
        contents=tbs
        + core.OctetString(b"cert").dump()
        + core.ObjectIdentifier(OID_SM2_WITH_SM3).dump()
        + core.OctetBitString(b"\x30\x00").dump()
    ).dump()
    result = _verify(sig, root_ca)
    assert [s.status.value for s in result.steps] == ["failed"] + ["skipped"] * 4
    assert result.step(1).code == "malformed"
    assert "SESeal" in result.step(1).reason


def test_malformed_optional_trailer_is_reported_as_malformed(maker, signer, root_ca) -> None:
    sig = _sign(_seal(maker, signer), signer)
    # timeStamp [0] EXPLICIT holding an OCTET STRING where a BIT STRING belongs.
    trailer = b"\xa0\x03\x04\x01\x00"
    outer = ses.parse_signature(sig)
    body = outer.contents + trailer
    bad = core.Sequence(contents=body).dump()
    result = _verify(bad, root_ca)
    assert result.step(1).code == "malformed"


def test_bounded_cache_evicts_the_least_recently_used() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="at least 1"):
        BoundedCache(0)
