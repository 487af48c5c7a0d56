"""Shared SM2 PKI for the crypto tests: one root CA, a seal maker and a signer."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile, SM2Certificate

OPENSSL = shutil.which("openssl") or "openssl"
SM2_ID_OPT = "distid:1234567812345678"


def openssl(*args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the openssl command; never raises, the caller asserts on the outcome."""
    return subprocess.run(
        [OPENSSL, *map(str, args)], input=input, capture_output=True, timeout=60, check=False
    )


@dataclass(frozen=True)
class Party:
    key: SM2PrivateKey
    cert: SM2Certificate


@pytest.fixture(scope="session")
def root_ca() -> CertificateAuthority:
    return CertificateAuthority.create_root(
        "zwfw 测试根CA",
        organization="安徽省数据资源管理局",
        valid_from=datetime.now(UTC) - timedelta(days=30),
    )


@pytest.fixture(scope="session")
def other_ca() -> CertificateAuthority:
    return CertificateAuthority.create_root("untrusted root")


def _party(ca: CertificateAuthority, name: str, profile: CertProfile, **kw: object) -> Party:
    key = SM2PrivateKey.generate()
    return Party(key, ca.issue(key.public_key, name, profile, **kw))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def maker(root_ca: CertificateAuthority) -> Party:
    return _party(
        root_ca, "制章者 340000", CertProfile.SEAL_MAKER, valid_from=root_ca.certificate.not_before
    )


@pytest.fixture(scope="session")
def signer(root_ca: CertificateAuthority) -> Party:
    return _party(
        root_ca,
        "合肥市市场监督管理局",
        CertProfile.SIGNER,
        valid_from=root_ca.certificate.not_before,
    )


@pytest.fixture(scope="session")
def make_party():
    return _party


@pytest.fixture(scope="session")
def run_openssl():
    return openssl
