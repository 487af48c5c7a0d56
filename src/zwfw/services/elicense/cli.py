"""`zwfw licence verify`: offline verification of a sealed licence or annotated copy."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from zwfw.crypto.x509 import CertificateError, load_pem_bundle
from zwfw.services.elicense.document import verify_document

licence_app = typer.Typer(help="Electronic licences (GB/T 36901-36906).", no_args_is_help=True)


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


@licence_app.command("verify")
def verify(
    document: Path = typer.Argument(..., help="The sealed document (canonical JSON bytes)."),
    sig: Path = typer.Argument(..., help="SES_Signature, DER or base64."),
    trust: list[Path] = typer.Option(..., "--trust", help="Seal authority root PEM (repeatable)."),
    at: str | None = typer.Option(None, "--at", help="Verification time, ISO 8601 (default now)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Verify a licence or annotated copy offline: identifier, seal (five steps) and, for a
    copy, its expiry. Exit 0 valid, 1 invalid, 2 usage error."""
    try:
        anchors = [c for p in trust for c in load_pem_bundle(p.read_bytes())]
        data = document.read_bytes()
        signature = _signature(sig)
        moment = datetime.fromisoformat(at) if at else None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    except (OSError, ValueError, CertificateError) as exc:
        raise _fail(str(exc)) from None
    result = verify_document(data, signature, trust_anchors=anchors, now=moment)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(f"{result.kind or 'document'}: {'VALID' if result.valid else 'INVALID'}")
        typer.echo(f"  identifier: {result.identifier}")
        if result.kind == "copy":
            typer.echo(f"  cause:      {result.cause}")
            typer.echo(f"  expires at: {result.expires_at}")
        for check in result.checks:
            typer.echo(f"  {check.name:<12} {check.status:<8} {check.reason}")
    raise typer.Exit(0 if result.valid else 1)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root `zwfw` app."""
    app.add_typer(licence_app, name="licence")
