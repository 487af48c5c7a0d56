"""What the e-licence service does, apart from HTTP."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from zwfw.codes import CodeError, build_licence_id, parse_credit_code
from zwfw.codes.masking import mask_resident_id
from zwfw.crypto.hashing import sm3
from zwfw.services.elicense.document import (
    COPY_FORMAT,
    LICENCE_FORMAT,
    DocumentVerification,
    canonical,
    copy_property,
    digest,
    licence_property,
    verify_document,
)
from zwfw.services.elicense.models import (
    AnnotatedCopy,
    Licence,
    LicenceType,
    UsageRecord,
    utc,
)
from zwfw.services.elicense.sealing import SealClient
from zwfw.services.elicense.settings import ElicenseSettings

VALID = "01"
EXPIRED = "05"
# Status changes an issuer may make (05 expired follows from the validity end date).
TRANSITIONS: dict[str, frozenset[str]] = {
    "01": frozenset({"02", "03", "04", "07"}),
    "02": frozenset({"01", "03", "04", "07"}),
}


class LicenceError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def mask_holder_code(code: str) -> str:
    """Organisations' credit codes are public; any other holder code is personal: masked."""
    try:
        return str(parse_credit_code(code))
    except CodeError:
        return mask_resident_id(code)


def yyyymmdd(value: date | None) -> str | None:
    return value.strftime("%Y%m%d") if value is not None else None


@dataclass(frozen=True)
class Holder:
    name: str
    code: str
    code_type: str
    sub: str


@dataclass(frozen=True)
class Issuance:
    type_code: str
    issuer_code: str
    licence_number: str
    serial: str | None
    version: int
    issue_date: date | None
    valid_from: date | None
    valid_until: date | None
    jurisdiction: str
    holder: Holder
    related_item: str | None
    data: dict[str, Any]


class LicenceService:
    """State shared by the requests of one e-licence process (``app.state.elicense``)."""

    def __init__(self, settings: ElicenseSettings, seals: SealClient) -> None:
        self.settings = settings
        self.seals = seals
        self.zone = ZoneInfo(settings.timezone)
        self.clock = lambda: datetime.now(UTC)

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def today(self) -> date:
        return self.now().astimezone(self.zone).date()

    def verify_url(self, identifier: str) -> str:
        return f"{self.settings.public_base_url.rstrip('/')}/verify/{identifier}"

    # --- status -----------------------------------------------------------------------

    def effective_status(self, licence: Licence) -> str:
        if (
            licence.status == VALID
            and licence.valid_until is not None
            and licence.valid_until < self.today()
        ):
            return EXPIRED
        return licence.status

    def change_status(self, db: Session, identifier: str, status: str, reason: str) -> Licence:
        licence = self.licence(db, identifier)
        current = self.effective_status(licence)
        if status not in TRANSITIONS.get(current, frozenset()):
            raise LicenceError(409, f"licence status {current} cannot change to {status}")
        licence.status = status
        licence.status_reason = reason
        licence.status_changed_at = self.now()
        db.flush()
        return licence

    # --- issuance ---------------------------------------------------------------------

    def licence(self, db: Session, identifier: str) -> Licence:
        licence = db.get(Licence, identifier)
        if licence is None:
            raise LicenceError(404, f"licence {identifier} does not exist")
        return licence

    def holder_licence(self, db: Session, identifier: str, sub: str) -> Licence:
        """The licence if ``sub`` holds it; otherwise the same 404 as for no licence at all,
        so nobody learns which identifiers exist."""
        licence = db.get(Licence, identifier)
        if licence is None or licence.holder_sub != sub:
            raise LicenceError(404, f"licence {identifier} does not exist")
        return licence

    def issue(self, db: Session, request: Issuance, *, actor: str) -> Licence:
        from jsonschema import Draft202012Validator

        licence_type = db.get(LicenceType, request.type_code)
        if licence_type is None:
            raise LicenceError(400, f"licence type {request.type_code} is not registered")
        issuer = self.settings.issuers.get(request.issuer_code)
        if issuer is None:
            raise LicenceError(
                400, f"{request.issuer_code} is not an issuing authority of this platform"
            )
        errors = sorted(
            Draft202012Validator(licence_type.data_schema).iter_errors(request.data),
            key=lambda e: list(e.path),
        )
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(data)"
            raise LicenceError(422, f"data does not match the type's schema at {where}: "
                               f"{errors[0].message}")  # fmt: skip
        issue_date = request.issue_date or self.today()
        valid_from = request.valid_from or issue_date
        if request.valid_until is not None and request.valid_until < valid_from:
            raise LicenceError(400, "valid_until is before valid_from")
        serial = request.serial or f"{issue_date:%Y%m%d}{secrets.randbelow(10**12):012d}"
        try:
            identifier = str(
                build_licence_id(request.type_code, request.issuer_code, serial, request.version)
            )
        except CodeError as exc:
            raise LicenceError(400, str(exc)) from None
        if db.get(Licence, identifier) is not None:
            raise LicenceError(409, f"licence {identifier} already exists")
        document = {
            "format": LICENCE_FORMAT,
            "identifier": identifier,
            "type_code": request.type_code,
            "type_name": licence_type.name,
            "licence_number": request.licence_number,
            "version": f"{request.version:03d}",
            "issue_date": yyyymmdd(issue_date),
            "issuer_name": issuer.name,
            "issuer_code": request.issuer_code,
            "defining_authority_name": licence_type.defining_authority_name,
            "defining_authority_code": request.type_code[:18],
            "valid_from": yyyymmdd(valid_from),
            "valid_until": yyyymmdd(request.valid_until),
            "jurisdiction": request.jurisdiction,
            "holder_name": request.holder.name,
            "holder_code": mask_holder_code(request.holder.code),
            "holder_code_type": request.holder.code_type,
            "related_item": request.related_item,
            "data": request.data,
        }
        data = canonical(document)
        signature = self.seals.sign(issuer.es_id, sm3(data), licence_property(identifier))
        licence = Licence(
            identifier=identifier,
            type_code=request.type_code,
            issuer_code=request.issuer_code,
            licence_number=request.licence_number,
            holder_sub=request.holder.sub,
            holder_name=request.holder.name,
            holder_code=document["holder_code"],
            holder_code_type=request.holder.code_type,
            valid_from=valid_from,
            valid_until=request.valid_until,
            document=data,
            signature=signature,
            es_id=issuer.es_id,
            status=VALID,
            status_reason=None,
            status_changed_at=None,
            issued_at=self.now(),
            issued_by=actor,
        )
        db.add(licence)
        db.flush()
        return licence

    # --- annotated copies -------------------------------------------------------------

    def make_copy(
        self,
        db: Session,
        licence: Licence,
        *,
        made_by: str,
        cause: str,
        expires_at: datetime,
    ) -> AnnotatedCopy:
        status = self.effective_status(licence)
        if status != VALID:
            raise LicenceError(409, f"licence {licence.identifier} is not valid (status {status})")
        now = self.now().replace(microsecond=0)
        expires = expires_at.astimezone(UTC).replace(microsecond=0)
        if expires <= now:
            raise LicenceError(400, "expires_at must be in the future")
        longest = now + timedelta(days=self.settings.max_copy_days)
        if expires > longest:
            raise LicenceError(
                400,
                f"an annotated copy may live at most {self.settings.max_copy_days} days "
                f"(until {longest.isoformat()})",
            )
        import json

        copy_id = secrets.token_hex(16)
        document = {
            "format": COPY_FORMAT,
            "licence": json.loads(licence.document),
            "annotation": {
                "copy_id": copy_id,
                "made_at": now.isoformat(),
                "made_by": made_by,
                "cause": cause,
                "expires_at": expires.isoformat(),
            },
        }
        data = canonical(document)
        signature = self.seals.sign(licence.es_id, sm3(data), copy_property(copy_id))
        copy = AnnotatedCopy(
            copy_id=copy_id,
            identifier=licence.identifier,
            made_by=made_by,
            cause=cause,
            made_at=now,
            expires_at=expires,
            document=data,
            signature=signature,
        )
        db.add(copy)
        db.flush()
        return copy

    # --- usage and verification -------------------------------------------------------

    def record_use(
        self,
        db: Session,
        licence: Licence,
        *,
        actor: str,
        actor_kind: str,
        action: str,
        cause: str,
        client_id: str | None = None,
        copy_id: str | None = None,
    ) -> UsageRecord:
        record = UsageRecord(
            identifier=licence.identifier,
            at=self.now(),
            actor=actor,
            actor_kind=actor_kind,
            client_id=client_id,
            action=action,
            cause=cause,
            copy_id=copy_id,
        )
        db.add(record)
        db.flush()
        return record

    def usage(self, db: Session, identifier: str) -> list[UsageRecord]:
        return list(
            db.scalars(
                select(UsageRecord)
                .where(UsageRecord.identifier == identifier)
                .order_by(UsageRecord.at, UsageRecord.id)
            ).all()
        )

    def verify(self, db: Session, data: bytes, signature: bytes) -> DocumentVerification:
        def status(identifier: str) -> str | None:
            licence = db.get(Licence, identifier)
            return self.effective_status(licence) if licence is not None else None

        def issuer_seal(code: str) -> str | None:
            issuer = self.settings.issuers.get(code)
            return issuer.es_id if issuer is not None else None

        def issued(identifier: str) -> bytes | None:
            licence = db.get(Licence, identifier)
            return digest(licence.document) if licence is not None else None

        def made(copy_id: str) -> tuple[str, bytes] | None:
            copy = db.get(AnnotatedCopy, copy_id)
            return (copy.identifier, digest(copy.document)) if copy is not None else None

        return verify_document(
            data,
            signature,
            trust_anchors=self.seals.trust_anchors(),
            now=self.now(),
            seal_status_lookup=self.seals.status,
            issuer_seals=issuer_seal,
            licence_status=status,
            issued_digest=issued,
            copy_digest=made,
        )


def as_utc(moment: datetime) -> datetime:
    return utc(moment)
