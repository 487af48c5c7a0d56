"""zwfw's GB/T 38540 verifier over third-party test vectors (tests/crypto/vectors: made with
openssl and an ASN.1 definition of its own, see the README there): each of the five steps has
the outcome, and the failure code, the vector states."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from zwfw.crypto.ses import VerificationResult, clear_verification_caches, verify_signature
from zwfw.crypto.x509 import SM2Certificate

from .vectors.generate import generate

VECTORS = Path(__file__).resolve().parent / "vectors"
COMMITTED = json.loads((VECTORS / "cases.json").read_text(encoding="utf-8"))


def _outcomes(result: VerificationResult) -> list[str]:
    return [
        f"{step.status.value}:{step.code}" if step.code else step.status.value
        for step in result.steps
    ]


def _verify(directory: Path, document: dict[str, Any], case: dict[str, Any]) -> VerificationResult:
    # Every vector is judged on its own: nothing remembered from another one may decide it.
    clear_verification_caches()
    anchor = SM2Certificate.from_pem((directory / document["trust_anchor"]).read_bytes())
    return verify_signature(
        (directory / case["signature"]).read_bytes(),
        (directory / case["content"]).read_bytes(),
        trust_anchors=[anchor],
        at=datetime.fromisoformat(document["verify_at"]),
    )


@pytest.mark.parametrize("case", COMMITTED["cases"], ids=lambda case: case["name"])
def test_committed_vector(case: dict[str, Any]) -> None:
    result = _verify(VECTORS, COMMITTED, case)
    assert _outcomes(result) == case["steps"], case["description"]
    assert result.valid == all(step == "passed" for step in case["steps"])
    if result.steps[0].code != "malformed":
        assert result.time_info == datetime.fromisoformat(COMMITTED["time_info"])


def test_the_vectors_cover_every_step_failing() -> None:
    failing = {
        index
        for case in COMMITTED["cases"]
        for index, step in enumerate(case["steps"], start=1)
        if step.startswith("failed:")
    }
    assert failing == {1, 2, 3, 4, 5}
    assert {case["name"] for case in COMMITTED["cases"]} >= {
        "valid", "truncated", "tbs-version-3", "signature-oid-ecdsa-sha256",
        "signature-over-other-bytes", "signer-not-listed", "seal-expired",
    }  # fmt: skip


def test_freshly_generated_vectors_give_the_same_outcomes(tmp_path: Path) -> None:
    # The generator stays runnable, and fresh signatures (SM2 is randomised) are judged alike.
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the vectors (Debian: apt-get install openssl)"
    document = generate(tmp_path, openssl)
    assert [case["name"] for case in document["cases"]] == [
        case["name"] for case in COMMITTED["cases"]
    ]
    for case in document["cases"]:
        assert (tmp_path / case["signature"]).read_bytes() != (
            VECTORS / case["signature"]
        ).read_bytes()
        assert _outcomes(_verify(tmp_path, document, case)) == case["steps"], case["name"]
