from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from zwfw.crypto.fields import FieldProtectionError, FieldProtector
from zwfw.crypto.keystore import KEK_ENV, KEK_FILE_ENV, KeyEncryptionKey, KeyEncryptionKeyError

ID_NUMBER = "34010419900307123X"
DATA_KEY, LOOKUP_KEY = os.urandom(16), os.urandom(32)


def _stored_by_identity_before(plaintext: str, context: str) -> bytes:
    """A value as the identity service wrote it before the helper moved to zwfw.crypto."""
    nonce = os.urandom(12)
    enc = Cipher(algorithms.SM4(DATA_KEY), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(context.encode())
    body = enc.update(plaintext.encode()) + enc.finalize()
    return nonce + body + enc.tag


def test_reads_and_finds_what_identity_already_stored() -> None:
    protector = FieldProtector(DATA_KEY, LOOKUP_KEY)
    assert protector.decrypt(_stored_by_identity_before(ID_NUMBER, "id_number"), "id_number") == (
        ID_NUMBER
    )
    mac = crypto_hmac.HMAC(LOOKUP_KEY, hashes.SM3())
    mac.update(b"id_number\x00" + ID_NUMBER.encode())
    assert protector.lookup(ID_NUMBER, "id_number") == mac.finalize().hex()


def test_round_trip_is_randomised_and_bound_to_the_column() -> None:
    protector = FieldProtector(DATA_KEY, LOOKUP_KEY)
    first, second = (
        protector.encrypt(ID_NUMBER, "id_number"),
        protector.encrypt(ID_NUMBER, "id_number"),
    )
    assert first != second
    assert ID_NUMBER.encode() not in first
    assert len(first) == 12 + len(ID_NUMBER) + 16
    assert protector.decrypt(second, "id_number") == ID_NUMBER
    with pytest.raises(FieldProtectionError, match="failed authentication"):
        protector.decrypt(first, "phone")
    altered = first[:-1] + bytes([first[-1] ^ 1])
    with pytest.raises(FieldProtectionError, match="failed authentication"):
        protector.decrypt(altered, "id_number")
    with pytest.raises(FieldProtectionError, match="too short"):
        protector.decrypt(b"\x00" * 27, "id_number")
    with pytest.raises(ValueError, match="non-empty context"):
        protector.encrypt(ID_NUMBER, "")


def test_lookup_is_keyed_and_per_column() -> None:
    protector = FieldProtector(DATA_KEY, LOOKUP_KEY)
    assert protector.lookup(ID_NUMBER, "id_number") == protector.lookup(ID_NUMBER, "id_number")
    assert protector.lookup(ID_NUMBER, "id_number") != protector.lookup(ID_NUMBER, "login")
    other = FieldProtector(DATA_KEY, os.urandom(32))
    assert other.lookup(ID_NUMBER, "id_number") != protector.lookup(ID_NUMBER, "id_number")


def test_keys_must_have_the_right_size() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        FieldProtector(os.urandom(15), LOOKUP_KEY)
    with pytest.raises(ValueError, match="at least 16"):
        FieldProtector(DATA_KEY, os.urandom(8))
    assert "hidden" in repr(FieldProtector(DATA_KEY, LOOKUP_KEY))
    assert DATA_KEY.hex() not in repr(FieldProtector(DATA_KEY, LOOKUP_KEY))


def test_keys_derived_from_the_kek_differ_per_purpose_and_kek() -> None:
    kek = KeyEncryptionKey.generate()
    hall = FieldProtector.from_kek(kek, "hall.case")
    again = FieldProtector.from_kek(KeyEncryptionKey(kek.secret), "hall.case")
    blob = hall.encrypt(ID_NUMBER, "certificate_number")
    assert again.decrypt(blob, "certificate_number") == ID_NUMBER
    assert again.lookup(ID_NUMBER, "c") == hall.lookup(ID_NUMBER, "c")
    for other in (
        FieldProtector.from_kek(kek, "elicense.holder"),
        FieldProtector.from_kek(KeyEncryptionKey.generate(), "hall.case"),
    ):
        with pytest.raises(FieldProtectionError):
            other.decrypt(blob, "certificate_number")
        assert other.lookup(ID_NUMBER, "c") != hall.lookup(ID_NUMBER, "c")
    # The KEK itself never encrypts field data: a blob under the raw KEK does not open.
    raw = FieldProtector(kek.secret, kek.secret)
    with pytest.raises(FieldProtectionError):
        hall.decrypt(raw.encrypt(ID_NUMBER, "certificate_number"), "certificate_number")
    with pytest.raises(ValueError, match="purpose"):
        FieldProtector.from_kek(kek, "")


def test_from_environment_reads_the_kek(monkeypatch: pytest.MonkeyPatch) -> None:
    kek = KeyEncryptionKey.generate()
    monkeypatch.delenv(KEK_FILE_ENV, raising=False)
    monkeypatch.setenv(KEK_ENV, kek.to_text())
    blob = FieldProtector.from_environment("hall.case").encrypt(ID_NUMBER, "certificate_number")
    assert FieldProtector.from_kek(kek, "hall.case").decrypt(blob, "certificate_number") == (
        ID_NUMBER
    )
    monkeypatch.delenv(KEK_ENV)
    with pytest.raises(KeyEncryptionKeyError, match="ZWFW_KEK"):
        FieldProtector.from_environment("hall.case")
