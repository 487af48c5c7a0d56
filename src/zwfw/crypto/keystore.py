"""Private-key storage that never keeps a key in clear at rest.

`KeyStore` is the interface services sign through; `EncryptedKeyStore` implements it by wrapping
PKCS#8 blobs with SM4-GCM under a key-encryption key (KEK) that lives outside the data: in the
environment (`ZWFW_KEK`, hex or base64 of 16 bytes) or in a 0600 key file (`ZWFW_KEK_FILE`).
A PKCS#11/HSM backend implements the same protocol and keeps keys inside the token instead.

Wrapped blob layout: b"ZKS1" ‖ KEK id (8) ‖ nonce (12) ‖ SM4-GCM(PKCS#8) ‖ tag (16), with the
header and the key id as associated data, so a blob moved to another key id fails to open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import DEFAULT_SIGNER_ID, SM2Error, SM2PrivateKey, SM2PublicKey
from zwfw.crypto.sm4 import KEY_SIZE, NONCE_SIZE, SM4GCM, SM4AuthenticationError

KEK_ENV = "ZWFW_KEK"
KEK_FILE_ENV = "ZWFW_KEK_FILE"
_MAGIC = b"ZKS1"
_KEK_ID_SIZE = 8
_HEADER_SIZE = len(_MAGIC) + _KEK_ID_SIZE
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class KeyStoreError(Exception):
    """Base class for key storage failures."""


class KeyNotFoundError(KeyStoreError, KeyError):
    def __str__(self) -> str:
        return f"no key with id {self.args[0]!r}"


class KeyExistsError(KeyStoreError):
    pass


class KeyEncryptionKeyError(KeyStoreError):
    """The KEK is missing, malformed or stored unsafely."""


class KeyUnwrapError(KeyStoreError):
    """A wrapped key failed authentication: wrong KEK, wrong key id, or altered blob."""


def check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValueError(
            "key id must be 1-128 characters of letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return key_id


@runtime_checkable
class KeyStore(Protocol):
    """Where signing keys live. Implementations: `EncryptedKeyStore`; later PKCS#11/HSM."""

    def put(self, key_id: str, private_key: SM2PrivateKey) -> None: ...

    def get(self, key_id: str) -> SM2PrivateKey: ...

    def sign(self, key_id: str, data: bytes) -> bytes: ...

    def public_key(self, key_id: str) -> SM2PublicKey: ...

    def delete(self, key_id: str) -> None: ...


# A blob store is any str → bytes mapping: a dict in tests, a directory, or a database table.
BlobStore = MutableMapping[str, bytes]


class DirectoryBlobStore(MutableMapping[str, bytes]):
    """Blobs as files in one directory (0700), each written atomically with mode 0600."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / f"{check_key_id(key)}.blob"

    def __getitem__(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: bytes) -> None:
        target = self._path(key)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(value)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __delitem__(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return (
            isinstance(key, str)
            and _KEY_ID.fullmatch(key) is not None
            and (self._path(key).exists())
        )

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(p.stem for p in self.root.glob("*.blob")))

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*.blob"))


def _decode_kek(text: str, where: str) -> bytes:
    value = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{32}", value):
        return bytes.fromhex(value)
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == KEY_SIZE:
        return decoded
    raise KeyEncryptionKeyError(
        f"{where} must be {KEY_SIZE} bytes given as 32 hex digits or base64"
    )


@dataclass(frozen=True, repr=False)
class KeyEncryptionKey:
    """The 128-bit SM4 key that wraps stored private keys."""

    secret: bytes
    source: str = "memory"
    path: Path | None = None

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_SIZE:
            raise KeyEncryptionKeyError(f"key-encryption key must be {KEY_SIZE} bytes")

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(id={self.key_id.hex()}, source={self.source})"

    @property
    def key_id(self) -> bytes:
        """Non-secret identifier telling which KEK wrapped a blob."""
        return sm3(b"zwfw-kek-id\x00" + self.secret)[:_KEK_ID_SIZE]

    @classmethod
    def generate(cls) -> KeyEncryptionKey:
        return cls(secrets.token_bytes(KEY_SIZE))

    def to_text(self) -> str:
        return self.secret.hex()

    def write_file(self, path: str | Path) -> Path:
        """Create a new 0600 key file; refuses to overwrite an existing one."""
        target = Path(path)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyEncryptionKeyError(f"key file {target} already exists") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_text() + "\n")
        return target

    @classmethod
    def from_file(cls, path: str | Path) -> KeyEncryptionKey:
        target = Path(path)
        try:
            info = target.stat()
        except FileNotFoundError:
            raise KeyEncryptionKeyError(f"key-encryption key file {target} not found") from None
        if not stat.S_ISREG(info.st_mode):
            raise KeyEncryptionKeyError(f"{target} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyEncryptionKeyError(
                f"key-encryption key file {target} is readable by others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
            )
        text = target.read_text(encoding="ascii", errors="replace")
        return cls(_decode_kek(text, f"key file {target}"), source=f"file {target}", path=target)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> KeyEncryptionKey:
        """`ZWFW_KEK` (hex/base64) or else the file named by `ZWFW_KEK_FILE`."""
        env = os.environ if environ is None else environ
        if env.get(KEK_ENV):
            return cls(_decode_kek(env[KEK_ENV], KEK_ENV), source=f"${KEK_ENV}")
        if env.get(KEK_FILE_ENV):
            return cls.from_file(env[KEK_FILE_ENV])
        raise KeyEncryptionKeyError(
            f"no key-encryption key: set {KEK_ENV} (16 bytes, hex or base64) "
            f"or {KEK_FILE_ENV} (path to a 0600 key file)"
        )


class EncryptedKeyStore:
    """`KeyStore` over any `BlobStore`, each key wrapped with SM4-GCM under the KEK."""

    def __init__(self, blobs: BlobStore, kek: KeyEncryptionKey, *, cache: bool = True) -> None:
        root = getattr(blobs, "root", None)
        if (
            kek.path is not None
            and isinstance(root, Path)
            and kek.path.resolve().is_relative_to(root)
        ):
            raise KeyEncryptionKeyError(
                "the key-encryption key file must not be stored with the wrapped keys"
            )
        self._blobs = blobs
        self._kek = kek
        self._aead = SM4GCM(kek.secret)
        # Unwrapped keys are kept in process memory when `cache` is set, so signing does not
        # pay an SM4 decrypt and a point multiplication per call.
        self._cache: dict[str, SM2PrivateKey] | None = {} if cache else None

    def __repr__(self) -> str:
        return f"EncryptedKeyStore(kek={self._kek!r}, keys={len(self._blobs)})"

    @staticmethod
    def _aad(key_id: str, header: bytes) -> bytes:
        return header + b"\x00" + key_id.encode("ascii")

    def wrap(self, key_id: str, private_key: SM2PrivateKey) -> bytes:
        header = _MAGIC + self._kek.key_id
        nonce = secrets.token_bytes(NONCE_SIZE)
        body = self._aead.encrypt(nonce, private_key.to_der(), self._aad(key_id, header))
        return header + nonce + body

    def unwrap(self, key_id: str, blob: bytes) -> SM2PrivateKey:
        if len(blob) < _HEADER_SIZE + NONCE_SIZE + 16 or not blob.startswith(_MAGIC):
            raise KeyUnwrapError(f"stored key {key_id!r} is not a wrapped-key blob")
        header, rest = blob[:_HEADER_SIZE], blob[_HEADER_SIZE:]
        if header[len(_MAGIC) :] != self._kek.key_id:
            raise KeyUnwrapError(
                f"stored key {key_id!r} was wrapped under key-encryption key "
                f"{header[len(_MAGIC) :].hex()}, not the configured {self._kek.key_id.hex()}"
            )
        try:
            der = self._aead.decrypt(
                rest[:NONCE_SIZE], rest[NONCE_SIZE:], self._aad(key_id, header)
            )
        except SM4AuthenticationError:
            raise KeyUnwrapError(
                f"stored key {key_id!r} failed authentication "
                "(altered, or moved from another key id)"
            ) from None
        try:
            return SM2PrivateKey.from_der(der)
        except SM2Error as exc:
            raise KeyUnwrapError(f"stored key {key_id!r} is not an SM2 key: {exc}") from None

    def put(self, key_id: str, private_key: SM2PrivateKey, *, replace: bool = False) -> None:
        check_key_id(key_id)
        if not replace and key_id in self._blobs:
            raise KeyExistsError(f"a key with id {key_id!r} already exists")
        self._blobs[key_id] = self.wrap(key_id, private_key)
        if self._cache is not None:
            self._cache[key_id] = private_key

    def get(self, key_id: str) -> SM2PrivateKey:
        check_key_id(key_id)
        if self._cache is not None and key_id in self._cache:
            return self._cache[key_id]
        try:
            blob = self._blobs[key_id]
        except KeyError:
            raise KeyNotFoundError(key_id) from None
        key = self.unwrap(key_id, bytes(blob))
        if self._cache is not None:
            self._cache[key_id] = key
        return key

    def sign(self, key_id: str, data: bytes, *, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
        return self.get(key_id).sign(data, signer_id=signer_id)

    def public_key(self, key_id: str) -> SM2PublicKey:
        return self.get(key_id).public_key

    def delete(self, key_id: str) -> None:
        check_key_id(key_id)
        if self._cache is not None:
            self._cache.pop(key_id, None)
        try:
            del self._blobs[key_id]
        except KeyError:
            raise KeyNotFoundError(key_id) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._blobs

    def key_ids(self) -> list[str]:
        return sorted(self._blobs)

    def rewrap(self, new_kek: KeyEncryptionKey) -> EncryptedKeyStore:
        """Re-encrypt every key under `new_kek` in place (KEK rotation)."""
        # Unwrap everything first so a bad blob stops the rotation before anything is rewritten.
        keys = {key_id: self.get(key_id) for key_id in self.key_ids()}
        target = EncryptedKeyStore(self._blobs, new_kek, cache=self._cache is not None)
        for key_id, key in keys.items():
            target.put(key_id, key, replace=True)
        return target
