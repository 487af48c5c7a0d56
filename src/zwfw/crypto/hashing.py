"""SM3 digests (GB/T 32905) through pyca/cryptography's OpenSSL backend."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import hashes

SM3_DIGEST_SIZE = 32
_CHUNK = 1 << 20


def sm3(data: bytes) -> bytes:
    """SM3 digest of `data` (32 bytes)."""
    h = hashes.Hash(hashes.SM3())
    h.update(bytes(data))
    return h.finalize()


def sm3_hex(data: bytes) -> str:
    return sm3(data).hex()


def sm3_chunks(chunks: Iterable[bytes]) -> bytes:
    """SM3 over a stream of byte chunks, without holding them all in memory."""
    h = hashes.Hash(hashes.SM3())
    for chunk in chunks:
        h.update(chunk)
    return h.finalize()


def sm3_file(path: str | Path) -> bytes:
    """SM3 of a file's contents, read in 1 MiB chunks."""
    with Path(path).open("rb") as fh:
        return sm3_chunks(iter(lambda: fh.read(_CHUNK), b""))


def new_sm3() -> hashes.Hash:
    """An incremental SM3 context (`update()` then `finalize()`)."""
    return hashes.Hash(hashes.SM3())
