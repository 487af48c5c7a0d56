"""Key material of a reference platform, generated at start and written only under its state
directory's ``secrets/`` (mode 0700; files 0600): the national interconnection CA and the SM2
channel signing certificates it issues, ES256 JWKs of private_key_jwt clients, KEKs, the
identity services' data keys and the provinces' mutual-TLS client certificates."""

from __future__ import annotations

import json
import os
import secrets
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from joserfc.jwk import ECKey

from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.tls_client import TLSClientCertificate as TLSClientCertificate
from zwfw.crypto.tls_client import tls_client_certificate as tls_client_certificate
from zwfw.crypto.x509 import CertificateAuthority, CertProfile, SM2Certificate
from zwfw.formats.channel import certificate_key_id


def write_private(path: Path, data: bytes | str) -> Path:
    """Write a secret readable by the owner only; an existing file is replaced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)
    return path


def client_jwk(kid: str) -> ECKey:
    """A fresh P-256 key for a private_key_jwt client (RFC 7523, ES256)."""
    return ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})


def public_jwks(key: ECKey) -> dict[str, object]:
    return {"keys": [key.as_dict(private=False)]}


def private_jwk_text(key: ECKey) -> str:
    return json.dumps(key.as_dict(private=True), indent=2) + "\n"


@dataclass(frozen=True)
class ChannelIdentity:
    """A channel party's SM2 signing key and its certificate from the national CA."""

    key: SM2PrivateKey
    certificate: SM2Certificate

    @property
    def key_id(self) -> str:
        return certificate_key_id(self.certificate)


class NationalCA:
    """The national interconnection CA (SM2): issues the channel signing certificates."""

    def __init__(self) -> None:
        self.ca = CertificateAuthority.create_root(
            "国家政务服务平台互联互通CA",
            organization="zwfw reference platform",
            valid_from=datetime.now(UTC) - timedelta(hours=1),
        )

    def channel_identity(self, common_name: str) -> ChannelIdentity:
        key = SM2PrivateKey.generate()
        certificate = self.ca.issue(
            key.public_key,
            common_name,
            CertProfile.SIGNER,
            valid_from=datetime.now(UTC) - timedelta(hours=1),
            valid_days=365,
        )
        return ChannelIdentity(key, certificate)

    def root_pem(self) -> bytes:
        return self.ca.certificate.to_pem()


def kek_hex() -> str:
    return KeyEncryptionKey.generate().secret.hex()


def data_keys() -> dict[str, str]:
    """An identity instance's SM4 data key and HMAC-SM3 lookup key (hex)."""
    return {"ZWFW_DATA_KEY": secrets.token_hex(16), "ZWFW_LOOKUP_KEY": secrets.token_hex(32)}


def password() -> str:
    """A password meeting the identity service's complexity rules (4 character classes)."""
    return f"Zw{secrets.token_urlsafe(12)}#7a"


def seal_picture(width: int = 64, height: int = 64) -> bytes:
    """A red square PNG: the picture of a generated seal."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xd0\x10\x10" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
