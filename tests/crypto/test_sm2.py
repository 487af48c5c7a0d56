from __future__ import annotations

import secrets

import pytest
from gmssl import func as gmssl_func
from gmssl import sm2 as gmssl_sm2

from zwfw.crypto.sm2 import (
    CURVE_ORDER,
    DEFAULT_SIGNER_ID,
    SM2Error,
    SM2PrivateKey,
    SM2PublicKey,
    load_private_key,
    load_public_key,
    signature_from_raw,
    signature_to_raw,
)

MESSAGE = "办件编号 11370800MB285591843370117002011202611230001".encode()


@pytest.fixture(scope="module")
def key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


def test_sign_verify_round_trip(key: SM2PrivateKey) -> None:
    sig = key.sign(MESSAGE)
    assert key.public_key.verify(sig, MESSAGE)
    assert not key.public_key.verify(sig, MESSAGE + b"!")
    assert not SM2PrivateKey.generate().public_key.verify(sig, MESSAGE)


def test_signatures_are_randomised(key: SM2PrivateKey) -> None:
    assert key.sign(MESSAGE) != key.sign(MESSAGE)


def test_distinguishing_id_is_part_of_the_signature(key: SM2PrivateKey) -> None:
    sig = key.sign(MESSAGE, signer_id=b"ALICE123@YAHOO.COM")
    assert key.public_key.verify(sig, MESSAGE, signer_id=b"ALICE123@YAHOO.COM")
    assert not key.public_key.verify(sig, MESSAGE)
    assert not key.public_key.verify(key.sign(MESSAGE), MESSAGE, signer_id=b"")


def test_signature_is_der_sequence_of_r_s(key: SM2PrivateKey) -> None:
    sig = key.sign(MESSAGE)
    assert sig[0] == 0x30
    raw = signature_to_raw(sig)
    assert len(raw) == 64
    assert signature_from_raw(raw) == sig


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s + b"\x00",  # trailing garbage
        lambda s: s[:-1],  # truncated
        lambda s: b"\x31" + s[1:],  # SET instead of SEQUENCE
        lambda s: b"",
    ],
)
def test_malformed_signatures_do_not_verify(key: SM2PrivateKey, mutate) -> None:
    assert not key.public_key.verify(mutate(key.sign(MESSAGE)), MESSAGE)


def _der_int(value: bytes, *, extra_zero: bool = False) -> bytes:
    body = value.lstrip(b"\x00") or b"\x00"
    if body[0] & 0x80:
        body = b"\x00" + body
    if extra_zero:
        body = b"\x00" + body
    return b"\x02" + bytes([len(body)]) + body


def test_non_canonical_and_out_of_range_signatures_rejected(key: SM2PrivateKey) -> None:
    raw = signature_to_raw(key.sign(MESSAGE))
    r, s = raw[:32], raw[32:]
    body = _der_int(r) + _der_int(s)
    assert signature_to_raw(b"\x30" + bytes([len(body)]) + body) == raw
    # A superfluous leading zero is valid BER but not DER: one signature, one encoding.
    body = _der_int(r, extra_zero=True) + _der_int(s)
    with pytest.raises(SM2Error, match="canonical"):
        signature_to_raw(b"\x30" + bytes([len(body)]) + body)
    s_plus_n = (int.from_bytes(s, "big") + CURVE_ORDER).to_bytes(33, "big")
    body = _der_int(r) + _der_int(s_plus_n)
    with pytest.raises(SM2Error, match="out of range"):
        signature_to_raw(b"\x30" + bytes([len(body)]) + body)
    assert not key.public_key.verify(b"\x30" + bytes([len(body)]) + body, MESSAGE)
    with pytest.raises(SM2Error, match="64 bytes"):
        signature_from_raw(b"\x01" * 63)


def test_keys_round_trip_through_pem_and_der(key: SM2PrivateKey) -> None:
    again = load_private_key(key.to_pem())
    assert again.private_scalar() == key.private_scalar()
    assert load_private_key(key.to_der()).public_key == key.public_key
    assert load_public_key(key.public_key.to_pem()) == key.public_key
    assert load_public_key(key.public_key.to_der()) == key.public_key
    assert key.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key.public_key.to_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert key.private_scalar().hex() not in repr(key)


def test_public_point_forms(key: SM2PrivateKey) -> None:
    point = key.public_key.point
    x, y = point[1:33], point[33:]
    compressed = bytes([2 + (y[-1] & 1)]) + x
    assert SM2PublicKey.from_point(compressed) == key.public_key
    assert SM2PublicKey.from_point(point[1:]) == key.public_key
    with pytest.raises(SM2Error, match="not a valid SM2 public key"):
        SM2PublicKey.from_point(b"\x04" + x + bytes(32))


@pytest.mark.parametrize(
    "scalar",
    [bytes(32), (CURVE_ORDER - 1).to_bytes(32, "big"), b"\xff" * 32, b"\x01" * 31],
)
def test_invalid_private_scalars_rejected(scalar: bytes) -> None:
    with pytest.raises(SM2Error, match="32-byte scalar"):
        SM2PrivateKey(scalar)


def test_z_value_matches_the_binding(key: SM2PrivateKey) -> None:
    from gmalglib.sm2 import SM2

    assert key.public_key.z_value() == SM2(pk=key.public_key.point).get_entity_info()


# --- independent oracles: OpenSSL 3 and pure-Python gmssl ---------------------------------


def test_openssl_verifies_our_signature(key, tmp_path, run_openssl) -> None:
    (tmp_path / "pub.pem").write_bytes(key.public_key.to_pem())
    (tmp_path / "msg").write_bytes(MESSAGE)
    (tmp_path / "sig").write_bytes(key.sign(MESSAGE))
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", tmp_path / "pub.pem", "-rawin"]
    args += ["-digest", "sm3", "-in", tmp_path / "msg", "-sigfile", tmp_path / "sig"]
    ok = run_openssl(*args, "-pkeyopt", "distid:1234567812345678")
    assert ok.returncode == 0, ok.stderr
    assert b"Signature Verified Successfully" in ok.stdout
    (tmp_path / "msg").write_bytes(MESSAGE + b"x")
    assert run_openssl(*args, "-pkeyopt", "distid:1234567812345678").returncode != 0


def test_we_verify_openssl_signature_and_read_its_keys(tmp_path, run_openssl) -> None:
    made = run_openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2",
        "-out", tmp_path / "k.pem",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (tmp_path / "msg").write_bytes(MESSAGE)
    signed = run_openssl(
        "pkeyutl", "-sign", "-inkey", tmp_path / "k.pem", "-rawin", "-digest", "sm3",
        "-pkeyopt", "distid:1234567812345678", "-in", tmp_path / "msg", "-out", tmp_path / "sig",
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    key = load_private_key((tmp_path / "k.pem").read_bytes())
    # Byte-identical PKCS#8: OpenSSL and we encode the same key the same way.
    assert key.to_pem() == (tmp_path / "k.pem").read_bytes()
    sig = (tmp_path / "sig").read_bytes()
    assert key.public_key.verify(sig, MESSAGE)
    assert not key.public_key.verify(sig, MESSAGE[:-1])


def test_openssl_reads_our_private_key(key, tmp_path, run_openssl) -> None:
    (tmp_path / "k.pem").write_bytes(key.to_pem())
    out = run_openssl("pkey", "-in", tmp_path / "k.pem", "-pubout")
    assert out.returncode == 0, out.stderr
    assert load_public_key(out.stdout) == key.public_key


def test_non_sm2_keys_are_rejected(tmp_path, run_openssl) -> None:
    run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", tmp_path / "p256.pem")  # fmt: skip
    with pytest.raises(SM2Error, match="SM2 curve"):
        load_private_key((tmp_path / "p256.pem").read_bytes())
    pub = run_openssl("pkey", "-in", tmp_path / "p256.pem", "-pubout").stdout
    with pytest.raises(SM2Error, match="SM2 curve"):
        load_public_key(pub)
    with pytest.raises(SM2Error, match="PEM label"):
        SM2PrivateKey.from_pem(pub)
    with pytest.raises(SM2Error):
        load_private_key(b"not a key at all")


def _gmssl(key: SM2PrivateKey) -> gmssl_sm2.CryptSM2:
    return gmssl_sm2.CryptSM2(
        private_key=key.private_scalar().hex(), public_key=key.public_key.point[1:].hex(), mode=1
    )


def test_gmssl_verifies_our_signature(key: SM2PrivateKey) -> None:
    raw = signature_to_raw(key.sign(MESSAGE)).hex()
    oracle = _gmssl(key)
    assert oracle.verify_with_sm3(raw, MESSAGE)
    assert not oracle.verify_with_sm3(raw, MESSAGE + b"x")


def test_we_verify_gmssl_signature(key: SM2PrivateKey) -> None:
    raw_hex = _gmssl(key).sign_with_sm3(MESSAGE, gmssl_func.random_hex(64))
    sig = signature_from_raw(bytes.fromhex(raw_hex))
    assert key.public_key.verify(sig, MESSAGE)
    assert key.public_key.verify(sig, MESSAGE, signer_id=DEFAULT_SIGNER_ID)
    assert not key.public_key.verify(sig, secrets.token_bytes(16))


def test_verified_signature_cache_only_remembers_successes(key: SM2PrivateKey) -> None:
    from zwfw.crypto.sm2 import VerifiedSignatures

    cache = VerifiedSignatures(maxsize=2)
    sig = key.sign(MESSAGE)
    assert cache.verify(key.public_key, sig, MESSAGE)
    assert cache.verify(key.public_key, sig, MESSAGE)  # served from the cache
    assert not cache.verify(key.public_key, sig, MESSAGE + b"x")
    other = SM2PrivateKey.generate().public_key
    assert not cache.verify(other, sig, MESSAGE)
    for i in range(3):
        data = MESSAGE + bytes([i])
        assert cache.verify(key.public_key, key.sign(data), data)
    assert len(cache._ok) == 2
