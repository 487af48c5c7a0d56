"""SM4-GCM authenticated encryption (GB/T 32907, mode per RFC 8998) via pyca/cryptography.

pyca's AEAD classes cover AES and ChaCha20 only, but its generic `Cipher` accepts
`algorithms.SM4` with `modes.GCM`, backed by OpenSSL's SM4-GCM.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16


class SM4Error(ValueError):
    """Bad SM4 parameters (key, nonce or ciphertext length)."""


class SM4AuthenticationError(SM4Error):
    """The ciphertext, nonce, associated data or key is not the one that was used to encrypt."""


class SM4GCM:
    """SM4-GCM with a 128-bit key, 96-bit nonce and 128-bit tag.

    Same shape as `cryptography`'s `AESGCM`: `encrypt` returns ciphertext‖tag.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise SM4Error(f"SM4 key must be {KEY_SIZE} bytes, got {len(key)}")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "SM4GCM(key=<hidden>)"

    @staticmethod
    def generate_key() -> bytes:
        return secrets.token_bytes(KEY_SIZE)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes = b"") -> bytes:
        if len(nonce) != NONCE_SIZE:
            raise SM4Error(f"SM4-GCM nonce must be {NONCE_SIZE} bytes")
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        if associated_data:
            enc.authenticate_additional_data(associated_data)
        body = enc.update(data) + enc.finalize()
        return body + enc.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes = b"") -> bytes:
        if len(nonce) != NONCE_SIZE:
            raise SM4Error(f"SM4-GCM nonce must be {NONCE_SIZE} bytes")
        if len(data) < TAG_SIZE:
            raise SM4Error("SM4-GCM ciphertext is shorter than its tag")
        body, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
        dec = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, tag)).decryptor()
        if associated_data:
            dec.authenticate_additional_data(associated_data)
        try:
            return dec.update(body) + dec.finalize()
        except InvalidTag as exc:
            raise SM4AuthenticationError("SM4-GCM authentication failed") from exc


def seal(key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    """Encrypt under a fresh random nonce; returns nonce‖ciphertext‖tag."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    return nonce + SM4GCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, blob: bytes, associated_data: bytes = b"") -> bytes:
    """Inverse of `seal`; raises `SM4AuthenticationError` if anything was altered."""
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise SM4Error("sealed blob is too short")
    return SM4GCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], associated_data)
