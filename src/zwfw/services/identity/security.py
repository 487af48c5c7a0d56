"""Credential handling: passwords, TOTP and certificate login. Personal data at rest is
protected with `zwfw.crypto.fields.FieldProtector`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from zwfw.crypto.x509 import CertificateError as Sm2CertificateError
from zwfw.crypto.x509 import SM2Certificate


def token_hash(value: str) -> str:
    """Stored form of bearer secrets (refresh tokens, session ids, client secrets)."""
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# --- passwords -------------------------------------------------------------------------

_CLASSES = (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^a-zA-Z0-9]")


class PasswordPolicyError(ValueError):
    pass


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 12
    min_classes: int = 3
    max_age_days: int = 90

    def check(self, password: str, *, username: str = "") -> None:
        if len(password) < self.min_length:
            raise PasswordPolicyError(f"password must have at least {self.min_length} characters")
        classes = sum(1 for pattern in _CLASSES if re.search(pattern, password))
        if classes < self.min_classes:
            raise PasswordPolicyError(
                f"password must mix at least {self.min_classes} of: lower case, upper case, "
                "digits, symbols"
            )
        if username and username.lower() in password.lower():
            raise PasswordPolicyError("password must not contain the login name")

    def expired(self, changed_at: float, now: float) -> bool:
        return now - changed_at > self.max_age_days * 86400


class PasswordHashing:
    """argon2id with configurable cost; unknown names are checked against a dummy hash of the
    same cost so their timing matches real accounts (no enumeration by timing)."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            ok = self._hasher.verify(stored_hash or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True


# --- TOTP (RFC 6238) ---------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def verify_totp(secret: str, code: str) -> bool:
    # One step of drift either way covers clock skew on the user's phone.
    return code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=1)


def totp_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


# --- certificate login (法人CA证书) -------------------------------------------------------

SM2_OID = "1.2.156.10197.1.301"


class CertificateError(ValueError):
    pass


def new_challenge() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def certificate_fingerprint(pem: str) -> str:
    cert = load_certificate(pem)
    return cert.fingerprint(hashes.SHA256()).hex()


def load_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CertificateError(f"not a PEM X.509 certificate: {exc}") from None


def _is_sm2(cert: x509.Certificate) -> bool:
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:  # pyca cannot load SM2 keys
        return True
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "sm2"


def verify_challenge_signature(pem: str, challenge: str, signature_b64: str, at: float) -> None:
    """Check that the holder of `pem`'s private key signed `challenge` (DER ECDSA/SM2)."""
    cert = load_certificate(pem)
    if not (cert.not_valid_before_utc.timestamp() <= at <= cert.not_valid_after_utc.timestamp()):
        raise CertificateError("certificate is outside its validity period")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        raise CertificateError("signature is not base64") from None
    message = challenge.encode()
    if _is_sm2(cert):
        _verify_sm2(pem, message, signature)
        return
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CertificateError("certificate key must be SM2 or P-256")
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CertificateError(
            "signature does not verify with the certificate's P-256 key"
        ) from None


def _verify_sm2(pem: str, message: bytes, signature: bytes) -> None:
    # pyca/cryptography parses SM2 certificates but cannot use their keys.
    try:
        sm2_cert = SM2Certificate.from_pem(pem.encode())
    except Sm2CertificateError as exc:
        raise CertificateError(f"unusable SM2 certificate: {exc}") from None
    # SM2 with SM3 and the GB/T 35276 default signer ID, as 法人CA client tools sign.
    if not sm2_cert.public_key.verify(signature, message):
        raise CertificateError("signature does not verify with the certificate's SM2 key")
