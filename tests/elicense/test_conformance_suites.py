"""The IC-SEAL-* and IC-LIC-* conformance suites pass against the reference services, served
for real (uvicorn on localhost) with test accounts minted like identity's tokens; a registry
that takes re-sealed documents fails IC-LIC-006 and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from zwfw.harness.requirements import load_catalog
from zwfw.services.elicense.service import LicenceService

from .conftest import TEST_ISSUER_CODE, TEST_SIGNER, Served

REPO = Path(__file__).resolve().parents[2]
ZWFW = Path(sys.executable).with_name("zwfw")
CREDENTIALS = (
    "eseal_admin_token",
    "eseal_signer_token",
    "eseal_signer_subject",
    "eseal_reader_token",
    "elicense_holder_token",
    "elicense_other_holder_token",
    "elicense_share_token",
    "elicense_test_issuer_code",
    "elicense_test_issuer_signer_token",
    "elicense_issuer_token",
    "elicense_holder_subject",
)


def certify(served: Served, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "reference platform",
                "region_code": "340000",
                "services": {"eseal": served.eseal_url, "elicense": served.elicense_url},
                "credentials": {name: {"env": name.upper()} for name in CREDENTIALS},
            }
        )
    )
    token = served.token
    env = {
        **os.environ,
        "ESEAL_ADMIN_TOKEN": token("admin", "eseal", "eseal:admin"),
        "ESEAL_SIGNER_TOKEN": token("officer-c", "eseal", "eseal:sign"),
        "ESEAL_SIGNER_SUBJECT": "officer-c",
        "ESEAL_READER_TOKEN": token("registry-reader", "eseal", "eseal:read"),
        "ELICENSE_HOLDER_TOKEN": token("holder-a", "elicense", "elicense:read", "elicense:consent"),
        "ELICENSE_OTHER_HOLDER_TOKEN": token("holder-b", "elicense", "elicense:read"),
        "ELICENSE_SHARE_TOKEN": token("hall-340000", "elicense", "elicense:share"),
        "ELICENSE_TEST_ISSUER_CODE": TEST_ISSUER_CODE,
        "ELICENSE_TEST_ISSUER_SIGNER_TOKEN": token(TEST_SIGNER, "eseal", "eseal:sign"),
        "ELICENSE_ISSUER_TOKEN": token("issuer-ops", "elicense", "elicense:issue"),
        "ELICENSE_HOLDER_SUBJECT": "holder-a",
    }
    out = tmp_path / "out"
    run = subprocess.run(
        [str(ZWFW), "certify", "--target", str(profile), "--out", str(out),
         "--suites", "conformance/seal", "--suites", "conformance/licence"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    return run, report


def ours(report: dict[str, Any]) -> dict[str, str]:
    return {
        r["id"]: r["status"]
        for r in report["requirements"]
        if r["id"].startswith(("IC-SEAL-", "IC-LIC-"))
    }


def test_seal_and_licence_suites_pass(served: Served, tmp_path: Path) -> None:
    run, report = certify(served, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    statuses = ours(report)
    # Every seal and licence requirement of the catalog, judged by these two suites.
    catalog = {
        r.id for r in load_catalog().requirements if r.id.startswith(("IC-SEAL-", "IC-LIC-"))
    }
    assert set(statuses) == catalog
    assert set(statuses.values()) == {"pass"}, statuses


def test_a_registry_that_takes_resealed_documents_fails_ic_lic_006(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry verifies without comparing with what it issued (the defect before the
    registry check): seal, issuer seal and status all pass for a forgery."""
    real = LicenceService.verify

    def without_registry(self: LicenceService, db: Any, data: bytes, signature: bytes) -> Any:
        result = real(self, db, data, signature)
        result.checks = [c for c in result.checks if c.name not in ("registry", "copy_registry")]
        return result

    monkeypatch.setattr(LicenceService, "verify", without_registry)
    run, report = certify(served, tmp_path)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    statuses = ours(report)
    failed = {k for k, v in statuses.items() if v != "pass"}
    assert failed == {"IC-LIC-006"}, statuses
