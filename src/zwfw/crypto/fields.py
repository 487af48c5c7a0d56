"""Protected personal-data fields: SM4-GCM at rest, HMAC-SM3 keyed hashes for lookups.

One `FieldProtector` serves a service's protected columns (resident ID numbers, phone numbers,
TOTP secrets, wrapped keys). Each value is encrypted with the column's name ("context") as
associated data, so a ciphertext copied into another column fails to open; lookups use a keyed
hash, so equal values can be found without storing them in clear and without the table
alone allowing a dictionary attack over the small space of ID numbers.

Stored layout: nonce (12) ‖ SM4-GCM ciphertext ‖ tag (16). Keyed hash: hex of
HMAC-SM3(lookup key, context ‖ 0x00 ‖ value).

Keys come either from the service's settings (two explicit keys) or from the deployment's
key-encryption key, with one pair per purpose derived by HKDF-SM3 (RFC 5869) so that the
KEK itself never encrypts data and purposes never share keys.
"""

from __future__ import annotations

import functools
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zwfw.crypto.keystore import KEK_ENV, KEK_FILE_ENV, KeyEncryptionKey
from zwfw.crypto.sm4 import KEY_SIZE, NONCE_SIZE, TAG_SIZE, SM4Error, open_sealed, seal

LOOKUP_KEY_SIZE = 32
_MIN_LOOKUP_KEY = 16
_HKDF_SALT = b"zwfw field protection v1"


class FieldProtectionError(ValueError):
    """A protected value could not be opened: altered, moved to another column, or made
    under another key."""


class FieldProtector:
    """SM4-GCM for personal data at rest, bound to its column; HMAC-SM3 for lookups."""

    __slots__ = ("_data_key", "_lookup_key")

    def __init__(self, data_key: bytes, lookup_key: bytes) -> None:
        if len(data_key) != KEY_SIZE:
            raise ValueError(f"SM4 data key must be {KEY_SIZE} bytes")
        if len(lookup_key) < _MIN_LOOKUP_KEY:
            raise ValueError(f"lookup key must be at least {_MIN_LOOKUP_KEY} bytes")
        self._data_key = bytes(data_key)
        self._lookup_key = bytes(lookup_key)

    def __repr__(self) -> str:  # never show the keys
        return "FieldProtector(keys=<hidden>)"

    @classmethod
    def from_kek(cls, kek: KeyEncryptionKey, purpose: str) -> FieldProtector:
        """Keys for one `purpose` (e.g. "hall.case"), derived from the deployment's KEK."""
        return _derived(kek.secret, purpose)

    @classmethod
    def from_environment(cls, purpose: str) -> FieldProtector:
        """`from_kek` with the KEK of `ZWFW_KEK` / `ZWFW_KEK_FILE`; raises
        `KeyEncryptionKeyError` when neither is set."""
        return _from_settings(os.environ.get(KEK_ENV), os.environ.get(KEK_FILE_ENV), purpose)

    @staticmethod
    def _context(context: str) -> bytes:
        if not context:
            raise ValueError("a protected field needs a non-empty context (its column name)")
        return context.encode()

    def encrypt(self, plaintext: str, context: str) -> bytes:
        return seal(self._data_key, plaintext.encode(), self._context(context))

    def decrypt(self, blob: bytes, context: str) -> str:
        if len(blob) < NONCE_SIZE + TAG_SIZE:
            raise FieldProtectionError(f"stored {context} is too short to be a protected value")
        try:
            return open_sealed(self._data_key, bytes(blob), self._context(context)).decode()
        except (SM4Error, UnicodeDecodeError):
            raise FieldProtectionError(
                f"stored {context} failed authentication (altered, moved from another column, "
                "or made under another key)"
            ) from None

    def lookup(self, value: str, context: str) -> str:
        mac = crypto_hmac.HMAC(self._lookup_key, hashes.SM3())
        mac.update(self._context(context) + b"\x00" + value.encode())
        return mac.finalize().hex()


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SM3(), length=length, salt=_HKDF_SALT, info=info).derive(secret)


@functools.lru_cache(maxsize=32)
def _from_settings(kek: str | None, kek_file: str | None, purpose: str) -> FieldProtector:
    # Cached by the settings themselves: protected reads ask on every access, and reading and
    # checking the key file each time would put file I/O on every request. Errors are not
    # cached, so a missing key is reported on every access.
    environ = {name: value for name, value in ((KEK_ENV, kek), (KEK_FILE_ENV, kek_file)) if value}
    return FieldProtector.from_kek(KeyEncryptionKey.from_environment(environ), purpose)


@functools.lru_cache(maxsize=32)
def _derived(secret: bytes, purpose: str) -> FieldProtector:
    # Cached: request paths ask for the protector on every protected read.
    if not purpose:
        raise ValueError("a purpose is required to derive field keys")
    label = purpose.encode()
    return FieldProtector(
        _hkdf(secret, b"data\x00" + label, KEY_SIZE),
        _hkdf(secret, b"lookup\x00" + label, LOOKUP_KEY_SIZE),
    )


__all__ = ["LOOKUP_KEY_SIZE", "FieldProtectionError", "FieldProtector"]
