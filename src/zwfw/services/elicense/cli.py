"""`zwfw licence verify`: verification of a sealed licence or annotated copy, offline or with
what the registry publishes.

Offline it checks what the files alone can show: the document, the identifier and the seal's
five GB/T 38540 steps (and a copy's expiry). The registry's side comes from its public API,
as files saved earlier or fetched now (``--from-api``):

- ``--issuers FILE``: the issuer seal register, ``GET {elicense}/issuers``: which seal each
  issuing authority's licences carry, and those seals' status;
- ``--status FILE``: the licence's record, ``GET {elicense}/verify/{identifier}``: its
  status and the SM3 digest of the document issued under the identifier.

What could not be checked is listed, never counted as passed. Exit 0: no check failed (the
output names any check not made); 1: a check failed (the first line says which and why);
2: usage error (unreadable or mismatched input files, an unreachable ``--from-api``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
import typer
from pydantic import BaseModel, ValidationError

from zwfw.codes import CodeError, parse_licence_id
from zwfw.crypto import ses
from zwfw.crypto.x509 import CertificateError, load_pem_bundle
from zwfw.services.elicense.document import (
    LICENCE_FORMAT,
    DocumentError,
    DocumentVerification,
    parse_document,
    verify_document,
)

licence_app = typer.Typer(help="Electronic licences (GB/T 36901-36906).", no_args_is_help=True)

# What a skipped check leaves open, in the verdict line.
UNCHECKED_NAMES = {
    "issuer_seal": "issuer seal register",
    "seal_status": "seal status",
    "status": "licence status",
    "registry": "registry",
    "copy_registry": "the copy's registry record",
}


class UsageError(Exception):
    """Input the command cannot work with (exit 2)."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"zwfw licence verify: {message}", err=True)
    return typer.Exit(2)


def _signature(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:1] == b"\x30":
        return raw
    try:
        return base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return raw  # verification reports it as malformed


# --- the registry's published records ------------------------------------------------------


class _Issuer(BaseModel):
    issuer_code: str
    es_id: str
    seal_status: Literal["valid", "suspended", "revoked"] | None = None


class _Register(BaseModel):
    as_of: str | None = None
    issuers: list[_Issuer]


class _StatusCode(BaseModel):
    code: str


class _Record(BaseModel):
    status: _StatusCode
    document_sm3: str
    as_of: str | None = None


class _Verified(BaseModel):
    identifier: str
    licence: _Record


@dataclass(frozen=True)
class IssuerRegister:
    """``GET /issuers``: issuer code -> es_id, and each seal's status."""

    seals: dict[str, str]
    seal_status: dict[str, str | None]
    as_of: str | None

    @classmethod
    def from_json(cls, raw: Any, where: str) -> IssuerRegister:
        try:
            register = _Register.model_validate(raw)
        except ValidationError as exc:
            raise UsageError(f"{where} is not an issuer seal register (GET /issuers): "
                             f"{_first_error(exc)}") from None  # fmt: skip
        return cls(
            seals={i.issuer_code: i.es_id for i in register.issuers},
            seal_status={i.es_id: i.seal_status for i in register.issuers},
            as_of=register.as_of,
        )

    def status_lookup(self, signature: bytes) -> ses.SealStatusLookup | None:
        """The seal status lookup when the signature's seal is in the register (otherwise its
        status is not known here, and the issuer_seal check fails anyway)."""
        try:
            parsed = ses.parse_signature(signature)
            es_id = str(parsed["to_sign"]["eseal"]["e_seal_info"]["es_id"].native)
        except (ValueError, KeyError, TypeError):
            return None
        if es_id not in self.seal_status:
            return None
        known = self.seal_status[es_id]
        return lambda wanted: ses.SealStatus(known) if wanted == es_id and known else None


@dataclass(frozen=True)
class LicenceRecord:
    """``GET /verify/{identifier}``: the licence's status and registry digest; ``None``
    status and digest when the registry has no licence under the identifier (404)."""

    identifier: str
    status: str | None
    document_sm3: bytes | None
    as_of: str | None

    @classmethod
    def from_json(cls, raw: Any, where: str) -> LicenceRecord:
        try:
            verified = _Verified.model_validate(raw)
            digest = bytes.fromhex(verified.licence.document_sm3)
        except (ValidationError, ValueError) as exc:
            reason = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise UsageError(
                f"{where} is not a licence record (GET /verify/{{identifier}}): {reason}"
            ) from None
        return cls(
            verified.identifier, verified.licence.status.code, digest, verified.licence.as_of
        )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "(document)"
    return f"{where}: {error['msg']}"


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{what} {path}: {exc}") from None


def presented_identifier(data: bytes) -> str | None:
    """The licence identifier a document (licence or copy) states; None if unreadable (the
    document check then fails on its own)."""
    try:
        document = parse_document(data)
    except DocumentError:
        return None
    licence = document if document.get("format") == LICENCE_FORMAT else document.get("licence")
    if not isinstance(licence, dict) or not licence.get("identifier"):
        return None
    return str(licence["identifier"])


def _is_identifier(value: str) -> bool:
    try:
        parse_licence_id(value)
    except CodeError:
        return False
    return True


def fetch_records(
    base_url: str, identifier: str | None, *, http: httpx.Client
) -> tuple[IssuerRegister, LicenceRecord | None]:
    """The issuer seal register and the licence's record from the e-licence API."""
    base = base_url.rstrip("/")
    try:
        response = http.get(f"{base}/issuers")
        if response.status_code != 200:
            raise UsageError(f"GET {base}/issuers answered HTTP {response.status_code}")
        register = IssuerRegister.from_json(response.json(), f"GET {base}/issuers")
        if identifier is None or not _is_identifier(identifier):
            return register, None  # the identifier check fails on its own
        url = f"{base}/verify/{quote(identifier, safe='')}"
        response = http.get(url)
        if response.status_code == 404:
            return register, LicenceRecord(identifier, None, None, None)
        if response.status_code != 200:
            raise UsageError(f"GET {url} answered HTTP {response.status_code}")
        return register, LicenceRecord.from_json(response.json(), f"GET {url}")
    except httpx.HTTPError as exc:
        raise UsageError(f"{base} is unreachable: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"{base} answered something that is not JSON: {exc}") from None


# --- the command ---------------------------------------------------------------------------


def verdict(result: DocumentVerification) -> str:
    """The first line: VALID, INVALID with the first failed check, or what was not checked."""
    kind = result.kind or "document"
    failed = [c for c in result.checks if c.status == "failed"]
    if failed:
        return f"{kind}: INVALID: {failed[0].name}: {failed[0].reason}"
    if not result.valid:
        return f"{kind}: INVALID: the seal did not verify"
    if result.not_checked:
        names = ", ".join(UNCHECKED_NAMES.get(c.name, c.name) for c in result.not_checked)
        return f"{kind}: VALID as far as checked (not checked: {names})"
    return f"{kind}: VALID (every check made)"


def _when(at: str | None) -> datetime | None:
    if not at:
        return None
    moment = datetime.fromisoformat(at)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@licence_app.command("verify")
def verify(
    document: Path = typer.Argument(..., help="The sealed document (canonical JSON bytes)."),
    sig: Path = typer.Argument(..., help="SES_Signature, DER or base64."),
    trust: list[Path] = typer.Option(..., "--trust", help="Seal authority root PEM (repeatable)."),
    issuers: Path | None = typer.Option(
        None, "--issuers", metavar="FILE", help="Issuer seal register: GET {elicense}/issuers."
    ),
    status: Path | None = typer.Option(
        None,
        "--status",
        metavar="FILE",
        help="The licence's status and registry digest: GET {elicense}/verify/{identifier}.",
    ),  # fmt: skip
    from_api: str | None = typer.Option(
        None,
        "--from-api",
        metavar="URL",
        help="Read the register and the licence's record from this e-licence service now.",
    ),  # fmt: skip
    at: str | None = typer.Option(None, "--at", help="Verification time, ISO 8601 (default now)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Verify a licence or annotated copy: identifier, seal (five steps), a copy's expiry and,
    given the registry's records, issuer seal, seal status, licence status and registry
    digest. Exit 0 no check failed (unchecked ones listed), 1 a check failed, 2 usage error."""
    try:
        if from_api and (issuers or status):
            raise UsageError("give --from-api or --issuers/--status files, not both")
        anchors = [c for p in trust for c in load_pem_bundle(p.read_bytes())]
        data = document.read_bytes()
        signature = _signature(sig)
        moment = _when(at)
        identifier = presented_identifier(data)
        published: IssuerRegister | None = None
        record: LicenceRecord | None = None
        if from_api:
            with httpx.Client(timeout=20.0, follow_redirects=False) as http:
                published, record = fetch_records(from_api, identifier, http=http)
        if issuers is not None:
            published = IssuerRegister.from_json(_read_json(issuers, "--issuers"), str(issuers))
        if status is not None:
            record = LicenceRecord.from_json(_read_json(status, "--status"), str(status))
        if record is not None and identifier is not None and record.identifier != identifier:
            raise UsageError(
                f"the licence record is of {record.identifier}; the document states {identifier}"
            )
    except (OSError, ValueError, CertificateError, UsageError) as exc:
        raise _fail(str(exc)) from None
    result = verify_document(
        data,
        signature,
        trust_anchors=anchors,
        now=moment,
        seal_status_lookup=published.status_lookup(signature) if published else None,
        issuer_seals=published.seals.get if published else None,
        licence_status=(lambda _identifier: record.status) if record else None,
        issued_digest=(lambda _identifier: record.document_sm3) if record else None,
    )
    if as_json:
        out = result.as_dict()
        out["not_checked"] = [c.name for c in result.not_checked]
        out["sources"] = {
            "issuer_register_as_of": published.as_of if published else None,
            "licence_record_as_of": record.as_of if record else None,
        }
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        typer.echo(verdict(result))
        typer.echo(f"  identifier: {result.identifier}")
        if result.kind == "copy":
            typer.echo(f"  cause:      {result.cause}")
            typer.echo(f"  expires at: {result.expires_at}")
        if published is not None:
            typer.echo(f"  issuer seal register as of {published.as_of or '(not stated)'}")
        if record is not None:
            typer.echo(f"  licence record as of {record.as_of or '(not stated)'}")
        for check in result.checks:
            typer.echo(f"  {check.name:<13} {check.status:<8} {check.reason}")
    raise typer.Exit(0 if result.valid else 1)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root `zwfw` app."""
    app.add_typer(licence_app, name="licence")
