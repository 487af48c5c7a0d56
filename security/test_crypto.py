"""密评 (GB/T 39786-2021 level 3): what the services declare publicly about their cryptography
is checked (SEC-CRY-001: the e-seal register's seals and certificates are SM2 with SM3); what
only documents and the hosts can show is reported "manual evidence required" (SEC-CRY-002,
`manual_evidence` in the catalog), never passed."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from zwfw.harness.cryptoreview import register_findings


@pytest.mark.requirement(
    "SEC-CRY-001", catches=("seal-not-sm2", "certificate-not-sm2", "fingerprint-not-sm3")
)
def test_the_seal_register_is_sm2_with_sm3(
    eseal_client: httpx.Client, credential: Callable[[str], str]
) -> None:
    trust = eseal_client.get("trust")
    assert trust.status_code == 200, f"GET /trust answered {trust.status_code}"
    listed = eseal_client.get(
        "seals", headers={"Authorization": f"Bearer {credential('security_eseal_read_token')}"}
    )
    assert listed.status_code == 200, f"GET /seals answered {listed.status_code}"
    found = register_findings(trust.json(), listed.json())
    assert not found, "; ".join(f"{mode}: {detail}" for mode, detail in found)


@pytest.mark.requirement(
    "SEC-CRY-002",
    catches=("audit-chain-not-sm3", "data-at-rest-not-sm4", "uncertified-products"),
)
def test_documentary_cryptography_needs_manual_evidence() -> None:
    # Nothing of the running services shows it; the catalog's manual_evidence makes the
    # requirement "manual evidence required" in the report whatever this test does.
    pytest.skip("manual evidence required: the deployment's cryptography is judged from documents")
