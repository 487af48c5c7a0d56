"""Binding a report directory with the harness e-seal, and checking it offline.

`seal_report(DIR)` writes, after every other file of the report:

- `harness-chain.pem`: signer, seal-maker and root certificates;
- `manifest.json`: the SM3 digest and size of every file of DIR (the chain included), with
  the run's harness version, spec version, target fingerprint and verdict;
- `report.sig`: a GB/T 38540 SES_Signature whose `dataHash` is SM3(manifest.json).

`verify_report(DIR)` runs the five seal-verification steps on `report.sig` against
`manifest.json`, then checks every digest, and refuses any edited, added or removed file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from zwfw.crypto.hashing import sm3, sm3_file
from zwfw.crypto.ses import StepStatus, verify_signature
from zwfw.crypto.x509 import CertificateError, SM2Certificate, load_pem_bundle
from zwfw.harness.results import write_text
from zwfw.harness.seal import HarnessSeal

MANIFEST = "manifest.json"
SIGNATURE = "report.sig"
CHAIN = "harness-chain.pem"
MANIFEST_VERSION = 1
# Files every sealed report has; evidence files come on top.
REQUIRED_FILES = ("report.json", "junit.xml", "report.html", CHAIN)


class ReportRejected(Exception):
    """The report directory does not verify; `str()` is the one-line reason."""


def _files(directory: Path) -> list[str]:
    """Every file under `directory` as a POSIX relative path, manifest and signature excepted."""
    found = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if relative in (MANIFEST, SIGNATURE):
            continue
        if path.is_symlink():
            raise ReportRejected(f"{relative}: is a symbolic link; a report holds only files")
        if path.is_file():
            found.append(relative)
        elif path.is_dir() and not any(path.iterdir()):
            found.append(relative + "/")
    return found


def build_manifest(directory: Path, report: dict[str, Any], signed_at: datetime) -> bytes:
    files = []
    for relative in _files(directory):
        path = directory / relative
        files.append({"path": relative, "sm3": sm3_file(path).hex(), "size": path.stat().st_size})
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "digest_algorithm": "SM3",
        "signed_at": signed_at.isoformat(timespec="seconds"),
        "harness_version": report["harness_version"],
        "spec_version": report["spec_version"],
        "target_fingerprint": report["target"]["fingerprint"],
        "verdict": report["verdict"],
        "certified": report["certified"],
        "files": files,
    }
    return (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


def seal_report(directory: Path, seal: HarnessSeal, *, at: datetime | None = None) -> Path:
    """Write the chain, manifest and signature into a finished report directory."""
    signed_at = (at or datetime.now(UTC)).astimezone(UTC)
    report = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    (directory / CHAIN).write_bytes(seal.chain_pem())
    manifest = build_manifest(directory, report, signed_at)
    write_text(directory / MANIFEST, manifest.decode())
    signature = seal.sign_digest(sm3(manifest), at=signed_at)
    partial = directory / (SIGNATURE + ".partial")
    partial.write_bytes(signature)
    partial.replace(directory / SIGNATURE)
    return directory / SIGNATURE


@dataclass(frozen=True)
class ReportVerification:
    """A verified report: who sealed it, when, over what, and whether the root was pinned."""

    signer: str | None
    seal_name: str | None
    signed_at: datetime | None
    root_fingerprint: str
    pinned: bool
    files: int
    verdict: str


def _read(directory: Path, name: str) -> bytes:
    path = directory / name
    if path.is_symlink():
        raise ReportRejected(f"{name}: is a symbolic link; a report holds only files")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ReportRejected(f"{name} is missing (removed after signing)") from None
    except OSError as error:
        raise ReportRejected(f"{name}: cannot read: {error}") from None


def _safe(relative: str) -> bool:
    path = PurePosixPath(relative)
    return (
        bool(relative)
        and not path.is_absolute()
        and ".." not in path.parts
        and "\\" not in relative
        and relative not in (MANIFEST, SIGNATURE)
    )


def _manifest_files(manifest_bytes: bytes) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    try:
        manifest = json.loads(manifest_bytes)
        entries = manifest["files"]
        files = {str(entry["path"]): entry for entry in entries}
    except (ValueError, KeyError, TypeError) as error:
        raise ReportRejected(f"{MANIFEST}: not a zwfw manifest ({error})") from None
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise ReportRejected(f"{MANIFEST}: unsupported manifest_version")
    if len(files) != len(entries):
        raise ReportRejected(f"{MANIFEST}: lists a file twice")
    return manifest, files


def verify_report(
    directory: Path, trust_anchors: Sequence[SM2Certificate] | None = None
) -> ReportVerification:
    """Check a sealed report offline; raises `ReportRejected` with the first reason.

    Without `trust_anchors`, the root certificate in `harness-chain.pem` is used: that proves
    the files are as sealed, not who sealed them (`pinned` is False).
    """
    signature = _read(directory, SIGNATURE)
    manifest_bytes = _read(directory, MANIFEST)
    chain_bytes = _read(directory, CHAIN)
    try:
        chain = load_pem_bundle(chain_bytes)
    except CertificateError as error:
        raise ReportRejected(f"{CHAIN}: {error}") from None
    pinned = trust_anchors is not None
    if trust_anchors is None:
        trust_anchors = [c for c in chain if c.is_ca and c.subject.dump() == c.issuer.dump()]
        if not trust_anchors:
            raise ReportRejected(f"{CHAIN}: holds no root certificate")
    result = verify_signature(
        signature, digest=sm3(manifest_bytes), trust_anchors=trust_anchors, intermediates=chain
    )
    for step in result.steps:
        if step.status is not StepStatus.PASSED:
            raise ReportRejected(
                f"{SIGNATURE}: seal verification step {step.step} ({step.name}) "
                f"{step.status.value}: {step.reason}"
            )
    manifest, listed = _manifest_files(manifest_bytes)
    for relative in REQUIRED_FILES:
        if relative not in listed:
            raise ReportRejected(f"{MANIFEST}: does not cover {relative}")
    for relative, entry in listed.items():
        if not _safe(relative):
            raise ReportRejected(f"{MANIFEST}: unsafe path {relative!r}")
        if relative.endswith("/"):
            if not (directory / relative).is_dir():
                raise ReportRejected(f"{relative} is missing (removed after signing)")
            continue
        content = _read(directory, relative)
        if sm3(content).hex() != entry.get("sm3"):
            raise ReportRejected(f"{relative}: SM3 digest differs from the manifest (edited)")
    for relative in _files(directory):
        if relative not in listed:
            raise ReportRejected(f"{relative}: not in the manifest (added after signing)")
    root = next(
        (c for c in trust_anchors if c.is_ca and c.subject.dump() == c.issuer.dump()),
        trust_anchors[0],
    )
    return ReportVerification(
        signer=result.signer,
        seal_name=result.seal_name,
        signed_at=result.time_info,
        root_fingerprint=root.fingerprint.hex(),
        pinned=pinned,
        files=len(listed),
        verdict=str(manifest.get("verdict")),
    )
