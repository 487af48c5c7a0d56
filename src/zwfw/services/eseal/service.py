"""What the e-seal service does, apart from HTTP: make seals, sign with them, verify.

Verification is the hot path. What it reuses across requests: parsed certificates
(``zwfw.crypto.x509``), verified maker and CA signatures (``zwfw.crypto.sm2``), the trust
anchors, and, only when ``status_cache_seconds`` is above 0, seal statuses (by default every
verification reads the register: another replica may have revoked the seal). The one thing it
never reuses is a verdict on a signature.
"""

from __future__ import annotations

import base64
import secrets
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from zwfw.crypto import ses
from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertProfile, SM2Certificate
from zwfw.services.eseal.authority import Keys, SealAuthority, ensure_authority
from zwfw.services.eseal.models import Seal, Signer, utc
from zwfw.services.eseal.settings import EsealSettings

# Seal categories (印章类别) a registry keeps; all are organisation seals in GB/T 38540 terms.
SEAL_CATEGORIES: dict[str, str] = {
    "legal_name": "法定名称章",
    "finance": "财务专用章",
    "contract": "合同专用章",
    "invoice": "发票专用章",
    "business": "业务专用章",
    "licence": "电子证照专用章",
}
# Licence seals (电子证照专用章) seal what the e-licence registry issues; only the e-licence
# service (``EsealSettings.licence_client``) may be their signer, or any holder of a signing
# token on the list could issue licences the registry never did.
LICENCE_CATEGORY = "licence"
# SES_ESPropertyInfo.type: 1 = organisation seal (单位印章), 2 = personal seal (GM/T 0031).
ORGANISATION_SEAL_TYPE = 1
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_STATUS_CACHE_LIMIT = 10_000


class SealServiceError(Exception):
    """A request the registry refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def png_size(data: bytes) -> tuple[int, int]:
    """Pixel width and height of a PNG, refusing anything that is not one."""
    if len(data) < 33 or not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR":
        raise SealServiceError(400, "the seal picture must be a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    if not (0 < width <= 4096 and 0 < height <= 4096):
        raise SealServiceError(400, f"the seal picture is {width}x{height} pixels; at most 4096")
    return width, height


@dataclass(frozen=True)
class SealStatusRecord:
    es_id: str
    status: str
    reason: str | None
    changed_at: datetime | None
    valid_start: datetime
    valid_end: datetime

    def as_dict(self, now: datetime) -> dict[str, Any]:
        # The period is stated to the second, its last second included: judged as signing
        # judges it, so the status never says "ended" while the seal still signs.
        moment = now.replace(microsecond=0)
        return {
            "es_id": self.es_id,
            "status": self.status,
            "reason": self.reason,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "valid_start": self.valid_start.isoformat(),
            "valid_end": self.valid_end.isoformat(),
            "within_validity": self.valid_start <= moment <= self.valid_end,
        }


def status_record(seal: Seal) -> SealStatusRecord:
    return SealStatusRecord(
        es_id=seal.es_id,
        status=seal.status,
        reason=seal.status_reason,
        changed_at=utc(seal.status_changed_at) if seal.status_changed_at else None,
        valid_start=utc(seal.valid_start),
        valid_end=utc(seal.valid_end),
    )


@dataclass(frozen=True)
class SignerRequest:
    subject: str
    name: str


@dataclass(frozen=True)
class SealRequest:
    credit_code: str
    organisation: str
    category: str
    name: str
    picture: bytes
    width_mm: int
    height_mm: int
    valid_start: datetime
    valid_end: datetime
    signers: tuple[SignerRequest, ...]


@dataclass(frozen=True)
class Verification:
    result: ses.VerificationResult
    seal_status: SealStatusRecord | None

    def as_dict(self, now: datetime) -> dict[str, Any]:
        # Built field by field: ``dataclasses.asdict`` deep-copies recursively and was the
        # largest cost of a verify request after SM2 itself.
        result = self.result
        return {
            "valid": result.valid,
            "steps": [
                {
                    "step": s.step,
                    "name": s.name,
                    "status": s.status.value,
                    "reason": s.reason,
                    "code": s.code,
                }
                for s in result.steps
            ],
            "es_id": result.es_id,
            "seal_name": result.seal_name,
            "signer": result.signer,
            "time_info": result.time_info.isoformat() if result.time_info else None,
            "property_info": result.property_info,
            "seal_status": self.seal_status.as_dict(now) if self.seal_status else None,
        }


class SealService:
    """State shared by the requests of one e-seal process (``app.state.eseal``)."""

    def __init__(
        self,
        settings: EsealSettings,
        *,
        kek: KeyEncryptionKey | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self._kek = kek
        self.clock = clock or (lambda: datetime.now(UTC))
        self._keys: Keys | None = None
        self._authority: SealAuthority | None = None
        self._seals: dict[str, ses.SESeal] = {}
        self._status: dict[str, tuple[float, SealStatusRecord | None]] = {}
        self._lock = threading.Lock()
        self.sessions: sessionmaker[Session] | None = None

    # --- start-up ---------------------------------------------------------------------

    def start(self, sessions: sessionmaker[Session]) -> None:
        """Load (or on first start create) the seal authority; needs the KEK."""
        self.sessions = sessions
        kek = self._kek or KeyEncryptionKey.from_environment()
        self._keys = Keys(kek)
        self._authority = ensure_authority(sessions, self._keys, self.settings)

    @property
    def keys(self) -> Keys:
        if self._keys is None:
            raise RuntimeError("the e-seal service has not started")
        return self._keys

    @property
    def authority(self) -> SealAuthority:
        if self._authority is None:
            raise RuntimeError("the e-seal service has not started")
        return self._authority

    @property
    def trust_anchors(self) -> list[SM2Certificate]:
        return [self.authority.root]

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    # --- registry ---------------------------------------------------------------------

    def make_seal(self, db: Session, request: SealRequest, *, actor: str) -> Seal:
        """Issue signer certificates, make and register the SESeal, all in ``db``'s
        transaction (keys included)."""
        now = self.now()
        start = request.valid_start.astimezone(UTC).replace(microsecond=0)
        end = request.valid_end.astimezone(UTC).replace(microsecond=0)
        if end <= start:
            raise SealServiceError(400, "valid_end must be after valid_start")
        if end <= now:
            raise SealServiceError(400, "valid_end is in the past")
        maker = self.authority.maker
        if start < maker.not_before or end > maker.not_after:
            raise SealServiceError(
                400,
                f"the seal's validity must lie within the maker certificate's "
                f"({maker.not_before.isoformat()} .. {maker.not_after.isoformat()})",
            )
        subjects = [s.subject for s in request.signers]
        if len(set(subjects)) != len(subjects):
            raise SealServiceError(400, "a signer subject is listed twice")
        if request.category == LICENCE_CATEGORY:
            self._check_licence_signers(subjects)
        width_px, height_px = png_size(request.picture)
        del width_px, height_px  # the registry stores millimetres; pixels only prove a PNG
        es_id = f"{self.settings.region_code}{secrets.token_hex(5).upper()}"
        ca = self.authority.ca(self.keys, db)
        days = (end - start).days + 1
        signers: list[Signer] = []
        certs: list[SM2Certificate] = []
        for index, wanted in enumerate(request.signers):
            key = SM2PrivateKey.generate()
            cert = ca.issue(
                key.public_key,
                wanted.name,
                CertProfile.SIGNER,
                organization=request.organisation,
                valid_from=start,
                valid_days=days,
            )
            key_id = f"signer-{es_id}-{index}"
            self.keys.put(db, key_id, key)
            certs.append(cert)
            signers.append(
                Signer(subject=wanted.subject, name=wanted.name, cert_der=cert.der, key_id=key_id)
            )
        seal_der = ses.make_seal(
            maker_cert=maker,
            maker_key=self.keys.get(db, self.authority.maker_key_id),
            es_id=es_id,
            name=request.name,
            seal_type=ORGANISATION_SEAL_TYPE,
            signer_certs=certs,
            picture=ses.SealPicture("PNG", request.picture, request.width_mm, request.height_mm),
            valid_start=start,
            valid_end=end,
            created_at=now,
        )
        seal = Seal(
            es_id=es_id,
            credit_code=request.credit_code,
            organisation=request.organisation,
            category=request.category,
            name=request.name,
            picture=request.picture,
            picture_width_mm=request.width_mm,
            picture_height_mm=request.height_mm,
            valid_start=start,
            valid_end=end,
            seal_der=seal_der,
            status=ses.SealStatus.VALID.value,
            status_reason=None,
            status_changed_at=None,
            created_at=now,
            created_by=actor,
            signers=signers,
        )
        db.add(seal)
        db.flush()
        return seal

    def _check_licence_signers(self, subjects: list[str]) -> None:
        client = self.settings.licence_client
        if client is None:
            raise SealServiceError(
                409,
                "licence seals cannot be made: this e-seal service has no e-licence client "
                "configured (licence_client)",
            )
        if subjects != [client]:
            raise SealServiceError(
                400,
                f"a licence seal has exactly one signer, the e-licence service's client {client}",
            )

    _TRANSITIONS: dict[str, dict[str, str]] = {
        "suspend": {"valid": "suspended"},
        "resume": {"suspended": "valid"},
        "revoke": {"valid": "revoked", "suspended": "revoked"},
    }

    def change_status(self, db: Session, es_id: str, action: str, reason: str) -> Seal:
        seal = self.get_seal(db, es_id)
        target = self._TRANSITIONS[action].get(seal.status)
        if target is None:
            raise SealServiceError(409, f"seal {es_id} is {seal.status}; cannot {action} it")
        seal.status = target
        seal.status_reason = reason
        seal.status_changed_at = self.now()
        db.flush()
        with self._lock:
            self._status[es_id] = (time.monotonic(), status_record(seal))
        return seal

    def get_seal(self, db: Session, es_id: str) -> Seal:
        seal = db.get(Seal, es_id)
        if seal is None:
            raise SealServiceError(404, f"seal {es_id} does not exist")
        return seal

    def list_seals(self, db: Session, credit_code: str | None) -> list[Seal]:
        query = select(Seal).order_by(Seal.created_at, Seal.es_id)
        if credit_code is not None:
            query = query.where(Seal.credit_code == credit_code)
        return list(db.scalars(query).all())

    # --- signing ----------------------------------------------------------------------

    def _parsed(self, seal: Seal) -> ses.SESeal:
        with self._lock:
            parsed = self._seals.get(seal.es_id)
        if parsed is None:
            parsed = ses.parse_seal(seal.seal_der)
            with self._lock:
                self._seals[seal.es_id] = parsed
        return parsed

    def sign(
        self, db: Session, es_id: str, subject: str, data_hash: bytes, property_info: str
    ) -> tuple[bytes, datetime, Signer]:
        """SES_Signature (DER) by ``subject``, who must be on the seal's signer list."""
        seal = self.get_seal(db, es_id)
        signer = next((s for s in seal.signers if s.subject == subject), None)
        if signer is None:
            raise SealServiceError(403, f"the caller is not an authorised signer of seal {es_id}")
        if seal.category == LICENCE_CATEGORY and subject != self.settings.licence_client:
            # Also when the signer list predates a change of the configured client.
            raise SealServiceError(
                403, f"only the e-licence service signs with licence seal {es_id}"
            )
        if seal.status != ses.SealStatus.VALID.value:
            raise SealServiceError(409, f"seal {es_id} is {seal.status}: {seal.status_reason}")
        now = self.now().replace(microsecond=0)
        if not utc(seal.valid_start) <= now <= utc(seal.valid_end):
            raise SealServiceError(409, f"seal {es_id} is outside its validity window")
        cert = SM2Certificate.from_der(signer.cert_der)
        if not cert.valid_at(now):
            raise SealServiceError(409, "the signer certificate is not valid now")
        key = self.keys.get(db, signer.key_id)
        der = ses.sign(
            self._parsed(seal),
            cert,
            key,
            data_hash=data_hash,
            time_info=now,
            property_info=property_info,
        )
        return der, now, signer

    # --- verification -----------------------------------------------------------------

    def seal_status(self, es_id: str) -> SealStatusRecord | None:
        ttl = self.settings.status_cache_seconds
        now = time.monotonic()
        with self._lock:
            cached = self._status.get(es_id)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
        assert self.sessions is not None
        with self.sessions() as session:
            seal = session.get(Seal, es_id)
            record = status_record(seal) if seal is not None else None
        with self._lock:
            if len(self._status) >= _STATUS_CACHE_LIMIT:
                self._status.clear()
            self._status[es_id] = (now, record)
        return record

    def verify(
        self, signature: bytes, content: bytes | None = None, digest: bytes | None = None
    ) -> Verification:
        seen: list[SealStatusRecord | None] = []

        def lookup(es_id: str) -> ses.SealStatus | None:
            record = self.seal_status(es_id)
            seen.append(record)
            return ses.SealStatus(record.status) if record is not None else None

        result = ses.verify_signature(
            signature,
            content,
            digest=digest,
            trust_anchors=self.trust_anchors,
            at=self.now(),
            seal_status_lookup=lookup,
        )
        record = seen[0] if seen else None
        if not seen and result.es_id is not None:
            # Step 3 stopped before asking; the registry's status is reported all the same.
            record = self.seal_status(result.es_id)
        return Verification(result, record)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
