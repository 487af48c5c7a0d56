"""Helpers for the harness tests: paths, scratch suite checkouts, results readers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import Result

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PROFILE = REPO / "conformance" / "profiles" / "example.yaml"
BAD_PROFILE = Path(__file__).resolve().parent / "profiles" / "bad-codes.yaml"

Invoke = Callable[..., Result]


def requirement(rid: str, level: str = "MUST") -> dict[str, str]:
    return {
        "id": rid,
        "level": level,
        "title": f"title of {rid}",
        "source": "test standard, clause 1",
        "text": f"text of {rid}",
    }


@dataclass
class Checkout:
    """A scratch `conformance/` tree (catalog + suite files) that the harness is pointed at."""

    root: Path

    @property
    def conformance(self) -> Path:
        return self.root / "conformance"

    def catalog(self, *requirements: dict[str, str], spec_version: str = "9.9") -> None:
        path = self.conformance / "spec" / "requirements.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump({"spec_version": spec_version, "requirements": list(requirements)})
        )

    def suite_file(self, relative: str, source: str) -> Path:
        path = self.conformance / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    def profile(self, **fields: Any) -> Path:
        data: dict[str, Any] = {"name": "Scratch province", "region_code": "340000", **fields}
        path = self.root / "profile.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return path


def read_results(out: Path, name: str = "report.json") -> dict[str, Any]:
    return json.loads((out / name).read_text(encoding="utf-8"))


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {entry["id"]: entry["status"] for entry in document["requirements"]}


def issue_certificate(
    directory: Path,
    name: str,
    *,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    server: bool = False,
) -> tuple[x509.Name, ec.EllipticCurvePrivateKey]:
    """A certificate and key written as NAME.pem / NAME.key; self-signed CA when no issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return subject, key
