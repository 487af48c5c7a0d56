"""Mutual-TLS client certificates on P-256 (the TLS side; the interconnection channel's SM2
certificates are in ``zwfw.crypto.x509``): a province's client certificate as the hub registry
records it, and the certificate from an unknown issuer the security review presents."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TLSClientCertificate:
    """A province's mutual-TLS client certificate (P-256, self-signed) and its SHA-256
    fingerprint as the hub registry records it."""

    certificate_pem: bytes
    key_pem: bytes
    fingerprint: str
    subject: str


def tls_client_certificate(common_name: str) -> TLSClientCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    return TLSClientCertificate(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        fingerprint=hashlib.sha256(der).hexdigest(),
        subject=f"CN={common_name}",
    )
