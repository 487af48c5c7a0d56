from __future__ import annotations

import pytest

from zwfw.crypto.hashing import new_sm3, sm3, sm3_chunks, sm3_file, sm3_hex
from zwfw.crypto.sm4 import SM4GCM, SM4AuthenticationError, SM4Error, open_sealed, seal

# GB/T 32905-2016 Appendix A examples.
ABC_DIGEST = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
ABCD16_DIGEST = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"

# RFC 8998 Appendix A.1 (SM4-GCM).
RFC8998_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
RFC8998_IV = bytes.fromhex("00001234567800000000ABCD")
RFC8998_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
RFC8998_PT = bytes.fromhex(
    "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
    "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
)
RFC8998_CT = bytes.fromhex(
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
    "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
)
RFC8998_TAG = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")


def test_sm3_standard_vectors() -> None:
    assert sm3_hex(b"abc") == ABC_DIGEST
    assert sm3(b"abcd" * 16).hex() == ABCD16_DIGEST


def test_sm3_streaming_equals_one_shot(tmp_path) -> None:
    data = bytes(range(256)) * 5000
    path = tmp_path / "doc.bin"
    path.write_bytes(data)
    h = new_sm3()
    h.update(data[:1000])
    h.update(data[1000:])
    assert sm3_file(path) == sm3(data) == sm3_chunks([data[:7], data[7:]]) == h.finalize()


def test_sm4_gcm_matches_rfc8998_vector() -> None:
    out = SM4GCM(RFC8998_KEY).encrypt(RFC8998_IV, RFC8998_PT, RFC8998_AAD)
    assert out == RFC8998_CT + RFC8998_TAG
    assert SM4GCM(RFC8998_KEY).decrypt(RFC8998_IV, out, RFC8998_AAD) == RFC8998_PT


@pytest.mark.parametrize("part", ["ciphertext", "tag", "aad", "nonce", "key"])
def test_sm4_gcm_detects_any_alteration(part: str) -> None:
    key, nonce, aad = RFC8998_KEY, RFC8998_IV, RFC8998_AAD
    data = bytearray(RFC8998_CT + RFC8998_TAG)
    if part == "ciphertext":
        data[3] ^= 1
    elif part == "tag":
        data[-1] ^= 1
    elif part == "aad":
        aad = aad + b"x"
    elif part == "nonce":
        nonce = bytes(12)
    else:
        key = bytes(16)
    with pytest.raises(SM4AuthenticationError):
        SM4GCM(key).decrypt(nonce, bytes(data), aad)


def test_seal_uses_fresh_nonces_and_round_trips() -> None:
    key = SM4GCM.generate_key()
    a, b = seal(key, b"secret", b"id-1"), seal(key, b"secret", b"id-1")
    assert a != b
    assert open_sealed(key, a, b"id-1") == b"secret"
    with pytest.raises(SM4AuthenticationError):
        open_sealed(key, a, b"id-2")


def test_sm4_rejects_bad_parameters() -> None:
    with pytest.raises(SM4Error, match="16 bytes"):
        SM4GCM(b"short")
    with pytest.raises(SM4Error, match="nonce"):
        SM4GCM(RFC8998_KEY).encrypt(b"123", b"x")
    with pytest.raises(SM4Error, match="shorter than its tag"):
        SM4GCM(RFC8998_KEY).decrypt(RFC8998_IV, b"abc")
    with pytest.raises(SM4Error, match="too short"):
        open_sealed(RFC8998_KEY, b"tiny")
    assert "0123" not in repr(SM4GCM(RFC8998_KEY))
