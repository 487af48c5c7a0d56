"""The sealed forms of a licence and of an annotated copy (加注件), and how they verify.

Canonical encoding (what the issuer's seal signs): the document is a JSON object encoded per
RFC 8785 (JSON Canonicalization Scheme): UTF-8, object keys sorted by their UTF-16 code units,
no insignificant whitespace, no duplicate keys, numbers in their shortest form. The seal's
``dataHash`` is SM3 over exactly those bytes, and ``propertyInfo`` names what was sealed
(``licence:<identifier>`` or ``copy:<copy id>``). A verifier re-encodes what it was handed
and refuses bytes that are not already canonical, so one licence has exactly one sealed form.

Licence document (GB/T 36903 metadata; dates ``yyyyMMdd``; ``valid_until`` null = 长期)::

    {"format": "zwfw-licence/1", "identifier", "type_code", "type_name", "licence_number",
     "version", "issue_date", "issuer_name", "issuer_code", "defining_authority_name",
     "defining_authority_code", "valid_from", "valid_until", "jurisdiction", "holder_name",
     "holder_code" (masked when personal), "holder_code_type", "related_item", "data"}

Annotated copy document::

    {"format": "zwfw-licence-copy/1", "licence": <licence document>,
     "annotation": {"copy_id", "made_at", "made_by", "cause", "expires_at"}}

Registry (what makes a sealed document a licence). A valid seal says who sealed; only the
registry says what was issued. The registry keeps every licence and copy it issued; its
digest of a document is SM3 over the canonical bytes, which is also the seal's ``dataHash``.
A presented licence must be byte for byte the one issued under its identifier, a copy must
carry that licence and be the copy made under its id. A document sealed with the right seal
but never issued (someone else allowed to use the seal, a test issuer's forgery) fails there.

``verify_document`` is the one verification path: the service's ``/verify`` endpoints, the
hall and the ``zwfw licence verify`` command all run it; what the caller cannot consult
(offline: the issuer seal register, the status, the registry) is reported as skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import rfc8785

from zwfw.codes import CodeError, parse_licence_id
from zwfw.crypto import ses
from zwfw.crypto.hashing import sm3
from zwfw.crypto.x509 import SM2Certificate

LICENCE_FORMAT = "zwfw-licence/1"
COPY_FORMAT = "zwfw-licence-copy/1"

STATUS_NAMES: dict[str, str] = {
    "01": "valid",
    "02": "suspended",
    "03": "revoked",
    "04": "cancelled",
    "05": "expired",
    "07": "withdrawn",
}


class DocumentError(ValueError):
    """Bytes that are not a canonical licence or copy document."""


def canonical(document: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``document``."""
    try:
        return rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise DocumentError(f"the document cannot be canonicalised: {exc}") from exc


def parse_document(data: bytes) -> dict[str, Any]:
    """The document in ``data``, which must already be in canonical form."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocumentError(f"the document is not UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise DocumentError("the document is not a JSON object")
    if canonical(document) != data:
        raise DocumentError("the document is not in canonical form (RFC 8785)")
    return document


def digest(data: bytes) -> bytes:
    """The registry's digest of a sealed document: SM3 over its canonical bytes."""
    return sm3(data)


def licence_property(identifier: str) -> str:
    return f"licence:{identifier}"


def copy_property(copy_id: str) -> str:
    return f"copy:{copy_id}"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # passed | failed | skipped
    reason: str
    code: str | None = None


@dataclass
class DocumentVerification:
    """Every check on a presented licence or copy, with the seal's five steps."""

    kind: str | None
    identifier: str | None
    checks: list[Check]
    seal: ses.VerificationResult | None
    licence_status: str | None = None
    cause: str | None = None
    expires_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        # Offline, the register and status checks are skipped, never passed; nothing may fail
        # and the seal itself must have verified. ``not_checked`` says what was skipped.
        return all(c.status != "failed" for c in self.checks) and any(
            c.name == "seal" and c.status == "passed" for c in self.checks
        )

    @property
    def not_checked(self) -> list[Check]:
        return [c for c in self.checks if c.status == "skipped"]

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "kind": self.kind,
            "identifier": self.identifier,
            "checks": [asdict(c) for c in self.checks],
            "seal": self.seal.as_dict() if self.seal is not None else None,
            "status": (
                {"code": self.licence_status, "name": STATUS_NAMES.get(self.licence_status, "")}
                if self.licence_status
                else None
            ),
            "cause": self.cause,
            "expires_at": self.expires_at,
            **self.extra,
        }


def _when(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else None


def verify_document(
    data: bytes,
    signature: bytes,
    *,
    trust_anchors: Sequence[SM2Certificate],
    now: datetime | None = None,
    seal_status_lookup: ses.SealStatusLookup | None = None,
    issuer_seals: Callable[[str], str | None] | None = None,
    licence_status: Callable[[str], str | None] | None = None,
    issued_digest: Callable[[str], bytes | None] | None = None,
    copy_digest: Callable[[str], tuple[str, bytes] | None] | None = None,
) -> DocumentVerification:
    """Verify a sealed licence or annotated copy.

    Checks: ``document`` (canonical, known format), ``identifier`` (GB/T 36904), ``seal``
    (the five GB/T 38540 steps over the exact bytes), ``issuer_seal`` (the seal belongs to
    the licence's issuer), ``registry`` (the licence, or the licence a copy carries, is the
    one issued under its identifier), for a copy ``copy_registry`` (the copy is the one made
    under its id), ``status`` (the licence's current status is 01) and, for a copy,
    ``copy_expiry``. ``issuer_seals`` maps an issuer code to its seal's es_id,
    ``licence_status`` an identifier to its status code, ``issued_digest`` an identifier to
    the digest of the document issued under it and ``copy_digest`` a copy id to the licence
    identifier and digest of the copy made under it (None: nothing on record); a check whose
    source is not given is skipped, never passed.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    checks: list[Check] = []
    try:
        document = parse_document(data)
        kind = {LICENCE_FORMAT: "licence", COPY_FORMAT: "copy"}.get(str(document.get("format")))
        if kind is None:
            raise DocumentError(f"unknown document format {document.get('format')!r}")
        licence = document if kind == "licence" else document.get("licence")
        if not isinstance(licence, dict) or licence.get("format") != LICENCE_FORMAT:
            raise DocumentError("the copy does not carry a licence document")
        checks.append(Check("document", "passed", f"canonical {kind} document"))
    except DocumentError as exc:
        checks.append(Check("document", "failed", str(exc), "malformed_document"))
        seal = ses.verify_signature(
            signature, data, trust_anchors=trust_anchors, at=moment,
            seal_status_lookup=seal_status_lookup,
        )  # fmt: skip
        checks.append(_seal_check(seal))
        return DocumentVerification(None, None, checks, seal)

    raw_identifier = str(licence.get("identifier", ""))
    identifier: str | None = None
    try:
        identifier = str(parse_licence_id(raw_identifier))
        checks.append(Check("identifier", "passed", "identifier is valid per GB/T 36904"))
    except CodeError as exc:
        checks.append(Check("identifier", "failed", str(exc), "bad_identifier"))

    seal = ses.verify_signature(
        signature, data, trust_anchors=trust_anchors, at=moment,
        seal_status_lookup=seal_status_lookup,
    )  # fmt: skip
    checks.append(_seal_check(seal))
    if seal_status_lookup is None:
        # Step 3 then judges the seal's window and certificates, not its registry status.
        checks.append(
            Check("seal_status", "skipped", "offline: the seal's current status not given")
        )
    expected_property = (
        licence_property(raw_identifier)
        if kind == "licence"
        else copy_property(str(document.get("annotation", {}).get("copy_id", "")))
    )
    if seal.property_info is not None and seal.property_info != expected_property:
        checks.append(
            Check(
                "sealed_as",
                "failed",
                f"the seal was applied as {seal.property_info!r}, not {expected_property!r}",
                "property_mismatch",
            )
        )

    issuer_code = str(licence.get("issuer_code", ""))
    if issuer_seals is None:
        checks.append(Check("issuer_seal", "skipped", "offline: issuer seal register not given"))
    else:
        expected = issuer_seals(issuer_code)
        if expected is None:
            checks.append(
                Check(
                    "issuer_seal", "failed",
                    f"issuer {issuer_code} is not an issuing authority of this platform",
                    "issuer_unknown",
                )
            )  # fmt: skip
        elif seal.es_id != expected:
            checks.append(
                Check(
                    "issuer_seal", "failed",
                    f"sealed with {seal.es_id}, not the issuer's seal {expected}",
                    "wrong_seal",
                )
            )  # fmt: skip
        else:
            checks.append(
                Check("issuer_seal", "passed", f"sealed with the issuer's seal {expected}")
            )

    checks.extend(_registry_checks(kind, document, licence, identifier, issued_digest,
                                   copy_digest, data))  # fmt: skip

    status: str | None = None
    if licence_status is None:
        checks.append(Check("status", "skipped", "offline: current status not queried"))
    elif identifier is None:
        checks.append(Check("status", "skipped", "identifier invalid"))
    else:
        status = licence_status(identifier)
        if status is None:
            checks.append(Check("status", "failed", "no such licence is on record", "unknown"))
        elif status != "01":
            name = STATUS_NAMES.get(status, status)
            checks.append(Check("status", "failed", f"the licence is {name} ({status})", name))
        else:
            checks.append(Check("status", "passed", "the licence is valid (01)"))

    cause = expires = None
    if kind == "copy":
        annotation = document.get("annotation") or {}
        cause, expires = annotation.get("cause"), annotation.get("expires_at")
        until = _when(str(expires))
        if until is None:
            checks.append(Check("copy_expiry", "failed", "the copy states no expiry", "no_expiry"))
        elif moment > until:
            checks.append(
                Check(
                    "copy_expiry", "failed",
                    f"the copy expired at {until.isoformat()}", "copy_expired",
                )
            )  # fmt: skip
        else:
            checks.append(
                Check("copy_expiry", "passed", f"the copy is valid until {until.isoformat()}")
            )
    return DocumentVerification(
        kind, identifier or raw_identifier, checks, seal, status, cause, expires
    )


def _registry_checks(
    kind: str,
    document: dict[str, Any],
    licence: dict[str, Any],
    identifier: str | None,
    issued_digest: Callable[[str], bytes | None] | None,
    copy_digest: Callable[[str], tuple[str, bytes] | None] | None,
    data: bytes,
) -> list[Check]:
    checks: list[Check] = []
    # A copy's document is canonical, so its licence re-encodes to the bytes issued.
    presented = data if kind == "licence" else canonical(licence)
    what = "document" if kind == "licence" else "copy's licence"
    if issued_digest is None:
        checks.append(Check("registry", "skipped", "offline: the registry's digest not given"))
    elif identifier is None:
        checks.append(Check("registry", "skipped", "identifier invalid"))
    else:
        issued = issued_digest(identifier)
        if issued is None:
            checks.append(
                Check("registry", "failed", "no licence was issued under this identifier",
                      "not_issued")
            )  # fmt: skip
        elif issued != digest(presented):
            checks.append(
                Check("registry", "failed",
                      f"the {what} differs from the one issued under this identifier",
                      "not_as_issued")
            )  # fmt: skip
        else:
            checks.append(
                Check("registry", "passed", f"the {what} is the one issued under this identifier")
            )
    if kind != "copy":
        return checks
    copy_id = str((document.get("annotation") or {}).get("copy_id") or "")
    if copy_digest is None:
        checks.append(
            Check(
                "copy_registry",
                "skipped",
                "offline: only the registry's POST /verify checks the copy itself",
            )
        )
        return checks
    made = copy_digest(copy_id) if copy_id else None
    if made is None:
        checks.append(
            Check("copy_registry", "failed", "no annotated copy was made under this id",
                  "not_made")
        )  # fmt: skip
    elif made[0] != identifier or made[1] != digest(data):
        checks.append(
            Check("copy_registry", "failed", "the copy differs from the one made under its id",
                  "not_as_made")
        )  # fmt: skip
    else:
        checks.append(Check("copy_registry", "passed", "the copy is the one made under its id"))
    return checks


def _seal_check(seal: ses.VerificationResult) -> Check:
    if seal.valid:
        return Check("seal", "passed", "all five GB/T 38540 steps passed")
    failed = [s for s in seal.steps if s.status is ses.StepStatus.FAILED]
    first = failed[0] if failed else seal.steps[-1]
    return Check("seal", "failed", f"step {first.step} ({first.name}): {first.reason}", first.code)
