"""SM2 X.509 certificates: a small CA and path validation (RFC 5280 subset, GM/T 0015 profile).

pyca/cryptography cannot sign with SM2, so TBSCertificate is built with asn1crypto and signed
with `zwfw.crypto.sm2` (SM2-with-SM3, OID 1.2.156.10197.1.501, signer ID 1234567812345678).

Certificate signatures use the GM/T 0015 default signer ID. OpenSSL 3.0 instead uses an
empty ID unless told otherwise, so it must be given the ID explicitly, both to check what this
module issues and to issue certificates this module accepts:

    openssl verify -vfyopt distid:1234567812345678 -CAfile root.pem leaf.pem
    openssl req -x509 ... -sm3 -sigopt distid:1234567812345678
"""

from __future__ import annotations

import enum
import functools
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from zwfw.crypto.caching import BoundedCache
from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import (
    OID_SM2_WITH_SM3,
    SM2Error,
    SM2PrivateKey,
    SM2PublicKey,
    verified_signatures,
)

MAX_PATH_DEPTH = 8
# Distinct (leaf, trust anchors, intermediates, key usage) paths remembered by verify_chain.
CHAIN_CACHE_SIZE = 1024
# RFC 5280 §4.1.2.5: UTCTime up to 2049, GeneralizedTime from 2050 on.
_GENERALIZED_TIME_FROM = datetime(2050, 1, 1, tzinfo=UTC)
_KNOWN_CRITICAL = frozenset(
    {"basic_constraints", "key_usage", "extended_key_usage", "subject_alt_name", "name_constraints"}
)


class CertFailure(enum.StrEnum):
    """Why a certificate or path was rejected; stable codes for APIs and reports."""

    MALFORMED = "malformed"
    NOT_SM2 = "not_sm2"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    UNKNOWN_ISSUER = "unknown_issuer"
    BAD_SIGNATURE = "bad_signature"
    ISSUER_NOT_CA = "issuer_not_ca"
    PATH_TOO_LONG = "path_too_long"
    KEY_USAGE = "key_usage"
    CRITICAL_EXTENSION = "unsupported_critical_extension"


class CertificateError(Exception):
    """A certificate failed parsing or validation; `code` says which check."""

    def __init__(self, code: CertFailure, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class CertProfile(enum.StrEnum):
    """What a certificate is for; decides its basicConstraints and keyUsage."""

    ROOT_CA = "root-ca"
    SUB_CA = "sub-ca"
    SEAL_MAKER = "seal-maker"  # 制章者: signs SESeal structures
    SIGNER = "signer"  # 签章者: signs documents with a seal


_CA_USAGE = frozenset({"key_cert_sign", "crl_sign"})
_END_ENTITY_USAGE = frozenset({"digital_signature", "non_repudiation"})


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return at.astimezone(UTC)


def _time(value: datetime) -> asn1_x509.Time:
    value = value.astimezone(UTC).replace(microsecond=0)
    if value >= _GENERALIZED_TIME_FROM:
        return asn1_x509.Time(name="general_time", value=value)
    return asn1_x509.Time(name="utc_time", value=value)


def _name(common_name: str, organization: str | None) -> asn1_x509.Name:
    if not common_name.strip():
        raise ValueError("common name must not be empty")
    attrs: dict[str, str] = {"country_name": "CN"}
    if organization:
        attrs["organization_name"] = organization
    attrs["common_name"] = common_name
    return asn1_x509.Name.build(attrs)


def key_identifier(public_key: SM2PublicKey) -> bytes:
    """Subject key identifier: SM3 of the public key bits truncated to 160 bits (RFC 7093 §2)."""
    return sm3(public_key.point)[:20]


@dataclass(frozen=True, eq=False)
class SM2Certificate:
    """A parsed X.509 certificate carrying an SM2 key and an SM2-with-SM3 signature."""

    asn1: asn1_x509.Certificate

    @classmethod
    def from_der(cls, der: bytes) -> SM2Certificate:
        return _parse_certificate(bytes(der))

    @classmethod
    def _from_der(cls, der: bytes) -> SM2Certificate:
        try:
            cert = asn1_x509.Certificate.load(bytes(der), strict=True)
            cert.native  # noqa: B018 - forces a full parse so malformed input fails here
        except (ValueError, TypeError, KeyError) as exc:
            raise CertificateError(CertFailure.MALFORMED, f"not a DER certificate: {exc}") from exc
        if cert["signature_algorithm"]["algorithm"].dotted != OID_SM2_WITH_SM3:
            raise CertificateError(CertFailure.NOT_SM2, "certificate is not signed with SM2-SM3")
        if cert["tbs_certificate"]["signature"]["algorithm"].dotted != OID_SM2_WITH_SM3:
            raise CertificateError(CertFailure.MALFORMED, "inner and outer algorithms differ")
        made = cls(cert)
        try:
            made.public_key  # noqa: B018 - reject non-SM2 keys at load time
        except SM2Error as exc:
            raise CertificateError(CertFailure.NOT_SM2, str(exc)) from exc
        return made

    @classmethod
    def from_pem(cls, data: bytes) -> SM2Certificate:
        certs = load_pem_bundle(data)
        if len(certs) != 1:
            raise CertificateError(
                CertFailure.MALFORMED, f"expected one certificate, found {len(certs)}"
            )
        return certs[0]

    @classmethod
    def load(cls, data: bytes) -> SM2Certificate:
        """PEM or DER."""
        return cls.from_pem(data) if pem.detect(data) else cls.from_der(data)

    def __repr__(self) -> str:
        return f"SM2Certificate(cn={self.common_name!r}, serial={self.serial_number:x})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2Certificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    @cached_property
    def der(self) -> bytes:
        der: bytes = self.asn1.dump()
        return der

    def to_pem(self) -> bytes:
        armored: bytes = pem.armor("CERTIFICATE", self.der)
        return armored

    @cached_property
    def public_key(self) -> SM2PublicKey:
        return SM2PublicKey.from_asn1(self.asn1["tbs_certificate"]["subject_public_key_info"])

    @property
    def subject(self) -> asn1_x509.Name:
        return self.asn1.subject

    @property
    def issuer(self) -> asn1_x509.Name:
        return self.asn1.issuer

    @cached_property
    def common_name(self) -> str:
        return str(self.subject.native.get("common_name", ""))

    @property
    def serial_number(self) -> int:
        return int(self.asn1.serial_number)

    # Decoded once: validity is checked on every verification, the DER never changes.
    @cached_property
    def not_before(self) -> datetime:
        value: datetime = self.asn1["tbs_certificate"]["validity"]["not_before"].native
        return value

    @cached_property
    def not_after(self) -> datetime:
        value: datetime = self.asn1["tbs_certificate"]["validity"]["not_after"].native
        return value

    @cached_property
    def key_usage(self) -> frozenset[str]:
        value = self.asn1.key_usage_value
        return frozenset(value.native) if value is not None else frozenset()

    @property
    def is_ca(self) -> bool:
        return bool(self.asn1.ca)

    @property
    def path_length(self) -> int | None:
        return self.asn1.max_path_length if self.is_ca else None

    @cached_property
    def fingerprint(self) -> bytes:
        """SM3 over the DER certificate."""
        return sm3(self.der)

    def signature_valid_under(self, issuer_key: SM2PublicKey) -> bool:
        tbs = self.asn1["tbs_certificate"].dump()
        return verified_signatures.verify(issuer_key, self.asn1["signature_value"].native, tbs)

    def valid_at(self, at: datetime | None = None) -> bool:
        moment = _utc(at)
        return self.not_before <= moment <= self.not_after

    def check_validity(self, at: datetime | None = None) -> None:
        moment = _utc(at)
        if moment < self.not_before:
            raise CertificateError(
                CertFailure.NOT_YET_VALID,
                f"certificate '{self.common_name}' is not valid before "
                f"{self.not_before.isoformat()} (checked at {moment.isoformat()})",
            )
        if moment > self.not_after:
            raise CertificateError(
                CertFailure.EXPIRED,
                f"certificate '{self.common_name}' expired at {self.not_after.isoformat()} "
                f"(checked at {moment.isoformat()})",
            )

    def check_key_usage(self, required: Iterable[str]) -> None:
        missing = set(required) - self.key_usage
        if missing:
            raise CertificateError(
                CertFailure.KEY_USAGE,
                f"certificate '{self.common_name}' lacks key usage {', '.join(sorted(missing))}",
            )

    def _check_critical_extensions(self) -> None:
        unknown = set(self.asn1.critical_extensions) - _KNOWN_CRITICAL
        if unknown:
            raise CertificateError(
                CertFailure.CRITICAL_EXTENSION,
                f"certificate '{self.common_name}' has unsupported critical extension(s) "
                f"{', '.join(sorted(map(str, unknown)))}",
            )


@functools.lru_cache(maxsize=1024)
def _parse_certificate(der: bytes) -> SM2Certificate:
    # The same maker and signer certificates arrive with every seal signature; parsing
    # them once saves most of the verification time spent outside SM2 itself.
    return SM2Certificate._from_der(der)


def load_pem_bundle(data: bytes) -> list[SM2Certificate]:
    """Every CERTIFICATE block of a PEM file, in order."""
    raw = bytes(data)
    if not pem.detect(raw):
        raise CertificateError(CertFailure.MALFORMED, "expected PEM certificate(s)")
    certs: list[SM2Certificate] = []
    try:
        for label, _headers, der in pem.unarmor(raw, multiple=True):
            if label == "CERTIFICATE":
                certs.append(SM2Certificate.from_der(der))
    except ValueError as exc:
        raise CertificateError(CertFailure.MALFORMED, f"malformed PEM: {exc}") from exc
    if not certs:
        raise CertificateError(CertFailure.MALFORMED, "no CERTIFICATE block found")
    return certs


def _extensions(
    profile: CertProfile,
    subject_key: SM2PublicKey,
    issuer_key_id: bytes | None,
    path_length: int | None,
) -> list[dict[str, object]]:
    is_ca = profile in (CertProfile.ROOT_CA, CertProfile.SUB_CA)
    basic: dict[str, object] = {"ca": is_ca}
    if is_ca and path_length is not None:
        basic["path_len_constraint"] = path_length
    exts: list[dict[str, object]] = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": basic},
        {
            "extn_id": "key_usage",
            "critical": True,
            "extn_value": set(_CA_USAGE if is_ca else _END_ENTITY_USAGE),
        },
        {"extn_id": "key_identifier", "critical": False, "extn_value": key_identifier(subject_key)},
    ]
    if issuer_key_id is not None:
        exts.append(
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": issuer_key_id},
            }
        )
    return exts


def _sign_certificate(
    *,
    subject: asn1_x509.Name,
    subject_key: SM2PublicKey,
    issuer: asn1_x509.Name,
    issuer_key: SM2PrivateKey,
    issuer_key_id: bytes | None,
    profile: CertProfile,
    not_before: datetime,
    not_after: datetime,
    serial: int | None,
    path_length: int | None,
) -> SM2Certificate:
    if not_after <= not_before:
        raise ValueError("certificate validity must end after it starts")
    algorithm = {"algorithm": OID_SM2_WITH_SM3}
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            # 127 random bits: unpredictable and within RFC 5280's 20-octet limit.
            "serial_number": serial if serial is not None else secrets.randbits(127) | 1,
            "signature": algorithm,
            "issuer": issuer,
            "validity": {"not_before": _time(not_before), "not_after": _time(not_after)},
            "subject": subject,
            "subject_public_key_info": subject_key.to_asn1(),
            "extensions": _extensions(profile, subject_key, issuer_key_id, path_length),
        }
    )
    signature = issuer_key.sign(tbs.dump())
    cert = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    )
    return SM2Certificate.from_der(cert.dump())


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate with its private key, able to issue seal-maker and signer certificates."""

    certificate: SM2Certificate
    key: SM2PrivateKey

    def __post_init__(self) -> None:
        if self.certificate.public_key != self.key.public_key:
            raise ValueError("CA key does not match the CA certificate")
        if not self.certificate.is_ca:
            raise ValueError("certificate is not a CA certificate")

    @classmethod
    def create_root(
        cls,
        common_name: str,
        *,
        organization: str | None = None,
        key: SM2PrivateKey | None = None,
        valid_from: datetime | None = None,
        valid_days: int = 3650,
        path_length: int | None = None,
    ) -> CertificateAuthority:
        """A self-signed SM2 root CA."""
        key = key or SM2PrivateKey.generate()
        start = _utc(valid_from)
        name = _name(common_name, organization)
        cert = _sign_certificate(
            subject=name,
            subject_key=key.public_key,
            issuer=name,
            issuer_key=key,
            issuer_key_id=key_identifier(key.public_key),
            profile=CertProfile.ROOT_CA,
            not_before=start,
            not_after=start + timedelta(days=valid_days),
            serial=None,
            path_length=path_length,
        )
        return cls(cert, key)

    def issue(
        self,
        subject_key: SM2PublicKey,
        common_name: str,
        profile: CertProfile,
        *,
        organization: str | None = None,
        valid_from: datetime | None = None,
        valid_days: int = 730,
        serial: int | None = None,
        path_length: int | None = None,
    ) -> SM2Certificate:
        """Issue a certificate for `subject_key`; validity is clipped to the CA's own."""
        if profile is CertProfile.ROOT_CA:
            raise ValueError("a root CA is created with create_root, not issued")
        start = _utc(valid_from)
        end = min(start + timedelta(days=valid_days), self.certificate.not_after)
        return _sign_certificate(
            subject=_name(common_name, organization),
            subject_key=subject_key,
            issuer=self.certificate.subject,
            issuer_key=self.key,
            issuer_key_id=key_identifier(self.key.public_key),
            profile=profile,
            not_before=start,
            not_after=end,
            serial=serial,
            path_length=path_length,
        )


# Paths that validated, keyed by SM3 fingerprints of every certificate that could be on them.
# Only the structure is reused (issuer signatures, CA flags, path length, key usage, critical
# extensions); validity at the requested time is checked on every call.
_chains: BoundedCache[
    tuple[bytes, frozenset[bytes], frozenset[bytes], frozenset[str]], tuple[SM2Certificate, ...]
] = BoundedCache(CHAIN_CACHE_SIZE)


def clear_chain_cache() -> None:
    """Forget every remembered path (e.g. after replacing trust anchors in a process)."""
    _chains.clear()


def verify_chain(
    leaf: SM2Certificate,
    trust_anchors: Sequence[SM2Certificate],
    *,
    intermediates: Sequence[SM2Certificate] = (),
    at: datetime | None = None,
    required_key_usage: Iterable[str] = ("digital_signature",),
) -> list[SM2Certificate]:
    """Validate `leaf` up to one of `trust_anchors` at time `at` (default: now).

    Returns the path leaf → anchor. Raises `CertificateError` with the first failed check:
    validity of every certificate on the path, issuer signature, issuer being a CA with
    keyCertSign, path length, unsupported critical extensions and the leaf's key usage.
    A path that validated once is remembered for the same certificates and trust anchors;
    validity at `at` is still checked on every call, in path order, so the first failure
    reported is the one a full walk would report.
    """
    if not trust_anchors:
        raise CertificateError(CertFailure.UNKNOWN_ISSUER, "no trust anchors configured")
    moment = _utc(at)
    usage = frozenset(required_key_usage)
    key = (
        leaf.fingerprint,
        frozenset(c.fingerprint for c in trust_anchors),
        frozenset(c.fingerprint for c in intermediates),
        usage,
    )
    path = _chains.get(key)
    if path is None:
        path = tuple(_walk_path(leaf, trust_anchors, intermediates, usage, moment))
        _chains.put(key, path)
    else:
        for cert in path:
            cert.check_validity(moment)
    return list(path)


def _walk_path(
    leaf: SM2Certificate,
    trust_anchors: Sequence[SM2Certificate],
    intermediates: Sequence[SM2Certificate],
    required_key_usage: frozenset[str],
    moment: datetime,
) -> list[SM2Certificate]:
    anchors = {c.der for c in trust_anchors}
    pool = list(trust_anchors) + [c for c in intermediates if c.der not in anchors]

    leaf._check_critical_extensions()
    leaf.check_key_usage(required_key_usage)
    path = [leaf]
    current = leaf
    while True:
        current.check_validity(moment)
        if current.der in anchors:
            return path
        if len(path) > MAX_PATH_DEPTH:
            raise CertificateError(CertFailure.PATH_TOO_LONG, "certificate path is too long")
        # Byte-equal names are the usual case; RFC 5280 name comparison is the slow fallback.
        issuer_der = current.issuer.dump()
        candidates = [c for c in pool if c.subject.dump() == issuer_der and c is not current]
        if not candidates:
            candidates = [c for c in pool if c.subject == current.issuer and c is not current]
        if not candidates:
            raise CertificateError(
                CertFailure.UNKNOWN_ISSUER,
                f"issuer of '{current.common_name}' ({current.issuer.human_friendly}) "
                "is not a trusted or supplied certificate",
            )
        issuer = next((c for c in candidates if current.signature_valid_under(c.public_key)), None)
        if issuer is None:
            raise CertificateError(
                CertFailure.BAD_SIGNATURE,
                f"signature on '{current.common_name}' does not verify with its issuer's key",
            )
        if not issuer.is_ca or "key_cert_sign" not in issuer.key_usage:
            raise CertificateError(
                CertFailure.ISSUER_NOT_CA,
                f"issuer '{issuer.common_name}' is not a CA allowed to sign certificates",
            )
        issuer._check_critical_extensions()
        # Intermediate CAs below this issuer, excluding the leaf (RFC 5280 §4.2.1.9).
        below = sum(1 for c in path[1:] if c.subject.dump() != c.issuer.dump())
        if issuer.path_length is not None and below > issuer.path_length:
            raise CertificateError(
                CertFailure.PATH_TOO_LONG,
                f"issuer '{issuer.common_name}' allows {issuer.path_length} intermediate CA(s)",
            )
        path.append(issuer)
        current = issuer
