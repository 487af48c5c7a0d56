"""SM2 signatures with SM3 (GB/T 32918, GB/T 35276) and the key encodings OpenSSL 3 reads.

The elliptic-curve arithmetic runs in `gmalglib` (C). It was chosen by measurement against
gmssl-pyx, gmssl-fast and OpenSSL 3's libcrypto: it signs several times faster than any of them
and verifies faster than the other Python bindings (see `bench/bench_crypto.py`). Everything
around it (DER signatures, PKCS#8, SubjectPublicKeyInfo, the Z value) is standard encoding done
with asn1crypto and pyca/cryptography, so keys and signatures interoperate with OpenSSL:

    openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt distid:1234567812345678 ...

OpenSSL 3.0 uses an *empty* distinguishing ID when `distid` is not given, so the option is
required on its command line; this module always applies the GB/T 35276 default
`1234567812345678` unless told otherwise.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from asn1crypto import algos, keys, pem
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from gmalglib.sm2 import SM2 as _Engine

from zwfw.crypto.hashing import sm3

DEFAULT_SIGNER_ID = b"1234567812345678"
OID_SM2_CURVE = "1.2.156.10197.1.301"
OID_SM2_WITH_SM3 = "1.2.156.10197.1.501"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"

# Curve parameters from GB/T 32918.5, needed for the Z value.
_A = bytes.fromhex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC")
_B = bytes.fromhex("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93")
_GX = bytes.fromhex("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7")
_GY = bytes.fromhex("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0")
CURVE_ORDER = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)

# asn1crypto knows the curve only after registration; this is its documented extension point.
keys.NamedCurve.register("sm2", OID_SM2_CURVE, 32)

_MAX_ID_BYTES = 8191  # ENTL is a 16-bit count of *bits*


class SM2Error(ValueError):
    """A key or signature that is not a well-formed SM2 object."""


def _check_signer_id(signer_id: bytes) -> None:
    if not isinstance(signer_id, bytes | bytearray) or len(signer_id) > _MAX_ID_BYTES:
        raise SM2Error(f"signer ID must be bytes of at most {_MAX_ID_BYTES} bytes")


def signature_to_raw(signature_der: bytes) -> bytes:
    """DER `SEQUENCE { r INTEGER, s INTEGER }` → 64-byte r‖s, rejecting non-canonical forms."""
    der = bytes(signature_der)
    # pyca/cryptography's strict DER reader: it runs on every verification, where asn1crypto's
    # load-and-re-encode cost several times more.
    try:
        r, s = decode_dss_signature(der)
    except ValueError as exc:
        raise SM2Error(f"signature is not a canonical DER SEQUENCE of r, s: {exc}") from exc
    # Re-encoding must give the same bytes, otherwise one signature has many encodings.
    if encode_dss_signature(r, s) != der:
        raise SM2Error("signature is not in canonical DER form")
    if not (0 < r < CURVE_ORDER and 0 < s < CURVE_ORDER):
        raise SM2Error("signature r or s out of range [1, n-1]")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signature_from_raw(raw: bytes) -> bytes:
    """64-byte r‖s → DER `SEQUENCE { r, s }` as OpenSSL produces."""
    if len(raw) != 64:
        raise SM2Error("raw SM2 signature must be 64 bytes (r‖s)")
    der: bytes = algos.DSASignature.from_p1363(raw).dump()
    return der


@dataclass(frozen=True, eq=False)
class SM2PublicKey:
    """An SM2 public key: the uncompressed point 04‖X‖Y (65 bytes)."""

    point: bytes
    _engines: dict[bytes, _Engine] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.point) != 65 or self.point[0] != 4 or not _Engine.is_pk_valid(self.point):
            raise SM2Error("not a valid SM2 public key point")

    @classmethod
    def from_point(cls, point: bytes) -> SM2PublicKey:
        """Accept 04‖X‖Y, compressed 02/03‖X, or bare X‖Y."""
        data = bytes(point)
        if len(data) == 64:
            data = b"\x04" + data
        if len(data) == 33 and data[0] in (2, 3):
            if not _Engine.is_pk_valid(data):
                raise SM2Error("not a valid SM2 public key point")
            data = _Engine.convert_pk(data)
        return cls(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and other.point == self.point

    def __hash__(self) -> int:
        return hash(self.point)

    def _engine(self, signer_id: bytes) -> _Engine:
        engine = self._engines.get(signer_id)
        if engine is None:
            _check_signer_id(signer_id)
            engine = _Engine(pk=self.point, uid=bytes(signer_id))
            self._engines[signer_id] = engine
        return engine

    def z_value(self, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
        """Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA), GB/T 32918.2 §5.5."""
        _check_signer_id(signer_id)
        entl = (len(signer_id) * 8).to_bytes(2, "big")
        return sm3(entl + bytes(signer_id) + _A + _B + _GX + _GY + self.point[1:])

    def verify(
        self, signature_der: bytes, data: bytes, *, signer_id: bytes = DEFAULT_SIGNER_ID
    ) -> bool:
        """True when `signature_der` is a valid SM2-with-SM3 signature over `data`."""
        try:
            raw = signature_to_raw(signature_der)
        except SM2Error:
            return False
        return bool(self._engine(signer_id).verify(bytes(data), raw))

    def verify_digest(self, signature_der: bytes, e: bytes) -> bool:
        """Verify over a precomputed e = SM3(Z ‖ M) (32 bytes)."""
        if len(e) != 32:
            raise SM2Error("digest e must be 32 bytes")
        try:
            raw = signature_to_raw(signature_der)
        except SM2Error:
            return False
        return bool(self._engine(DEFAULT_SIGNER_ID).verify_digest(bytes(e), raw))

    # --- encodings -----------------------------------------------------------------------
    def to_asn1(self) -> keys.PublicKeyInfo:
        return keys.PublicKeyInfo(
            {
                "algorithm": {"algorithm": "ec", "parameters": {"named": "sm2"}},
                "public_key": self.point,
            }
        )

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo with id-ecPublicKey and the SM2 curve OID."""
        der: bytes = self.to_asn1().dump()
        return der

    def to_pem(self) -> bytes:
        armored: bytes = pem.armor("PUBLIC KEY", self.to_der())
        return armored

    @classmethod
    def from_asn1(cls, info: keys.PublicKeyInfo) -> SM2PublicKey:
        algorithm = info["algorithm"]
        if algorithm["algorithm"].dotted != OID_EC_PUBLIC_KEY:
            raise SM2Error(f"public key algorithm {algorithm['algorithm'].dotted} is not EC")
        params = algorithm["parameters"]
        if params.name != "named" or params.chosen.dotted != OID_SM2_CURVE:
            raise SM2Error("public key is not on the SM2 curve (1.2.156.10197.1.301)")
        return cls.from_point(bytes(info["public_key"].contents[1:]))

    @classmethod
    def from_der(cls, der: bytes) -> SM2PublicKey:
        try:
            info = keys.PublicKeyInfo.load(bytes(der), strict=True)
            info.native  # noqa: B018 - forces a full parse so malformed input fails here
        except (ValueError, TypeError) as exc:
            raise SM2Error(f"not a DER SubjectPublicKeyInfo: {exc}") from exc
        return cls.from_asn1(info)

    @classmethod
    def from_pem(cls, data: bytes) -> SM2PublicKey:
        return cls.from_der(_unarmor(data, {"PUBLIC KEY"}))


class SM2PrivateKey:
    """An SM2 private key d ∈ [1, n-2] with its public point."""

    __slots__ = ("_d", "_engines", "public_key")

    def __init__(self, scalar: bytes) -> None:
        d = bytes(scalar)
        if len(d) != 32 or not _Engine.is_sk_valid(d):
            raise SM2Error("SM2 private key must be a 32-byte scalar in [1, n-2]")
        self._d = d
        self.public_key = SM2PublicKey(_Engine.get_pk(d))
        self._engines: dict[bytes, _Engine] = {}

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        while True:
            candidate = secrets.token_bytes(32)
            if _Engine.is_sk_valid(candidate):
                return cls(candidate)

    def __repr__(self) -> str:  # never show the scalar
        return f"SM2PrivateKey(public={self.public_key.point[:9].hex()}…)"

    def private_scalar(self) -> bytes:
        return self._d

    def _engine(self, signer_id: bytes) -> _Engine:
        engine = self._engines.get(signer_id)
        if engine is None:
            _check_signer_id(signer_id)
            # The engine draws k from the OS CSPRNG; passing it explicitly keeps that true
            # whatever options the C extension was built with.
            engine = _Engine(self._d, uid=bytes(signer_id), rnd_fn=secrets.token_bytes)
            self._engines[signer_id] = engine
        return engine

    def sign(self, data: bytes, *, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
        """SM2-with-SM3 signature over `data` (Z prepended per GB/T 32918), DER-encoded."""
        return signature_from_raw(self._engine(signer_id).sign(bytes(data)))

    def sign_digest(self, e: bytes) -> bytes:
        """Sign a precomputed e = SM3(Z ‖ M)."""
        if len(e) != 32:
            raise SM2Error("digest e must be 32 bytes")
        return signature_from_raw(self._engine(DEFAULT_SIGNER_ID).sign_digest(bytes(e)))

    # --- encodings -----------------------------------------------------------------------
    def to_der(self) -> bytes:
        """PKCS#8 PrivateKeyInfo, byte-identical to what `openssl genpkey` writes."""
        ec = keys.ECPrivateKey(
            {
                "version": "ecPrivkeyVer1",
                "private_key": int.from_bytes(self._d, "big"),
                "public_key": self.public_key.point,
            }
        )
        ec["private_key"].set_encoded_width(32)
        der: bytes = keys.PrivateKeyInfo(
            {
                "version": 0,
                "private_key_algorithm": {"algorithm": "ec", "parameters": {"named": "sm2"}},
                "private_key": ec,
            }
        ).dump()
        return der

    def to_pem(self) -> bytes:
        armored: bytes = pem.armor("PRIVATE KEY", self.to_der())
        return armored

    @classmethod
    def from_der(cls, der: bytes) -> SM2PrivateKey:
        """Read PKCS#8 PrivateKeyInfo or SEC1 ECPrivateKey on the SM2 curve."""
        data = bytes(der)
        try:
            info = keys.PrivateKeyInfo.load(data, strict=True)
            algorithm = info["private_key_algorithm"]
            if algorithm["algorithm"].dotted != OID_EC_PUBLIC_KEY:
                raise SM2Error("private key algorithm is not EC")
            params = algorithm["parameters"]
            if params.name != "named" or params.chosen.dotted != OID_SM2_CURVE:
                raise SM2Error("private key is not on the SM2 curve (1.2.156.10197.1.301)")
            ec = info["private_key"].parsed
        except SM2Error:
            raise
        except (ValueError, TypeError, KeyError):
            ec = _load_sec1(data)
        return cls._from_ec(ec)

    @classmethod
    def _from_ec(cls, ec: keys.ECPrivateKey) -> SM2PrivateKey:
        try:
            scalar = ec["private_key"].native
        except (ValueError, TypeError) as exc:
            raise SM2Error(f"malformed EC private key: {exc}") from exc
        if not isinstance(scalar, int) or not 0 < scalar < CURVE_ORDER - 1:
            raise SM2Error("SM2 private key scalar out of range")
        key = cls(scalar.to_bytes(32, "big"))
        embedded = ec["public_key"]
        if embedded.native is not None and bytes(embedded.native) != key.public_key.point:
            raise SM2Error("embedded public key does not match the private scalar")
        return key

    @classmethod
    def from_pem(cls, data: bytes) -> SM2PrivateKey:
        return cls.from_der(_unarmor(data, {"PRIVATE KEY", "EC PRIVATE KEY"}))


def _load_sec1(data: bytes) -> keys.ECPrivateKey:
    try:
        ec = keys.ECPrivateKey.load(data, strict=True)
        params = ec["parameters"]
        if params.native is not None and params.chosen.dotted != OID_SM2_CURVE:
            raise SM2Error("private key is not on the SM2 curve (1.2.156.10197.1.301)")
        ec.native  # noqa: B018 - forces a full parse so malformed input fails here
    except SM2Error:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SM2Error(f"not a PKCS#8 or SEC1 SM2 private key: {exc}") from exc
    return ec


def _unarmor(data: bytes, allowed: set[str]) -> bytes:
    raw = bytes(data)
    if not pem.detect(raw):
        raise SM2Error(f"expected PEM ({' or '.join(sorted(allowed))})")
    der: bytes
    try:
        label, _headers, der = pem.unarmor(raw)
    except ValueError as exc:
        raise SM2Error(f"malformed PEM: {exc}") from exc
    if label not in allowed:
        raise SM2Error(f"PEM label {label!r} is not one of {sorted(allowed)}")
    return der


class VerifiedSignatures:
    """Remembers signatures that verified, keyed by SM3 over (key, signature, data).

    Certificates and seals are verified again for every document they sign; their signatures
    never change, so a positive result can be reused. Only successes are kept (failures are
    cheap to recompute and would let bad input fill the cache), and the key is a digest, so
    large signed structures are not held in memory.
    """

    def __init__(self, maxsize: int = 8192) -> None:
        self._maxsize = maxsize
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, key: SM2PublicKey, signature_der: bytes, data: bytes) -> bool:
        sig = bytes(signature_der)
        token = sm3(key.point + len(sig).to_bytes(4, "big") + sig + bytes(data))
        with self._lock:
            if token in self._ok:
                self._ok.move_to_end(token)
                return True
        if not key.verify(sig, data):
            return False
        with self._lock:
            self._ok[token] = None
            if len(self._ok) > self._maxsize:
                self._ok.popitem(last=False)
        return True

    def clear(self) -> None:
        with self._lock:
            self._ok.clear()


# Shared by certificate-chain and seal checks (zwfw.crypto.x509, zwfw.crypto.ses).
verified_signatures = VerifiedSignatures()


def load_public_key(data: bytes) -> SM2PublicKey:
    """PEM or DER SubjectPublicKeyInfo."""
    return SM2PublicKey.from_pem(data) if pem.detect(data) else SM2PublicKey.from_der(data)


def load_private_key(data: bytes) -> SM2PrivateKey:
    """PEM or DER, PKCS#8 or SEC1."""
    return SM2PrivateKey.from_pem(data) if pem.detect(data) else SM2PrivateKey.from_der(data)


__all__ = [
    "CURVE_ORDER",
    "DEFAULT_SIGNER_ID",
    "OID_EC_PUBLIC_KEY",
    "OID_SM2_CURVE",
    "OID_SM2_WITH_SM3",
    "SM2Error",
    "SM2PrivateKey",
    "SM2PublicKey",
    "VerifiedSignatures",
    "load_private_key",
    "load_public_key",
    "signature_from_raw",
    "signature_to_raw",
    "verified_signatures",
]
