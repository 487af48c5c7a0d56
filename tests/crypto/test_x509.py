from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import (
    CertFailure,
    CertificateAuthority,
    CertificateError,
    CertProfile,
    SM2Certificate,
    _sign_certificate,
    load_pem_bundle,
    verify_chain,
)

VFY = ("-vfyopt", "distid:1234567812345678")


def _write(tmp_path, **certs: SM2Certificate):
    paths = {}
    for name, cert in certs.items():
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_bytes(cert.to_pem())
    return paths


def test_issued_certificates_carry_the_profile(root_ca, maker, signer) -> None:
    root = root_ca.certificate
    assert root.is_ca
    assert root.key_usage == {"key_cert_sign", "crl_sign"}
    for party in (maker, signer):
        assert not party.cert.is_ca
        assert party.cert.key_usage == {"digital_signature", "non_repudiation"}
        assert party.cert.issuer == root.subject
        assert party.cert.public_key == party.key.public_key
    assert root.common_name == "zwfw 测试根CA"
    assert verify_chain(signer.cert, [root]) == [signer.cert, root]


def test_openssl_parses_and_verifies_what_we_issue(tmp_path, root_ca, maker, run_openssl) -> None:
    p = _write(tmp_path, root=root_ca.certificate, leaf=maker.cert)
    text = run_openssl("x509", "-in", p["leaf"], "-text", "-noout")
    assert text.returncode == 0, text.stderr
    out = text.stdout.decode()
    assert "Signature Algorithm: SM2-with-SM3" in out
    assert "ASN1 OID: SM2" in out
    assert "Digital Signature, Non Repudiation" in out
    assert "CA:FALSE" in out
    root_text = run_openssl("x509", "-in", p["root"], "-text", "-noout").stdout.decode()
    assert "CA:TRUE" in root_text
    assert "Certificate Sign, CRL Sign" in root_text
    ok = run_openssl("verify", *VFY, "-CAfile", p["root"], p["leaf"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert b"OK" in ok.stdout


def test_tampered_certificate_rejected_by_us_and_openssl(tmp_path, root_ca, maker, run_openssl):
    der = bytearray(maker.cert.der)
    name = "制章者 340000".encode()
    at = der.find(name)
    der[at : at + len(name)] = "伪造者 340000".encode()
    forged = SM2Certificate.from_der(bytes(der))
    with pytest.raises(CertificateError) as err:
        verify_chain(forged, [root_ca.certificate])
    assert err.value.code is CertFailure.BAD_SIGNATURE
    p = _write(tmp_path, root=root_ca.certificate, leaf=forged)
    bad = run_openssl("verify", *VFY, "-CAfile", p["root"], p["leaf"])
    assert bad.returncode != 0
    assert b"signature failure" in bad.stdout + bad.stderr


def test_we_accept_an_openssl_issued_chain(tmp_path, run_openssl) -> None:
    ext = tmp_path / "ext.cnf"
    ext.write_text(
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    )
    sig = ("-sm3", "-sigopt", "distid:1234567812345678")
    for k in ("ca", "leaf"):
        run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2",
                    "-out", tmp_path / f"{k}.key")  # fmt: skip
    made = run_openssl(
        "req", "-new", "-x509", "-key", tmp_path / "ca.key", *sig, "-subj", "/CN=openssl root",
        "-days", "30", "-config", "/dev/null", "-extfile", ext, "-extensions", "ca",
        "-out", tmp_path / "ca.pem",
    )  # fmt: skip
    if made.returncode != 0:  # older `req` has no -extfile; use -addext
        made = run_openssl(
            "req", "-new", "-x509", "-key", tmp_path / "ca.key", *sig, "-subj", "/CN=openssl root",
            "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", tmp_path / "ca.pem",
        )  # fmt: skip
    assert made.returncode == 0, made.stderr
    csr = run_openssl(
        "req", "-new", "-key", tmp_path / "leaf.key", "-sm3", "-subj", "/CN=leaf",
        "-sigopt", "distid:1234567812345678", "-out", tmp_path / "leaf.csr",
    )  # fmt: skip
    assert csr.returncode == 0, csr.stderr
    leaf = run_openssl(
        "x509", "-req", *VFY, "-in", tmp_path / "leaf.csr", "-CA", tmp_path / "ca.pem",
        "-CAkey", tmp_path / "ca.key", "-CAcreateserial", *sig, "-days", "10",
        "-extfile", ext, "-extensions", "leaf", "-out", tmp_path / "leaf.pem",
    )  # fmt: skip
    assert leaf.returncode == 0, leaf.stderr
    ca_cert = SM2Certificate.load((tmp_path / "ca.pem").read_bytes())
    leaf_cert = SM2Certificate.load((tmp_path / "leaf.pem").read_bytes())
    assert verify_chain(leaf_cert, [ca_cert]) == [leaf_cert, ca_cert]


def test_non_sm2_certificate_is_refused(tmp_path, run_openssl) -> None:
    run_openssl(
        "req", "-new", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", tmp_path / "k.pem", "-subj", "/CN=p256", "-out", tmp_path / "c.pem",
    )  # fmt: skip
    with pytest.raises(CertificateError) as err:
        SM2Certificate.load((tmp_path / "c.pem").read_bytes())
    assert err.value.code is CertFailure.NOT_SM2
    with pytest.raises(CertificateError) as err:
        SM2Certificate.load(b"\x30\x03\x02\x01\x01")
    assert err.value.code is CertFailure.MALFORMED


def test_validity_window_is_checked_with_precise_reasons(root_ca, signer) -> None:
    anchors = [root_ca.certificate]
    with pytest.raises(CertificateError) as err:
        verify_chain(signer.cert, anchors, at=signer.cert.not_after + timedelta(seconds=1))
    assert err.value.code is CertFailure.EXPIRED
    assert "expired at" in err.value.message
    with pytest.raises(CertificateError) as err:
        verify_chain(signer.cert, anchors, at=signer.cert.not_before - timedelta(seconds=1))
    assert err.value.code is CertFailure.NOT_YET_VALID
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_chain(signer.cert, anchors, at=datetime(2030, 1, 1))  # noqa: DTZ001


def test_untrusted_issuer_and_key_usage(root_ca, other_ca, make_party) -> None:
    stranger = make_party(other_ca, "stranger", CertProfile.SIGNER)
    with pytest.raises(CertificateError) as err:
        verify_chain(stranger.cert, [root_ca.certificate])
    assert err.value.code is CertFailure.UNKNOWN_ISSUER
    with pytest.raises(CertificateError) as err:
        verify_chain(root_ca.certificate, [root_ca.certificate])
    assert err.value.code is CertFailure.KEY_USAGE
    with pytest.raises(CertificateError) as err:
        verify_chain(stranger.cert, [])
    assert err.value.code is CertFailure.UNKNOWN_ISSUER


def test_same_name_different_key_is_a_bad_signature(root_ca, signer) -> None:
    impostor = CertificateAuthority.create_root(
        "zwfw 测试根CA", organization="安徽省数据资源管理局"
    )
    with pytest.raises(CertificateError) as err:
        verify_chain(signer.cert, [impostor.certificate])
    assert err.value.code is CertFailure.BAD_SIGNATURE


def test_end_entity_cannot_act_as_ca(root_ca, signer) -> None:
    key = SM2PrivateKey.generate()
    now = datetime.now(UTC)
    # A signer using its own key to mint a certificate, bypassing CertificateAuthority.
    forged = _sign_certificate(
        subject=root_ca.certificate.subject,
        subject_key=key.public_key,
        issuer=signer.cert.subject,
        issuer_key=signer.key,
        issuer_key_id=None,
        profile=CertProfile.SIGNER,
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=1),
        serial=None,
        path_length=None,
    )
    with pytest.raises(CertificateError) as err:
        verify_chain(forged, [root_ca.certificate], intermediates=[signer.cert])
    assert err.value.code is CertFailure.ISSUER_NOT_CA


def test_intermediates_and_path_length(make_party) -> None:
    root = CertificateAuthority.create_root("root with pathlen 0", path_length=0)
    sub_key = SM2PrivateKey.generate()
    sub_cert = root.issue(sub_key.public_key, "sub CA", CertProfile.SUB_CA)
    sub = CertificateAuthority(sub_cert, sub_key)
    leaf = make_party(sub, "leaf under sub", CertProfile.SIGNER)
    with pytest.raises(CertificateError) as err:
        verify_chain(leaf.cert, [root.certificate], intermediates=[sub_cert])
    assert err.value.code is CertFailure.PATH_TOO_LONG
    with pytest.raises(CertificateError) as err:
        verify_chain(leaf.cert, [root.certificate])
    assert err.value.code is CertFailure.UNKNOWN_ISSUER

    open_root = CertificateAuthority.create_root("root without pathlen")
    sub_key2 = SM2PrivateKey.generate()
    sub2 = CertificateAuthority(
        open_root.issue(sub_key2.public_key, "sub CA 2", CertProfile.SUB_CA), sub_key2
    )
    leaf2 = make_party(sub2, "leaf 2", CertProfile.SIGNER)
    path = verify_chain(leaf2.cert, [open_root.certificate], intermediates=[sub2.certificate])
    assert [c.common_name for c in path] == ["leaf 2", "sub CA 2", "root without pathlen"]


def test_issue_validates_its_inputs(root_ca, signer) -> None:
    with pytest.raises(ValueError, match="create_root"):
        root_ca.issue(signer.key.public_key, "x", CertProfile.ROOT_CA)
    with pytest.raises(ValueError, match="common name"):
        root_ca.issue(signer.key.public_key, "  ", CertProfile.SIGNER)
    with pytest.raises(ValueError, match="does not match"):
        CertificateAuthority(root_ca.certificate, signer.key)
    with pytest.raises(ValueError, match="not a CA"):
        CertificateAuthority(signer.cert, signer.key)
    # Issued validity never outlives the CA.
    long = root_ca.issue(signer.key.public_key, "long", CertProfile.SIGNER, valid_days=99999)
    assert long.not_after == root_ca.certificate.not_after


def test_pem_bundle_and_generalized_time(root_ca, maker, signer) -> None:
    bundle = maker.cert.to_pem() + signer.cert.to_pem()
    assert load_pem_bundle(bundle) == [maker.cert, signer.cert]
    with pytest.raises(CertificateError, match="expected one certificate"):
        SM2Certificate.from_pem(bundle)
    with pytest.raises(CertificateError, match="no CERTIFICATE"):
        load_pem_bundle(maker.key.to_pem())
    late = CertificateAuthority.create_root(
        "2050 root", valid_from=datetime(2049, 12, 1, tzinfo=UTC), valid_days=400
    )
    assert late.certificate.not_after.year == 2051
    assert late.certificate.asn1["tbs_certificate"]["validity"]["not_after"].name == "general_time"
