"""`zwfw pki …` (a small SM2 CA) and `zwfw seal verify` (GB/T 38540 verification, offline or
with the seal's registered status)."""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import typer

from zwfw.crypto.keystore import (
    DirectoryBlobStore,
    EncryptedKeyStore,
    KeyEncryptionKey,
    KeyEncryptionKeyError,
    KeyStoreError,
)
from zwfw.crypto.ses import (
    SealStatus,
    StepStatus,
    VerificationResult,
    parse_signature,
    verify_signature,
)
from zwfw.crypto.sm2 import SM2Error, SM2PrivateKey
from zwfw.crypto.x509 import (
    CertificateAuthority,
    CertificateError,
    CertProfile,
    SM2Certificate,
    load_pem_bundle,
)

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
KEYS_DIR = "keys"
KEY_ID = "key"

pki_app = typer.Typer(
    help="SM2 certificate authority for seal makers and signers.", no_args_is_help=True
)
seal_app = typer.Typer(help="Electronic seals (GB/T 38540).", no_args_is_help=True)


def _fail(command: str, message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"zwfw {command}: {message}", err=True)
    return typer.Exit(code)


def _kek(kek_file: Path | None) -> KeyEncryptionKey | None:
    """The configured KEK, or None when neither the option nor the environment names one."""
    if kek_file is not None:
        return KeyEncryptionKey.from_file(kek_file)
    try:
        return KeyEncryptionKey.from_environment()
    except KeyEncryptionKeyError:
        if os.environ.get("ZWFW_KEK") or os.environ.get("ZWFW_KEK_FILE"):
            raise  # configured but unusable: say so rather than fall back to a clear key
        return None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty directory")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)


def _save_key(out: Path, key: SM2PrivateKey, kek: KeyEncryptionKey | None) -> str:
    if kek is None:
        _write_private(out / KEY_FILE, key.to_pem())
        return f"{out / KEY_FILE} (PKCS#8, mode 0600, not encrypted: no ZWFW_KEK configured)"
    store = EncryptedKeyStore(DirectoryBlobStore(out / KEYS_DIR), kek)
    store.put(KEY_ID, key)
    return f"{out / KEYS_DIR} (SM4-GCM under key-encryption key {kek.key_id.hex()})"


def _load_key(directory: Path, kek: KeyEncryptionKey | None) -> SM2PrivateKey:
    clear = directory / KEY_FILE
    if clear.exists():
        return SM2PrivateKey.from_pem(clear.read_bytes())
    if (directory / KEYS_DIR).is_dir():
        if kek is None:
            raise KeyEncryptionKeyError(
                f"{directory / KEYS_DIR} holds an encrypted key: set ZWFW_KEK or ZWFW_KEK_FILE"
            )
        return EncryptedKeyStore(DirectoryBlobStore(directory / KEYS_DIR), kek).get(KEY_ID)
    raise FileNotFoundError(f"no private key in {directory}")


def _describe(cert: SM2Certificate, profile: str) -> str:
    return (
        f"subject:  {cert.subject.human_friendly}\n"
        f"profile:  {profile}\n"
        f"serial:   {cert.serial_number:x}\n"
        f"valid:    {cert.not_before.isoformat()} .. {cert.not_after.isoformat()}\n"
        f"SM3:      {cert.fingerprint.hex()}"
    )


_KEK_OPTION = typer.Option(
    None, "--kek-file", help="Key-encryption key file (0600); default: $ZWFW_KEK/$ZWFW_KEK_FILE."
)


@pki_app.command("init-ca")
def init_ca(
    name: str = typer.Option(..., "--name", help="Common name of the root CA."),
    out: Path = typer.Option(..., "--out", help="New directory for the CA certificate and key."),
    organization: str | None = typer.Option(None, "--org", help="Organisation name."),
    days: int = typer.Option(3650, "--days", min=1, max=36500, help="Validity in days."),
    kek_file: Path | None = _KEK_OPTION,
) -> None:
    """Create a self-signed SM2 root CA (SM2-with-SM3)."""
    try:
        kek = _kek(kek_file)
        _prepare_out(out)
        ca = CertificateAuthority.create_root(name, organization=organization, valid_days=days)
        (out / CERT_FILE).write_bytes(ca.certificate.to_pem())
        where = _save_key(out, ca.key, kek)
    except (OSError, ValueError, KeyStoreError) as exc:
        raise _fail("pki init-ca", str(exc)) from None
    typer.echo(f"{_describe(ca.certificate, CertProfile.ROOT_CA.value)}\n")
    typer.echo(f"certificate: {out / CERT_FILE}\nprivate key: {where}")


@pki_app.command("issue")
def issue(
    ca_dir: Path = typer.Option(..., "--ca", help="CA directory made by `zwfw pki init-ca`."),
    profile: CertProfile = typer.Option(..., "--profile", help="seal-maker, signer or sub-ca."),
    name: str = typer.Option(..., "--name", help="Common name of the subject."),
    out: Path = typer.Option(..., "--out", help="New directory for the certificate and key."),
    organization: str | None = typer.Option(None, "--org", help="Organisation name."),
    days: int = typer.Option(730, "--days", min=1, max=36500, help="Validity in days."),
    kek_file: Path | None = _KEK_OPTION,
) -> None:
    """Generate an SM2 key and issue its certificate from the CA."""
    if profile is CertProfile.ROOT_CA:
        raise _fail("pki issue", "use `zwfw pki init-ca` for a root CA")
    try:
        kek = _kek(kek_file)
        ca_cert = SM2Certificate.from_pem((ca_dir / CERT_FILE).read_bytes())
        ca = CertificateAuthority(ca_cert, _load_key(ca_dir, kek))
        _prepare_out(out)
        key = SM2PrivateKey.generate()
        cert = ca.issue(key.public_key, name, profile, organization=organization, valid_days=days)
        (out / CERT_FILE).write_bytes(cert.to_pem())
        where = _save_key(out, key, kek)
    except (OSError, ValueError, KeyStoreError, CertificateError, SM2Error) as exc:
        raise _fail("pki issue", str(exc)) from None
    typer.echo(f"{_describe(cert, profile.value)}\n")
    typer.echo(f"certificate: {out / CERT_FILE}\nprivate key: {where}")


def _read_signature(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:1] == b"\x30":
        return raw
    # The e-seal service hands signatures out as base64 text.
    try:
        return base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return raw  # let verification report it as malformed


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_MARK = {StepStatus.PASSED: "passed", StepStatus.FAILED: "FAILED", StepStatus.SKIPPED: "skipped"}
_STATUS_UNCHECKED = "seal status in the register"


@dataclass(frozen=True)
class SealStatusSnapshot:
    """A seal's registered status as ``GET {eseal}/seals/{es_id}/status`` answers it (None:
    the register does not know the seal), and where and when it was read."""

    es_id: str
    status: SealStatus | None
    source: str
    as_of: str | None


def _signed_es_id(signature: bytes) -> str | None:
    """The esID of the seal a signature carries; None when it does not decode (step 1 then
    fails on its own)."""
    try:
        return str(parse_signature(signature)["to_sign"]["eseal"]["e_seal_info"]["es_id"].native)
    except (ValueError, TypeError, KeyError):
        return None


def _status_from_json(raw: object, where: str, as_of: str | None) -> SealStatusSnapshot:
    if not isinstance(raw, dict) or not isinstance(raw.get("es_id"), str):
        raise ValueError(f"{where} is not a seal status (GET /seals/{{es_id}}/status)")
    try:
        status = SealStatus(str(raw.get("status")))
    except ValueError:
        raise ValueError(f"{where}: unknown seal status {raw.get('status')!r}") from None
    return SealStatusSnapshot(raw["es_id"], status, where, as_of or raw.get("changed_at"))


def _status_from_api(base_url: str, es_id: str) -> SealStatusSnapshot:
    url = f"{base_url.rstrip('/')}/seals/{quote(es_id, safe='')}/status"
    as_of = datetime.now(UTC).replace(microsecond=0).isoformat()
    try:
        response = httpx.get(url, timeout=20.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ValueError(f"{base_url} is unreachable: {exc}") from None
    if response.status_code == 404:
        return SealStatusSnapshot(es_id, None, f"GET {url}", as_of)
    if response.status_code != 200:
        raise ValueError(f"GET {url} answered HTTP {response.status_code}")
    try:
        raw = response.json()
    except ValueError:
        raise ValueError(f"GET {url} answered something that is not JSON") from None
    return _status_from_json(raw, f"GET {url}", as_of)


def _seal_verdict(result: VerificationResult, status_checked: bool) -> str:
    failed = [s for s in result.steps if s.status is not StepStatus.PASSED]
    if failed:
        step = failed[0]
        return f"seal signature: INVALID: step {step.step} ({step.name}): {step.reason}"
    if not status_checked:
        return f"seal signature: VALID as far as checked (not checked: {_STATUS_UNCHECKED})"
    return "seal signature: VALID (every check made)"


@seal_app.command("verify")
def seal_verify(
    file: Path = typer.Argument(..., help="The signed content."),
    sig: Path = typer.Argument(..., help="SES_Signature, DER or base64."),
    trust: list[Path] = typer.Option(..., "--trust", help="Trusted root CA PEM (repeatable)."),
    intermediate: list[Path] = typer.Option(
        [], "--intermediate", help="Intermediate CA PEM (repeatable)."
    ),
    status: Path | None = typer.Option(
        None,
        "--status",
        metavar="FILE",
        help="The seal's registered status: GET {eseal}/seals/{es_id}/status.",
    ),  # fmt: skip
    from_api: str | None = typer.Option(
        None,
        "--from-api",
        metavar="URL",
        help="Read the seal's registered status from this e-seal service now.",
    ),  # fmt: skip
    at: str | None = typer.Option(None, "--at", help="Verification time, ISO 8601 (default now)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Verify a seal signature: the five GB/T 38540 steps and, given the register's record
    (--status or --from-api), the seal's status. Exit 0 no step failed (offline the output
    says the status was not checked), 1 a step failed, 2 usage error."""
    snapshot: SealStatusSnapshot | None = None
    try:
        if status is not None and from_api is not None:
            raise ValueError("give --status or --from-api, not both")
        anchors = [c for p in trust for c in load_pem_bundle(p.read_bytes())]
        inter = [c for p in intermediate for c in load_pem_bundle(p.read_bytes())]
        content = file.read_bytes()
        signature = _read_signature(sig)
        moment = _parse_time(at)
        es_id = _signed_es_id(signature)
        if status is not None:
            try:
                raw = json.loads(status.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"--status {status}: {exc}") from None
            snapshot = _status_from_json(raw, str(status), None)
            if es_id is not None and snapshot.es_id != es_id:
                raise ValueError(
                    f"the status record is of seal {snapshot.es_id}; "
                    f"the signature's seal is {es_id}"
                )
        elif from_api is not None and es_id is not None:
            snapshot = _status_from_api(from_api, es_id)
    except (OSError, ValueError, CertificateError) as exc:
        raise _fail("seal verify", str(exc)) from None
    result = verify_signature(
        signature, content, trust_anchors=anchors, intermediates=inter, at=moment,
        seal_status_lookup=(lambda _es_id: snapshot.status) if snapshot else None,
    )  # fmt: skip
    status_checked = snapshot is not None
    if as_json:
        out = result.as_dict()
        out["not_checked"] = [] if status_checked else ["seal_status"]
        out["seal_status_source"] = (
            {"source": snapshot.source, "as_of": snapshot.as_of} if snapshot else None
        )
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        typer.echo(_seal_verdict(result, status_checked))
        if result.es_id is not None:
            typer.echo(f"  seal:      {result.es_id} {result.seal_name}")
            typer.echo(f"  signer:    {result.signer}")
            signed_at = result.time_info.isoformat() if result.time_info else "?"
            typer.echo(f"  signed at: {signed_at}")
            typer.echo(f"  property:  {result.property_info}")
        if snapshot is not None:
            typer.echo(f"  status from {snapshot.source} as of {snapshot.as_of or '(not stated)'}")
        else:
            typer.echo("  offline: the seal's status in the register was not checked")
        for step in result.steps:
            typer.echo(f"  [{step.step}] {step.name:<19} {_MARK[step.status]:<8} {step.reason}")
    raise typer.Exit(0 if result.valid else 1)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root `zwfw` app."""
    app.add_typer(pki_app, name="pki")
    app.add_typer(seal_app, name="seal")
