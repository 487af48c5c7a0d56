"""GB/T 38540-2020 (v4) electronic seal and seal signature structures, signing and verification.

The ASN.1 follows the standard as implemented by ofdrw (`org.ofdrw.gm.ses.v4`):

* `SES_ESPropertyInfo.certList` is an untagged CHOICE of two SEQUENCE OF types, which DER alone
  cannot tell apart; like ofdrw, the preceding `certListType` (1 = certificates,
  2 = certificate digests) selects the alternative.
* `TBS_Sign.extDatas` and `SES_Signature.timeStamp` are `[0] EXPLICIT` (optional trailing fields).
* The seal maker signs DER(SES_SealInfo); the signer signs DER(TBS_Sign). Both signatures are
  SM2-with-SM3 with the default signer ID, DER `SEQUENCE { r, s }` inside the BIT STRING.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from asn1crypto import core

from zwfw.crypto.caching import BoundedCache
from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import OID_SM2_WITH_SM3, SM2PrivateKey
from zwfw.crypto.x509 import CertificateError, SM2Certificate, clear_chain_cache, verify_chain

SES_VERSION = 4
HEADER_ID = "ES"
CERT_DIGEST_TYPE_SM3 = "SM3"
# Allowed disagreement between the signer's clock and the verifier's.
CLOCK_SKEW = timedelta(minutes=5)


class CertListType(enum.IntEnum):
    CERTS = 1
    CERT_DIGESTS = 2


# --- ASN.1 definitions ---------------------------------------------------------------------


class ExtData(core.Sequence):
    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):
    _child_spec = ExtData


class SESHeader(core.Sequence):
    _fields = [
        ("id", core.IA5String),
        ("version", core.Integer),
        ("vid", core.IA5String),
    ]


class CertInfoList(core.SequenceOf):
    _child_spec = core.OctetString


class CertDigestObj(core.Sequence):
    _fields = [
        ("type", core.PrintableString),
        ("value", core.OctetString),
    ]


class CertDigestList(core.SequenceOf):
    _child_spec = CertDigestObj


def _cert_list_spec(info: SESESPropertyInfo) -> type[core.Asn1Value] | None:
    kind = info["cert_list_type"].native
    if kind == CertListType.CERTS:
        return CertInfoList
    if kind == CertListType.CERT_DIGESTS:
        return CertDigestList
    return None  # left as Any; verification reports the unknown type


class SESESPropertyInfo(core.Sequence):
    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", core.Any),
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]
    _spec_callbacks = {"cert_list": _cert_list_spec}


class SESESPictureInfo(core.Sequence):
    _fields = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class SESSealInfo(core.Sequence):
    _fields = [
        ("header", SESHeader),
        ("es_id", core.IA5String),
        ("property", SESESPropertyInfo),
        ("picture", SESESPictureInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SESeal(core.Sequence):
    _fields = [
        ("e_seal_info", SESSealInfo),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


class TBSSign(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("eseal", SESeal),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("ext_datas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESSignature(core.Sequence):
    _fields = [
        ("to_sign", TBSSign),
        ("cert", core.OctetString),
        ("signature_alg_id", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("time_stamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


# --- building ------------------------------------------------------------------------------


class SealError(ValueError):
    """Input that cannot make a well-formed seal or seal signature."""


@dataclass(frozen=True)
class SealPicture:
    """The seal image: format (e.g. "PNG", "SVG", "OFD"), bytes, and size in millimetres."""

    type: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Extension:
    """A vendor extension (ExtData) carried in extDatas."""

    oid: str
    value: bytes
    critical: bool = False


def _second(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise SealError("times must be timezone-aware")
    # DER GeneralizedTime without fractions: one encoding per instant.
    return value.astimezone(UTC).replace(microsecond=0)


def _ext_datas(extensions: Sequence[Extension]) -> ExtensionDatas:
    return ExtensionDatas(
        [{"extn_id": e.oid, "critical": e.critical, "extn_value": e.value} for e in extensions]
    )


def make_seal(
    *,
    maker_cert: SM2Certificate,
    maker_key: SM2PrivateKey,
    es_id: str,
    name: str,
    seal_type: int,
    signer_certs: Sequence[SM2Certificate],
    picture: SealPicture,
    valid_start: datetime,
    valid_end: datetime,
    created_at: datetime | None = None,
    cert_list_type: CertListType = CertListType.CERTS,
    vid: str = "zwfw",
    extensions: Sequence[Extension] = (),
) -> bytes:
    """Make a SESeal (DER): the maker signs DER(SES_SealInfo) with its SM2 key."""
    if maker_cert.public_key != maker_key.public_key:
        raise SealError("maker key does not match the maker certificate")
    if not signer_certs:
        raise SealError("a seal needs at least one signer certificate")
    if not es_id or not es_id.isascii():
        raise SealError("esID must be a non-empty ASCII (IA5) string")
    start, end = _second(valid_start), _second(valid_end)
    if end <= start:
        raise SealError("seal validity must end after it starts")
    if cert_list_type is CertListType.CERTS:
        cert_list: core.Asn1Value = CertInfoList([c.der for c in signer_certs])
    else:
        cert_list = CertDigestList(
            [{"type": CERT_DIGEST_TYPE_SM3, "value": c.fingerprint} for c in signer_certs]
        )
    info_fields: dict[str, Any] = {
        "header": {"id": HEADER_ID, "version": SES_VERSION, "vid": vid},
        "es_id": es_id,
        "property": {
            "type": seal_type,
            "name": name,
            "cert_list_type": int(cert_list_type),
            "cert_list": cert_list,
            "create_date": _second(created_at or datetime.now(UTC)),
            "valid_start": start,
            "valid_end": end,
        },
        "picture": {
            "type": picture.type,
            "data": picture.data,
            "width": picture.width,
            "height": picture.height,
        },
    }
    if extensions:
        info_fields["ext_datas"] = _ext_datas(extensions)
    info = SESSealInfo(info_fields)
    signed_value = maker_key.sign(info.dump())
    der: bytes = SESeal(
        {
            "e_seal_info": info,
            "cert": maker_cert.der,
            "sign_alg_id": OID_SM2_WITH_SM3,
            "signed_value": signed_value,
        }
    ).dump()
    return der


def parse_seal(der: bytes) -> SESeal:
    """Decode a SESeal, raising `SealError` when it is not well-formed DER."""
    return _load(SESeal, der, "SESeal")


def parse_signature(der: bytes) -> SESSignature:
    """Decode a SES_Signature, raising `SealError` when it is not well-formed DER."""
    return _load(SESSignature, der, "SES_Signature")


_T = TypeVar("_T", bound=core.Sequence)


def _load(spec: type[_T], der: bytes, what: str) -> _T:
    try:
        value: _T = spec.load(bytes(der), strict=True)
        value.native  # noqa: B018 - forces a full parse so malformed input fails here
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise SealError(f"not a DER {what}: {exc}") from exc
    return value


def sign_tbs(tbs: TBSSign, signer_cert: SM2Certificate, signer_key: SM2PrivateKey) -> bytes:
    """Sign an already-built TBS_Sign and wrap it in SES_Signature (DER); no policy checks."""
    signature = signer_key.sign(tbs.dump())
    der: bytes = SESSignature(
        {
            "to_sign": tbs,
            "cert": signer_cert.der,
            "signature_alg_id": OID_SM2_WITH_SM3,
            "signature": signature,
        }
    ).dump()
    return der


def build_tbs(
    seal: bytes | SESeal,
    *,
    data_hash: bytes,
    time_info: datetime,
    property_info: str,
    extensions: Sequence[Extension] = (),
) -> TBSSign:
    eseal = parse_seal(seal) if isinstance(seal, bytes | bytearray) else seal
    fields: dict[str, Any] = {
        "version": SES_VERSION,
        "eseal": eseal,
        "time_info": _second(time_info),
        "data_hash": data_hash,
        "property_info": property_info,
    }
    if extensions:
        fields["ext_datas"] = _ext_datas(extensions)
    return TBSSign(fields)


def seal_lists_certificate(seal: SESeal, cert_der: bytes) -> bool:
    """Whether the seal's certList names this signer certificate (by bytes or SM3 digest)."""
    prop = seal["e_seal_info"]["property"]
    kind = prop["cert_list_type"].native
    if kind == CertListType.CERTS:
        return any(bytes(c.native) == cert_der for c in prop["cert_list"])
    if kind == CertListType.CERT_DIGESTS:
        digest = sm3(cert_der)
        return any(
            str(d["type"].native).upper() == CERT_DIGEST_TYPE_SM3
            and bytes(d["value"].native) == digest
            for d in prop["cert_list"]
        )
    return False


def sign(
    seal: bytes | SESeal,
    signer_cert: SM2Certificate,
    signer_key: SM2PrivateKey,
    *,
    content: bytes | None = None,
    data_hash: bytes | None = None,
    time_info: datetime | None = None,
    property_info: str = "",
    extensions: Sequence[Extension] = (),
) -> bytes:
    """Seal-sign a document: SES_Signature DER over SM3(content) or a given SM3 `data_hash`."""
    if (content is None) == (data_hash is None):
        raise SealError("give exactly one of content or data_hash")
    digest = sm3(content) if content is not None else bytes(data_hash or b"")
    if len(digest) != 32:
        raise SealError("data_hash must be a 32-byte SM3 digest")
    if signer_cert.public_key != signer_key.public_key:
        raise SealError("signer key does not match the signer certificate")
    if not property_info.isascii():
        raise SealError("propertyInfo must be ASCII (IA5String)")
    eseal = parse_seal(seal) if isinstance(seal, bytes | bytearray) else seal
    if not seal_lists_certificate(eseal, signer_cert.der):
        raise SealError("signer certificate is not in the seal's certificate list")
    tbs = build_tbs(
        eseal,
        data_hash=digest,
        time_info=time_info or datetime.now(UTC),
        property_info=property_info,
        extensions=extensions,
    )
    return sign_tbs(tbs, signer_cert, signer_key)


# --- verification --------------------------------------------------------------------------


class SealStatus(enum.StrEnum):
    """Status of a seal as reported by the issuing e-seal service."""

    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


SealStatusLookup = Callable[[str], SealStatus | None]


class StepStatus(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


STEP_NAMES: Mapping[int, str] = {
    1: "signature",  # SES_Signature.signature over DER(TBS_Sign) with the signer key
    2: "signer_in_seal",  # signer certificate is in the seal's certificate list
    3: "seal",  # maker signature, maker certificate, seal window and status
    4: "signer_certificate",  # signer certificate valid at timeInfo
    5: "data_hash",  # dataHash equals SM3 of the signed content
}


@dataclass(frozen=True)
class StepResult:
    step: int
    name: str
    status: StepStatus
    reason: str
    code: str | None = None  # machine-readable failure code


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of each of the five GB/T 38540 verification steps and the verdict."""

    steps: tuple[StepResult, ...]
    es_id: str | None = None
    seal_name: str | None = None
    signer: str | None = None
    time_info: datetime | None = None
    property_info: str | None = None

    @property
    def valid(self) -> bool:
        return all(s.status is StepStatus.PASSED for s in self.steps)

    def step(self, number: int) -> StepResult:
        return next(s for s in self.steps if s.step == number)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["valid"] = self.valid
        out["time_info"] = self.time_info.isoformat() if self.time_info else None
        out["steps"] = [{**asdict(s), "status": s.status.value} for s in self.steps]
        return out


def _aware(value: datetime) -> datetime:
    # GeneralizedTime without "Z" is local time of an unknown zone; read it as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _passed(n: int, reason: str) -> StepResult:
    return StepResult(n, STEP_NAMES[n], StepStatus.PASSED, reason)


def _failed(n: int, reason: str, code: str) -> StepResult:
    return StepResult(n, STEP_NAMES[n], StepStatus.FAILED, reason, code)


def _skipped(n: int, reason: str) -> StepResult:
    return StepResult(n, STEP_NAMES[n], StepStatus.SKIPPED, reason)


# --- decoding for verification ---------------------------------------------------------------
#
# A verifier sees the same few seals again and again (one per issuing department) inside
# signatures that differ only in TBS_Sign's time and digest. A seal is therefore decoded, and
# its maker signature verified, once per distinct DER; the rest of a signature is read field
# by field, which touches far less than decoding the whole structure.

# Distinct seals remembered by verify_signature; a province has a few thousand at most.
SEAL_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class SealFacts:
    """What verification reads from one SESeal, decoded once per distinct seal DER."""

    digest: bytes  # SM3 over the seal's DER: the cache key, and so its identity
    header_id: str
    version: int
    es_id: str
    name: str
    sign_alg: str
    maker_der: bytes
    signed_value: bytes
    info_der: bytes  # DER(SES_SealInfo), the bytes the maker signed
    cert_list_type: int
    listed: frozenset[bytes]  # signer certificates (type 1) or their SM3 digests (type 2)
    valid_start: datetime
    valid_end: datetime


@dataclass(frozen=True, slots=True)
class _SignatureFacts:
    tbs_der: bytes  # DER(TBS_Sign) exactly as received, the bytes the signer signed
    version: int
    seal: SealFacts
    time_info: datetime
    data_hash: bytes
    property_info: str
    signer_der: bytes
    algorithm: str
    signature: bytes


_seal_facts: BoundedCache[bytes, SealFacts] = BoundedCache(SEAL_CACHE_SIZE)
# Digests of seals whose maker signature verified with the maker certificate they carry.
_maker_signed: BoundedCache[bytes, bool] = BoundedCache(SEAL_CACHE_SIZE)


def clear_verification_caches() -> None:
    """Forget decoded seals, verified maker signatures and validated certificate paths."""
    _seal_facts.clear()
    _maker_signed.clear()
    clear_chain_cache()


def seal_facts(der: bytes) -> SealFacts:
    """Decode a SESeal for verification (remembered by SM3 of its DER); `SealError` if
    malformed. Only well-formed seals are remembered."""
    data = bytes(der)
    digest = sm3(data)
    facts = _seal_facts.get(digest)
    if facts is None:
        facts = _decode_seal(data, digest)
        _seal_facts.put(digest, facts)
    return facts


def _decode_seal(der: bytes, digest: bytes) -> SealFacts:
    seal = parse_seal(der)
    try:
        info = seal["e_seal_info"]
        header, prop = info["header"], info["property"]
        kind = prop["cert_list_type"].native
        if kind == CertListType.CERTS:
            listed = frozenset(bytes(c.native) for c in prop["cert_list"])
        elif kind == CertListType.CERT_DIGESTS:
            listed = frozenset(
                bytes(d["value"].native)
                for d in prop["cert_list"]
                if str(d["type"].native).upper() == CERT_DIGEST_TYPE_SM3
            )
        else:
            listed = frozenset()
        return SealFacts(
            digest=digest,
            header_id=header["id"].native,
            version=header["version"].native,
            es_id=info["es_id"].native,
            name=prop["name"].native,
            sign_alg=seal["sign_alg_id"].dotted,
            maker_der=bytes(seal["cert"].native),
            signed_value=bytes(seal["signed_value"].native),
            info_der=info.dump(),
            cert_list_type=kind,
            listed=listed,
            valid_start=_aware(prop["valid_start"].native),
            valid_end=_aware(prop["valid_end"].native),
        )
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise SealError(f"not a DER SESeal: {exc}") from exc


def _read_signature(der: bytes) -> _SignatureFacts:
    # asn1crypto decodes lazily: each field below is parsed when first read, and DER(TBS_Sign)
    # and the nested seal are taken as received, before their children are touched. Every
    # field is still read (optional ones included), so malformed input fails here as before.
    try:
        sig = SESSignature.load(bytes(der), strict=True)
        tbs = sig["to_sign"]
        tbs_der = tbs.dump()
        seal_der = tbs["eseal"].dump()
        version = tbs["version"].native
        time_info = _aware(tbs["time_info"].native)
        data_hash = bytes(tbs["data_hash"].native)
        property_info = tbs["property_info"].native
        tbs["ext_datas"].native  # noqa: B018 - decoded only to reject malformed input
        signer_der = bytes(sig["cert"].native)
        algorithm = sig["signature_alg_id"].dotted
        signature = bytes(sig["signature"].native)
        sig["time_stamp"].native  # noqa: B018 - decoded only to reject malformed input
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise SealError(f"not a DER SES_Signature: {exc}") from exc
    try:
        seal = seal_facts(seal_der)
    except SealError as exc:
        raise SealError(f"not a DER SES_Signature: {exc}") from exc
    return _SignatureFacts(
        tbs_der=tbs_der,
        version=version,
        seal=seal,
        time_info=time_info,
        data_hash=data_hash,
        property_info=property_info,
        signer_der=signer_der,
        algorithm=algorithm,
        signature=signature,
    )


def _maker_signature_valid(seal: SealFacts, maker: SM2Certificate) -> bool:
    # The maker certificate comes from the seal's own bytes, so the seal digest fixes the key,
    # the signed SES_SealInfo and the signature: one success covers every later sight of it.
    if seal.digest in _maker_signed:
        return True
    if not maker.public_key.verify(seal.signed_value, seal.info_der):
        return False
    _maker_signed.put(seal.digest, True)
    return True


# --- verification steps --------------------------------------------------------------------


def _step_signature(
    sig: _SignatureFacts, signer: SM2Certificate | None, cert_problem: str
) -> StepResult:
    if signer is None:
        return _failed(1, f"signer certificate unusable: {cert_problem}", "signer_cert_malformed")
    if sig.algorithm != OID_SM2_WITH_SM3:
        return _failed(1, f"unsupported signature algorithm {sig.algorithm}", "algorithm")
    if sig.version != SES_VERSION:
        return _failed(1, f"TBS_Sign version {sig.version} is not 4", "version")
    if not signer.public_key.verify(sig.signature, sig.tbs_der):
        return _failed(
            1,
            "signature over TBS_Sign does not verify with the signer certificate's key "
            "(signed data or signature altered)",
            "bad_signature",
        )
    return _passed(1, "signature over TBS_Sign verifies with the signer certificate's key")


def _step_signer_in_seal(
    seal: SealFacts, signer_der: bytes, signer: SM2Certificate | None
) -> StepResult:
    kind = seal.cert_list_type
    if kind == CertListType.CERTS:
        listed = signer_der in seal.listed
    elif kind == CertListType.CERT_DIGESTS:
        listed = (signer.fingerprint if signer else sm3(signer_der)) in seal.listed
    else:
        return _failed(2, f"unsupported certListType {kind}", "cert_list_type")
    if not listed:
        return _failed(
            2, "signer certificate is not in the seal's certificate list", "signer_not_listed"
        )
    how = "certificate" if kind == CertListType.CERTS else "SM3 certificate digest"
    return _passed(2, f"signer certificate is listed in the seal (by {how})")


def _step_seal(
    seal: SealFacts,
    time_info: datetime,
    anchors: Sequence[SM2Certificate],
    intermediates: Sequence[SM2Certificate],
    status_lookup: SealStatusLookup | None,
) -> StepResult:
    if seal.header_id != HEADER_ID or seal.version != SES_VERSION:
        return _failed(3, f"seal header {seal.header_id!r} v{seal.version} is not ES v4", "header")
    if seal.sign_alg != OID_SM2_WITH_SM3:
        return _failed(3, f"unsupported seal algorithm {seal.sign_alg}", "algorithm")
    try:
        maker = SM2Certificate.from_der(seal.maker_der)
    except CertificateError as exc:
        return _failed(3, f"maker certificate unusable: {exc.message}", "maker_cert_malformed")
    if not _maker_signature_valid(seal, maker):
        return _failed(
            3,
            "seal signature does not verify with the maker certificate (seal forged or altered)",
            "bad_maker_signature",
        )
    try:
        verify_chain(maker, anchors, intermediates=intermediates, at=time_info)
    except CertificateError as exc:
        return _failed(3, f"maker certificate rejected: {exc.message}", f"maker_{exc.code.value}")
    start, end = seal.valid_start, seal.valid_end
    if time_info < start:
        return _failed(
            3,
            f"signed at {time_info.isoformat()}, before the seal became valid "
            f"({start.isoformat()})",
            "seal_not_yet_valid",
        )
    if time_info > end:
        return _failed(
            3,
            f"signed at {time_info.isoformat()}, after the seal expired ({end.isoformat()})",
            "seal_expired",
        )
    status_note = "status not checked (no status service given)"
    if status_lookup is not None:
        status = status_lookup(seal.es_id)
        if status is None:
            return _failed(3, f"seal {seal.es_id} is unknown to the status service", "seal_unknown")
        if status is not SealStatus.VALID:
            return _failed(3, f"seal {seal.es_id} is {status.value}", f"seal_{status.value}")
        status_note = "status valid"
    return _passed(
        3,
        f"seal signed by '{maker.common_name}', maker certificate trusted, "
        f"within validity window, {status_note}",
    )


def _step_signer_cert(
    signer: SM2Certificate | None,
    time_info: datetime,
    at: datetime,
    anchors: Sequence[SM2Certificate],
    intermediates: Sequence[SM2Certificate],
) -> StepResult:
    if signer is None:
        return _skipped(4, "signer certificate could not be read")
    if time_info > at + CLOCK_SKEW:
        return _failed(4, f"timeInfo {time_info.isoformat()} is in the future", "time_in_future")
    try:
        verify_chain(signer, anchors, intermediates=intermediates, at=time_info)
    except CertificateError as exc:
        return _failed(
            4,
            f"signer certificate not valid at signing time {time_info.isoformat()}: {exc.message}",
            f"signer_{exc.code.value}",
        )
    return _passed(4, f"signer certificate was valid and trusted at {time_info.isoformat()}")


def _step_data_hash(expected: bytes, content: bytes | None, digest: bytes | None) -> StepResult:
    if content is None and digest is None:
        return _skipped(5, "no content or digest supplied")
    actual = sm3(content) if content is not None else bytes(digest or b"")
    if actual != expected:
        return _failed(
            5, "dataHash does not match SM3 of the content (content altered)", "hash_mismatch"
        )
    return _passed(5, "dataHash equals SM3 of the content")


def verify_signature(
    signature_der: bytes,
    content: bytes | None = None,
    *,
    digest: bytes | None = None,
    trust_anchors: Sequence[SM2Certificate],
    intermediates: Sequence[SM2Certificate] = (),
    at: datetime | None = None,
    seal_status_lookup: SealStatusLookup | None = None,
) -> VerificationResult:
    """Run the five GB/T 38540 verification steps on a SES_Signature.

    Every step runs even when an earlier one failed, so a verifier sees every reason. Steps 3
    and 4 judge certificates and the seal window at the signing time `timeInfo`; `at` (default
    now) only bounds how far in the future `timeInfo` may be. `seal_status_lookup(esID)` lets
    the e-seal service report suspension or revocation.

    Decoded seals, verified maker signatures and validated certificate paths are remembered
    (bounded, successes only, keyed by SM3 of the bytes they depend on); the signer's
    signature, every validity window and the seal status are checked on every call.
    """
    if content is not None and digest is not None:
        raise ValueError("give content or digest, not both")
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    try:
        sig = _read_signature(signature_der)
    except SealError as exc:
        reason = str(exc)
        return VerificationResult(
            steps=(
                _failed(1, reason, "malformed"),
                *(_skipped(n, "SES_Signature could not be decoded") for n in range(2, 6)),
            )
        )
    signer: SM2Certificate | None
    try:
        signer = SM2Certificate.from_der(sig.signer_der)
        cert_problem = ""
    except CertificateError as exc:
        signer, cert_problem = None, exc.message
    seal = sig.seal
    steps = (
        _step_signature(sig, signer, cert_problem),
        _step_signer_in_seal(seal, sig.signer_der, signer),
        _step_seal(seal, sig.time_info, trust_anchors, intermediates, seal_status_lookup),
        _step_signer_cert(signer, sig.time_info, moment, trust_anchors, intermediates),
        _step_data_hash(sig.data_hash, content, digest),
    )
    return VerificationResult(
        steps=steps,
        es_id=seal.es_id,
        seal_name=seal.name,
        signer=signer.common_name if signer else None,
        time_info=sig.time_info,
        property_info=sig.property_info,
    )


__all__ = [
    "CLOCK_SKEW",
    "SEAL_CACHE_SIZE",
    "STEP_NAMES",
    "CertDigestList",
    "CertDigestObj",
    "CertInfoList",
    "CertListType",
    "ExtData",
    "Extension",
    "ExtensionDatas",
    "SESESPictureInfo",
    "SESESPropertyInfo",
    "SESHeader",
    "SESSealInfo",
    "SESSignature",
    "SESeal",
    "SealError",
    "SealFacts",
    "SealPicture",
    "SealStatus",
    "SealStatusLookup",
    "StepResult",
    "StepStatus",
    "TBSSign",
    "VerificationResult",
    "build_tbs",
    "clear_verification_caches",
    "make_seal",
    "parse_seal",
    "parse_signature",
    "seal_facts",
    "seal_lists_certificate",
    "sign",
    "sign_tbs",
    "verify_signature",
]
