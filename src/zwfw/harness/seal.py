"""The harness's own e-seal: what signs certification reports.

A harness home (`$ZWFW_HARNESS_HOME`, default `~/.local/share/zwfw/harness`) holds, created at
first use or by `zwfw harness init`:

- `root.pem`/`root.key`: the harness root CA (SM2), the trust anchor reviewers pin;
- `maker.pem`/`maker.key`: the seal maker (制章者) certificate, issued by the root;
- `signer.pem`/`signer.key`: the signer (签章者) certificate, issued by the root;
- `seal.der`: the GB/T 38540 SESeal the maker made, listing the signer certificate.

Keys are PKCS#8 PEM files of mode 0600 in a 0700 directory, generated on this machine and
never part of a checkout.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from zwfw import __version__
from zwfw.crypto.ses import SealError, SealPicture, make_seal, parse_seal, sign
from zwfw.crypto.sm2 import SM2Error, SM2PrivateKey
from zwfw.crypto.x509 import (
    CertificateAuthority,
    CertificateError,
    CertProfile,
    SM2Certificate,
    verify_chain,
)
from zwfw.harness.errors import HarnessConfigError

HOME_ENV = "ZWFW_HARNESS_HOME"
DEFAULT_HOME = Path("~/.local/share/zwfw/harness")
ORGANIZATION = "zwfw certification harness"
# Seal type 2: official-business seal (GB/T 38540 leaves the numbering to the issuer).
SEAL_TYPE = 2
SEAL_VALID_DAYS = 730
ROOT_VALID_DAYS = 3650
# The signer certificate must outlive a run by at least this much to be used.
RENEW_MARGIN = timedelta(days=1)
PROPERTY_INFO = "zwfw certification report manifest"
_FILES = ("root.pem", "root.key", "maker.pem", "maker.key", "signer.pem", "signer.key", "seal.der")
_PICTURE = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
    '<circle cx="50" cy="50" r="46" fill="none" stroke="#c00" stroke-width="4"/>'
    '<text x="50" y="46" text-anchor="middle" font-size="13" fill="#c00">zwfw</text>'
    '<text x="50" y="64" text-anchor="middle" font-size="11" fill="#c00">认证检测</text></svg>'
).encode()


class HarnessHomeError(HarnessConfigError):
    """The harness home is unusable (incomplete, unreadable, expired, or too open)."""


def harness_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


@dataclass(frozen=True)
class HarnessSeal:
    """The loaded harness e-seal: certificates, the signer key and the seal."""

    home: Path
    root: SM2Certificate
    maker: SM2Certificate
    signer: SM2Certificate
    signer_key: SM2PrivateKey
    seal: bytes

    @property
    def root_fingerprint(self) -> str:
        """SM3 of the root certificate (hex): what a reviewer compares to pin it."""
        return self.root.fingerprint.hex()

    def chain_pem(self) -> bytes:
        """Signer, maker and root certificates, for verifiers that have only the report."""
        return self.signer.to_pem() + self.maker.to_pem() + self.root.to_pem()

    def sign_digest(self, digest: bytes, *, at: datetime | None = None) -> bytes:
        """A SES_Signature (DER) over an SM3 digest."""
        return sign(
            self.seal,
            self.signer,
            self.signer_key,
            data_hash=digest,
            time_info=at or datetime.now(UTC),
            property_info=PROPERTY_INFO,
        )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _issue_seal(
    root: CertificateAuthority, directory: Path, now: datetime
) -> tuple[SM2Certificate, SM2Certificate]:
    maker_key, signer_key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    maker = root.issue(
        maker_key.public_key,
        "zwfw harness seal maker",
        CertProfile.SEAL_MAKER,
        organization=ORGANIZATION,
        valid_from=now - timedelta(minutes=5),
        valid_days=SEAL_VALID_DAYS,
    )
    signer = root.issue(
        signer_key.public_key,
        "zwfw harness report signer",
        CertProfile.SIGNER,
        organization=ORGANIZATION,
        valid_from=now - timedelta(minutes=5),
        valid_days=SEAL_VALID_DAYS,
    )
    seal = make_seal(
        maker_cert=maker,
        maker_key=maker_key,
        es_id=f"ZWFW-HARNESS-{secrets.token_hex(8).upper()}",
        name="zwfw 认证检测报告专用章",
        seal_type=SEAL_TYPE,
        signer_certs=[signer],
        picture=SealPicture("SVG", _PICTURE, 40, 40),
        valid_start=signer.not_before,
        valid_end=signer.not_after,
        created_at=now,
        vid=f"zwfw-{__version__}",
    )
    (directory / "maker.pem").write_bytes(maker.to_pem())
    _write_private(directory / "maker.key", maker_key.to_pem())
    (directory / "signer.pem").write_bytes(signer.to_pem())
    _write_private(directory / "signer.key", signer_key.to_pem())
    (directory / "seal.der").write_bytes(seal)
    return maker, signer


def init_home(home: Path | None = None, *, renew: bool = False) -> tuple[HarnessSeal, bool]:
    """Create the harness home if missing (or renew its seal); returns the seal and whether
    anything was created."""
    home = home or harness_home()
    now = datetime.now(UTC)
    if home.exists() and any(home.iterdir()):
        if not renew:
            return load_seal(home, create=False), False
        root = CertificateAuthority(_cert(home, "root.pem"), _key(home, "root.key"))
        for name in ("maker.pem", "maker.key", "signer.pem", "signer.key", "seal.der"):
            (home / name).unlink(missing_ok=True)
        _issue_seal(root, home, now)
        return load_seal(home, create=False), True
    home.parent.mkdir(parents=True, exist_ok=True)
    # Built in a sibling directory and renamed, so concurrent first runs never see half a home.
    staging = Path(tempfile.mkdtemp(prefix=".harness-", dir=home.parent))
    try:
        os.chmod(staging, 0o700)
        root_key = SM2PrivateKey.generate()
        root = CertificateAuthority.create_root(
            "zwfw harness root CA",
            organization=ORGANIZATION,
            key=root_key,
            valid_from=now - timedelta(minutes=5),
            valid_days=ROOT_VALID_DAYS,
        )
        (staging / "root.pem").write_bytes(root.certificate.to_pem())
        _write_private(staging / "root.key", root_key.to_pem())
        _issue_seal(root, staging, now)
        try:
            if home.exists():
                home.rmdir()  # an empty directory made by hand
            os.rename(staging, home)
        except OSError:
            if not (home / "seal.der").exists():
                raise
            # Another run created it first; use theirs.
            return load_seal(home, create=False), False
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_seal(home, create=False), True


def _cert(home: Path, name: str) -> SM2Certificate:
    try:
        return SM2Certificate.load((home / name).read_bytes())
    except OSError as error:
        raise HarnessHomeError(f"harness home {home}: cannot read {name}: {error}") from None
    except CertificateError as error:
        raise HarnessHomeError(f"harness home {home}: {name}: {error}") from None


def _key(home: Path, name: str) -> SM2PrivateKey:
    path = home / name
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise HarnessHomeError(
                f"harness key {path} is open to other users (mode {stat.S_IMODE(mode):04o}); "
                "chmod 600 it"
            )
        return SM2PrivateKey.from_pem(path.read_bytes())
    except OSError as error:
        raise HarnessHomeError(f"harness home {home}: cannot read {name}: {error}") from None
    except SM2Error as error:
        raise HarnessHomeError(f"harness home {home}: {name}: {error}") from None


def load_seal(home: Path | None = None, *, create: bool = True) -> HarnessSeal:
    """The harness seal from its home, created there first when `create` and it is missing."""
    home = home or harness_home()
    if create and (not home.exists() or not any(home.iterdir())):
        return init_home(home)[0]
    missing = [name for name in _FILES if not (home / name).is_file()]
    if missing:
        raise HarnessHomeError(
            f"harness home {home} is incomplete (missing {', '.join(missing)}); "
            "move it away and run `zwfw harness init`"
        )
    root = _cert(home, "root.pem")
    maker = _cert(home, "maker.pem")
    signer = _cert(home, "signer.pem")
    signer_key = _key(home, "signer.key")
    seal = (home / "seal.der").read_bytes()
    if signer.public_key != signer_key.public_key:
        raise HarnessHomeError(f"harness home {home}: signer.key does not match signer.pem")
    now = datetime.now(UTC)
    try:
        verify_chain(signer, [root], at=now + RENEW_MARGIN)
        verify_chain(maker, [root], at=now + RENEW_MARGIN)
        parsed = parse_seal(seal)
    except CertificateError as error:
        raise HarnessHomeError(
            f"harness home {home}: {error}; renew with `zwfw harness init --renew`"
        ) from None
    except SealError as error:
        raise HarnessHomeError(f"harness home {home}: seal.der: {error}") from None
    valid_end = parsed["e_seal_info"]["property"]["valid_end"].native
    if valid_end.replace(tzinfo=valid_end.tzinfo or UTC) < now + RENEW_MARGIN:
        raise HarnessHomeError(
            f"harness seal in {home} expires {valid_end.isoformat()}; "
            "renew with `zwfw harness init --renew`"
        )
    return HarnessSeal(home, root, maker, signer, signer_key, seal)
