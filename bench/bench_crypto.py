"""国密 throughput: SM2 sign/verify, GB/T 38540 seal verification, SM3 hashing.

Baselines are measured in the same run: `openssl speed sm2` for the SM2 binding, the binding's
own raw verify for full seal verification, warm verification for a seal seen the first time,
and SHA-256 for SM3.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from figure import Figure, rate
from gmalglib.sm2 import SM2 as RawSM2

from zwfw.crypto import ses
from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import SM2PrivateKey, signature_to_raw
from zwfw.crypto.x509 import CertificateAuthority, CertProfile

_SPEED_LINE = re.compile(r"SM2 \(CurveSM2\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)")


def openssl_speed_sm2(seconds: int = 2) -> tuple[float, float]:
    """(sign/s, verify/s) from `openssl speed sm2`, which signs with SM3 and the SM2 ID."""
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("openssl is required for the SM2 baseline")
    out = subprocess.run(
        [exe, "speed", "-seconds", str(seconds), "sm2"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    match = _SPEED_LINE.search(out.stdout)
    if match is None:
        raise RuntimeError(f"unexpected `openssl speed sm2` output: {out.stdout[-300:]}")
    return float(match.group(1)), float(match.group(2))


def _best(fn, *, rounds: int = 3, seconds: float = 0.7) -> float:
    """Highest rate over a few short rounds: other load on a shared machine only slows runs."""
    return max(rate(fn, seconds=seconds) for _ in range(rounds))


def _seal_fixture() -> tuple[bytes, bytes, list]:
    ca = CertificateAuthority.create_root("bench root")
    maker_key, signer_key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    maker = ca.issue(maker_key.public_key, "bench maker", CertProfile.SEAL_MAKER)
    signer = ca.issue(signer_key.public_key, "bench signer", CertProfile.SIGNER)
    now = datetime.now(UTC)
    seal_der = ses.make_seal(
        maker_cert=maker, maker_key=maker_key, es_id="bench-0001", name="基准测试章",
        seal_type=1, signer_certs=[signer], picture=ses.SealPicture("PNG", bytes(4096), 40, 40),
        valid_start=now - timedelta(days=1), valid_end=now + timedelta(days=30),
    )  # fmt: skip
    content = os.urandom(2048)
    sig = ses.sign(seal_der, signer, signer_key, content=content, property_info="bench")
    return sig, content, [ca.certificate]


def figures() -> list[Figure]:
    key = SM2PrivateKey.generate()
    message = os.urandom(256)
    signature = key.sign(message)
    public = key.public_key
    raw_engine = RawSM2(pk=public.point)
    raw_sig = signature_to_raw(signature)

    ossl_sign, ossl_verify = openssl_speed_sm2()
    sign_rate = _best(lambda: key.sign(message))
    verify_rate = _best(lambda: public.verify(signature, message))
    raw_verify_rate = _best(lambda: raw_engine.verify(message, raw_sig))

    sig_der, content, anchors = _seal_fixture()
    assert ses.verify_signature(sig_der, content, trust_anchors=anchors).valid
    seal_verify_rate = _best(lambda: ses.verify_signature(sig_der, content, trust_anchors=anchors))

    def first_sight() -> ses.VerificationResult:
        # What a seal costs the first time it is seen (decoding, maker signature, paths).
        ses.clear_verification_caches()
        return ses.verify_signature(sig_der, content, trust_anchors=anchors)

    seal_first_sight_rate = _best(first_sight)

    blob = os.urandom(1 << 20)

    def sha256() -> bytes:
        h = hashes.Hash(hashes.SHA256())
        h.update(blob)
        return h.finalize()

    sm3_mb = _best(lambda: sm3(blob))
    sha256_mb = _best(sha256)

    return [
        Figure("sm2 sign (zwfw.crypto.sm2 on gmalglib)", sign_rate, "sig/s",
               "openssl speed sm2 sign", ossl_sign),
        Figure("sm2 verify (zwfw.crypto.sm2 on gmalglib)", verify_rate, "sig/s",
               "openssl speed sm2 verify", ossl_verify),
        Figure("ses signature verify, all five steps", seal_verify_rate, "sig/s",
               "raw gmalglib sm2 verify", raw_verify_rate),
        Figure("ses signature verify, seal and path caches cleared every call",
               seal_first_sight_rate, "sig/s", "ses signature verify, all five steps",
               seal_verify_rate),
        Figure("sm3 hash 1 MiB blocks", sm3_mb, "MiB/s", "sha256 1 MiB blocks", sha256_mb),
    ]  # fmt: skip
