"""A province hall's channel identity at the national hub: its SM2 channel signing key and its
intake client key (mutual TLS), from secret config, checked against the public certificates
the stack's config gives (``provinces[].channel``) before they are mounted."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from zwfw.crypto.sm2 import SM2Error, load_private_key
from zwfw.crypto.x509 import CertificateError, SM2Certificate
from zwfw_infra.config import ConfigError

# The hall's files in its own Secret (mounted with its client key): private keys from secret
# config, the public certificates from config.
CHANNEL_KEY_FILE = "channel.key"
CHANNEL_CERT_FILE = "channel.crt"
INTAKE_KEY_FILE = "intake.key"
INTAKE_CERT_FILE = "intake.crt"
# The hub's bundle of the CAs its in-cluster TLS accepts client certificates of.
HUB_CLIENT_CA_FILE = "client-ca.crt"


def channel_key(value: str, certificate_pem: str, path: str) -> str:
    """The SM2 channel signing key (PEM) of ``secrets...hall.channel_key``, when it is the
    private half of ``provinces[].channel.signingCertificate``."""
    try:
        key = load_private_key(value.strip().encode())
    except (SM2Error, ValueError, TypeError):
        # Never the value, nor the parser's view of it.
        raise ConfigError(f"secret {path}: not an SM2 private key (PEM)") from None
    try:
        certificate = SM2Certificate.load(certificate_pem.encode())
    except (CertificateError, ValueError) as exc:
        raise ConfigError(f"{path}: channel.signingCertificate is not readable: {exc}") from None
    if key.public_key.point != certificate.public_key.point:
        raise ConfigError(
            f"secret {path} is not the key of the province's channel.signingCertificate"
        )
    return key.to_pem().decode()


def intake_client_key(value: str, certificate_pem: str, path: str) -> str:
    """The intake client key (PEM) of ``secrets...hall.intake_client_key``, when it is the
    private half of ``provinces[].channel.intakeCertificate``."""
    try:
        key = serialization.load_pem_private_key(value.strip().encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"secret {path}: not a private key (unencrypted PEM)") from None
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != certificate.public_key().public_bytes(*spki):
        raise ConfigError(
            f"secret {path} is not the key of the province's channel.intakeCertificate"
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
