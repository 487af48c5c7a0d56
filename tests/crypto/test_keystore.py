from __future__ import annotations

import base64
import os
import stat

import pytest

from zwfw.crypto.keystore import (
    DirectoryBlobStore,
    EncryptedKeyStore,
    KeyEncryptionKey,
    KeyEncryptionKeyError,
    KeyExistsError,
    KeyNotFoundError,
    KeyStore,
    KeyUnwrapError,
)
from zwfw.crypto.sm2 import SM2PrivateKey

DATA = "电子证照 签发".encode()


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.generate()


@pytest.fixture
def store(tmp_path, kek) -> EncryptedKeyStore:
    return EncryptedKeyStore(DirectoryBlobStore(tmp_path / "keys"), kek)


def test_put_get_sign_public_key_delete(store: EncryptedKeyStore) -> None:
    assert isinstance(store, KeyStore)
    key = SM2PrivateKey.generate()
    store.put("seal-340100-0001", key)
    assert "seal-340100-0001" in store
    assert store.public_key("seal-340100-0001") == key.public_key
    assert key.public_key.verify(store.sign("seal-340100-0001", DATA), DATA)
    assert store.get("seal-340100-0001").private_scalar() == key.private_scalar()
    assert store.key_ids() == ["seal-340100-0001"]
    store.delete("seal-340100-0001")
    with pytest.raises(KeyNotFoundError, match="seal-340100-0001"):
        store.get("seal-340100-0001")
    with pytest.raises(KeyNotFoundError):
        store.delete("seal-340100-0001")


def test_keys_are_never_on_disk_in_clear(tmp_path, store) -> None:
    key = SM2PrivateKey.generate()
    store.put("k1", key)
    blob_path = tmp_path / "keys" / "k1.blob"
    blob = blob_path.read_bytes()
    assert key.private_scalar() not in blob
    assert key.to_der() not in blob
    assert blob.startswith(b"ZKS1")
    assert stat.S_IMODE(blob_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_a_fresh_store_reads_what_another_wrote(tmp_path, kek) -> None:
    key = SM2PrivateKey.generate()
    EncryptedKeyStore(DirectoryBlobStore(tmp_path / "k"), kek).put("a", key)
    for cache in (True, False):
        reopened = EncryptedKeyStore(DirectoryBlobStore(tmp_path / "k"), kek, cache=cache)
        assert reopened.public_key("a") == key.public_key


def test_wrong_kek_is_an_authentication_failure(tmp_path, store) -> None:
    store.put("k1", SM2PrivateKey.generate())
    other = EncryptedKeyStore(DirectoryBlobStore(tmp_path / "keys"), KeyEncryptionKey.generate())
    with pytest.raises(KeyUnwrapError, match="wrapped under key-encryption key"):
        other.get("k1")
    # Even with a forged KEK id in the header the payload does not open.
    blobs = DirectoryBlobStore(tmp_path / "keys")
    blob = blobs["k1"]
    wrong = KeyEncryptionKey.generate()
    blobs["k1"] = blob[:4] + wrong.key_id + blob[12:]
    with pytest.raises(KeyUnwrapError, match="failed authentication"):
        EncryptedKeyStore(blobs, wrong).get("k1")


def test_blobs_cannot_be_swapped_between_key_ids(kek) -> None:
    blobs: dict[str, bytes] = {}
    store = EncryptedKeyStore(blobs, kek, cache=False)
    store.put("maker", SM2PrivateKey.generate())
    store.put("signer", SM2PrivateKey.generate())
    blobs["signer"] = blobs["maker"]
    with pytest.raises(KeyUnwrapError, match="moved from another key id"):
        store.get("signer")


def test_altered_blob_is_rejected(kek) -> None:
    blobs: dict[str, bytes] = {}
    store = EncryptedKeyStore(blobs, kek, cache=False)
    store.put("k", SM2PrivateKey.generate())
    blob = bytearray(blobs["k"])
    blob[-20] ^= 0x01
    blobs["k"] = bytes(blob)
    with pytest.raises(KeyUnwrapError, match="failed authentication"):
        store.get("k")
    blobs["k"] = b"garbage"
    with pytest.raises(KeyUnwrapError, match="not a wrapped-key blob"):
        store.get("k")


def test_overwrite_requires_replace(store) -> None:
    first, second = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    store.put("k", first)
    with pytest.raises(KeyExistsError):
        store.put("k", second)
    store.put("k", second, replace=True)
    assert store.public_key("k") == second.public_key


@pytest.mark.parametrize("bad", ["../escape", "", "a/b", ".hidden", "x" * 200, "名字"])
def test_key_ids_are_validated(store, bad) -> None:
    with pytest.raises(ValueError, match="key id"):
        store.put(bad, SM2PrivateKey.generate())


def test_kek_from_environment() -> None:
    raw = os.urandom(16)
    assert KeyEncryptionKey.from_environment({"ZWFW_KEK": raw.hex()}).secret == raw
    b64 = base64.b64encode(raw).decode()
    assert KeyEncryptionKey.from_environment({"ZWFW_KEK": b64}).secret == raw
    with pytest.raises(KeyEncryptionKeyError, match="no key-encryption key"):
        KeyEncryptionKey.from_environment({})
    for bad in ("abc", raw.hex() + "00", base64.b64encode(os.urandom(32)).decode()):
        with pytest.raises(KeyEncryptionKeyError, match="16 bytes"):
            KeyEncryptionKey.from_environment({"ZWFW_KEK": bad})
    assert raw.hex() not in repr(KeyEncryptionKey(raw))


def test_kek_file_permissions_and_location(tmp_path) -> None:
    kek = KeyEncryptionKey.generate()
    path = kek.write_file(tmp_path / "kek")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeyEncryptionKey.from_environment({"ZWFW_KEK_FILE": str(path)})
    assert loaded.secret == kek.secret
    with pytest.raises(KeyEncryptionKeyError, match="already exists"):
        kek.write_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyEncryptionKeyError, match="chmod 600"):
        KeyEncryptionKey.from_file(path)
    with pytest.raises(KeyEncryptionKeyError, match="not found"):
        KeyEncryptionKey.from_file(tmp_path / "missing")
    # A key file inside the wrapped-key directory defeats the point of wrapping.
    data_dir = tmp_path / "keys"
    data_dir.mkdir()
    inside = kek.write_file(data_dir / "kek")
    with pytest.raises(KeyEncryptionKeyError, match="must not be stored with"):
        EncryptedKeyStore(DirectoryBlobStore(data_dir), KeyEncryptionKey.from_file(inside))


def test_rewrap_rotates_the_kek(tmp_path, store, kek) -> None:
    key = SM2PrivateKey.generate()
    store.put("k", key)
    new = KeyEncryptionKey.generate()
    rotated = store.rewrap(new)
    assert rotated.public_key("k") == key.public_key
    blobs = DirectoryBlobStore(tmp_path / "keys")
    with pytest.raises(KeyUnwrapError):
        EncryptedKeyStore(blobs, kek).get("k")
    assert EncryptedKeyStore(blobs, new).public_key("k") == key.public_key
