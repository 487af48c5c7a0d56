"""E-seal interconnection checks (IC-SEAL-*), against the target's e-seal service.

Credentials (profile `credentials`, each from an environment variable):
`eseal_admin_token` (scope eseal:admin), `eseal_signer_token` (scope eseal:sign),
`eseal_signer_subject` (that token's `sub`) and `eseal_reader_token` (scope eseal:read, to read
the registry's records). Each test makes its own throw-away seals.

Times are judged against the province's own registered values and, for validity periods, on
Beijing calendar days, so the verdict does not depend on the hour of the run.
"""

from __future__ import annotations

import base64
import os
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from zwfw.crypto import ses
from zwfw.crypto.hashing import sm3
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile, SM2Certificate
from zwfw.harness.headstart import HeadStart

# A 1x1 PNG: the registry only needs a well-formed image.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
BEIJING = ZoneInfo("Asia/Shanghai")
SIGNER_NAME = "测试签章人"
PROPERTY = "conformance"
STEP_NAMES = ["signature", "signer_in_seal", "seal", "signer_certificate", "data_hash"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def seal_body(
    credential: Callable[[str], str], signer_subject: str | None = None
) -> dict[str, Any]:
    """A throw-away business seal's request, without its validity period."""
    return {
        "credit_code": "11340100MB0000000T",
        "organisation": "zwfw conformance",
        "category": "business",
        "name": "互联互通测试专用章",
        "picture": {"png": base64.b64encode(PNG).decode()},
        "signers": [
            {"subject": signer_subject or credential("eseal_signer_subject"), "name": SIGNER_NAME}
        ],
    }


def new_seal(
    client: httpx.Client,
    credential: Callable[[str], str],
    *,
    valid_start: datetime | None = None,
    valid_end: datetime | None = None,
    signer_subject: str | None = None,
) -> dict[str, Any]:
    """A throw-away business seal; by default valid from now for two days, signed by the
    harness's signing client."""
    body = seal_body(credential, signer_subject)
    body["valid_end"] = (valid_end or datetime.now(UTC) + timedelta(days=2)).isoformat()
    if valid_start is not None:
        body["valid_start"] = valid_start.isoformat()
    response = client.post("seals", headers=bearer(credential("eseal_admin_token")), json=body)
    assert response.status_code == 201, f"making a seal failed: {response.text[:300]}"
    return response.json()


@pytest.fixture
def made_seal(eseal_client: httpx.Client, credential: Callable[[str], str]) -> dict[str, Any]:
    return new_seal(eseal_client, credential)


def signed(client: httpx.Client, credential: Callable[[str], str], es_id: str, content: bytes):
    return client.post(
        f"seals/{es_id}/sign",
        headers=bearer(credential("eseal_signer_token")),
        json={"content": base64.b64encode(content).decode(), "property_info": PROPERTY},
    )


def verify(
    client: httpx.Client, signature: bytes | str, content: bytes | None = None,
    *, digest: bytes | None = None,
) -> dict[str, Any]:  # fmt: skip
    sig = signature if isinstance(signature, str) else base64.b64encode(signature).decode()
    body = {"signature": sig}
    if content is not None:
        body["content"] = base64.b64encode(content).decode()
    if digest is not None:
        body["digest"] = digest.hex()
    response = client.post("verify", json=body)
    assert response.status_code == 200, response.text[:300]
    return response.json()


def step_statuses(result: dict[str, Any]) -> list[str]:
    return [step["status"] for step in result["steps"]]


def public_status(client: httpx.Client, es_id: str) -> dict[str, Any]:
    response = client.get(f"seals/{es_id}/status")
    assert response.status_code == 200, response.text[:300]
    return response.json()


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def assert_registry_states(
    client: httpx.Client, credential: Callable[[str], str], made: dict[str, Any], when: str,
) -> None:  # fmt: skip
    """The registry's record of the seal and its organisation's list state the status and
    reason the public status endpoint states."""
    es_id = made["es_id"]
    public = public_status(client, es_id)
    reader = bearer(credential("eseal_reader_token"))
    record = client.get(f"seals/{es_id}", headers=reader)
    assert record.status_code == 200, f"{when}: the registry's record answers {record.text[:200]}"
    listed = client.get("seals", params={"credit_code": made["credit_code"]}, headers=reader)
    assert listed.status_code == 200, f"{when}: the registry's list answers {listed.text[:200]}"
    entries = [seal for seal in listed.json() if seal.get("es_id") == es_id]
    assert len(entries) == 1, f"{when}: the seal is {len(entries)} times in its organisation's list"
    expected = (public["status"], public.get("reason"))
    for name, seal in (("record", record.json()), ("list", entries[0])):
        stated = seal.get("status") or {}
        assert (stated.get("status"), stated.get("reason")) == expected, (
            f"{when}: the registry's {name} states {stated}, the public status {expected}"
        )


def change(client: httpx.Client, credential: Callable[[str], str], es_id: str, action: str,
           reason: str) -> httpx.Response:  # fmt: skip
    return client.post(
        f"seals/{es_id}/{action}",
        headers=bearer(credential("eseal_admin_token")),
        json={"reason": reason},
    )


@pytest.mark.requirement(
    "IC-SEAL-001",
    catches=("not-ses-signature", "not-published-root", "signed-other-bytes",
             "steps-not-reported", "facts-not-reported", "status-not-reported"),
)  # fmt: skip
def test_signature_is_gbt38540_der_and_verifies(
    eseal_client: httpx.Client, credential: Callable[[str], str], made_seal: dict[str, Any]
) -> None:
    es_id = made_seal["es_id"]
    content = os.urandom(64)
    response = signed(eseal_client, credential, es_id, content)
    assert response.status_code == 200, response.text[:300]
    answer = response.json()
    der = base64.b64decode(answer["signature"])
    parsed = ses.parse_signature(der)
    assert parsed["to_sign"]["version"].native == 4
    # The bytes signed are the content's SM3 digest, whether content or digest was sent.
    assert parsed["to_sign"]["data_hash"].native == sm3(content), "dataHash is not SM3(content)"
    assert answer["data_hash"] == sm3(content).hex()
    root = SM2Certificate.from_pem(eseal_client.get("trust").json()["root_certificate"].encode())
    local = ses.verify_signature(der, content, trust_anchors=[root])
    assert local.valid, [s.reason for s in local.steps]
    assert local.es_id == es_id
    assert local.signer == SIGNER_NAME
    assert local.property_info == PROPERTY
    assert local.time_info == moment(answer["time_info"])
    other = os.urandom(64)
    by_digest = eseal_client.post(
        f"seals/{es_id}/sign",
        headers=bearer(credential("eseal_signer_token")),
        json={"digest": sm3(other).hex(), "property_info": PROPERTY},
    )
    assert by_digest.status_code == 200, by_digest.text[:300]
    by_digest_der = base64.b64decode(by_digest.json()["signature"])
    offline = ses.verify_signature(by_digest_der, other, trust_anchors=[root])
    assert offline.valid, [s.reason for s in offline.steps]

    status = public_status(eseal_client, es_id)
    for result in (
        verify(eseal_client, der, content),
        verify(eseal_client, der, digest=sm3(content)),
    ):
        assert [s["step"] for s in result["steps"]] == [1, 2, 3, 4, 5]
        assert [s["name"] for s in result["steps"]] == STEP_NAMES
        assert step_statuses(result) == ["passed"] * 5, result["steps"]
        assert result["valid"] is True
        assert result["es_id"] == es_id
        assert result["signer"] == SIGNER_NAME
        assert result["property_info"] == PROPERTY
        assert moment(result["time_info"]) == local.time_info
        assert result["seal_status"] is not None, "the verify answer has no seal status"
        assert result["seal_status"]["status"] == "valid"
        assert result["seal_status"] == status, "verify and the public status disagree"
    assert_registry_states(eseal_client, credential, made_seal, "revoked")


@pytest.mark.requirement(
    "IC-SEAL-002",
    catches=("content-unchecked", "signature-unchecked", "wrong-step", "no-reason",
             "malformed-accepted"),
)  # fmt: skip
def test_tampering_fails_the_right_step(
    eseal_client: httpx.Client, credential: Callable[[str], str], made_seal: dict[str, Any]
) -> None:
    content = os.urandom(64)
    der = base64.b64decode(
        signed(eseal_client, credential, made_seal["es_id"], content).json()["signature"]
    )
    for what, result in (
        ("altered content", verify(eseal_client, der, content + b"x")),
        ("an altered digest", verify(eseal_client, der, digest=sm3(content + b"x"))),
    ):
        assert step_statuses(result) == ["passed"] * 4 + ["failed"], (what, result["steps"])
        assert result["valid"] is False, what
        assert result["steps"][4]["reason"], what
    broken = bytearray(der)
    broken[-1] ^= 0x01
    altered_signature = verify(eseal_client, bytes(broken), content)
    assert altered_signature["valid"] is False
    assert altered_signature["steps"][0]["status"] == "failed"
    assert altered_signature["steps"][0]["reason"]
    for what, malformed in (
        ("a truncated signature", der[: len(der) // 2]),
        ("bytes that are no DER", b"\x30\x03abc"),
    ):
        result = verify(eseal_client, malformed, content)
        assert result["valid"] is False, f"{what} verifies"
        assert result["steps"][0]["status"] == "failed", (what, result["steps"])
        assert result["steps"][0]["reason"], what


def outsider_signature(seal_der: bytes, content: bytes, at: datetime) -> bytes:
    """A signature over ``content`` with a genuine seal, by a signer the seal does not list,
    whose certificate chains to a root of the harness's own making, dated ``at``."""
    outsider = CertificateAuthority.create_root("zwfw conformance outsider CA")
    key = SM2PrivateKey.generate()
    cert = outsider.issue(key.public_key, SIGNER_NAME, CertProfile.SIGNER)
    tbs = ses.build_tbs(seal_der, data_hash=sm3(content), time_info=at, property_info=PROPERTY)
    return ses.sign_tbs(tbs, cert, key)


@pytest.mark.requirement(
    "IC-SEAL-002", catches=("signer-not-in-seal", "signer-chain-unchecked", "window-at-signing")
)
def test_an_outsiders_signature_fails_steps_2_and_4_and_the_window_step_3(
    eseal_client: httpx.Client, credential: Callable[[str], str]
) -> None:
    # A seal whose period begins and ends at Beijing midnights ahead: a signing time inside,
    # before and after it, none near the run's own hour.
    # One seal per signing time, so that what a verifier remembers of a seal's status does
    # not decide the window.
    start, end = beijing_midnight(2), beijing_midnight(4)
    content = os.urandom(32)
    for when, at, step_3 in (
        ("within the seal's period", start + timedelta(hours=1), "passed"),
        ("before the seal's period", start - timedelta(hours=1), "failed"),
        ("after the seal's period", end + timedelta(hours=1), "failed"),
    ):
        seal = new_seal(eseal_client, credential, valid_start=start, valid_end=end)
        signature = outsider_signature(base64.b64decode(seal["seal"]), content, at)
        result = verify(eseal_client, signature, content)
        # Step 1 holds (the signature is the outsider's own, made right); step 2 fails (the
        # seal does not list the signer), step 4 fails (no path to the published root).
        assert step_statuses(result) == ["passed", "failed", step_3, "failed", "passed"], (
            when, result["steps"]
        )  # fmt: skip
        assert result["valid"] is False, when
        assert all(s["reason"] for s in result["steps"] if s["status"] == "failed"), when


def forged_seal(
    seal_der: bytes,
    signer: SM2Certificate,
    maker: tuple[SM2Certificate, SM2PrivateKey] | None = None,
) -> bytes:
    """A genuine seal with ``signer`` added to its list of signers: kept under the maker's
    original signature, which no longer covers it, or signed anew by ``maker``."""
    seal = ses.SESeal.load(seal_der)
    info = ses.SESSealInfo.load(seal["e_seal_info"].dump())
    listed = info["property"]
    cert_list: ses.CertInfoList | ses.CertDigestList
    if listed["cert_list_type"].native == ses.CertListType.CERTS:
        certs = ses.CertInfoList.load(listed["cert_list"].dump())
        cert_list = ses.CertInfoList([*(c.native for c in certs), signer.der])
    else:
        digests = ses.CertDigestList.load(listed["cert_list"].dump())
        cert_list = ses.CertDigestList(
            [*({"type": d["type"].native, "value": d["value"].native} for d in digests),
             {"type": ses.CERT_DIGEST_TYPE_SM3, "value": signer.fingerprint}]
        )  # fmt: skip
    kept = ("type", "name", "cert_list_type", "create_date", "valid_start", "valid_end")
    info["property"] = ses.SESESPropertyInfo(
        {name: listed[name].native for name in kept} | {"cert_list": cert_list}
    )
    forged = ses.SESeal.load(seal_der)
    forged["e_seal_info"] = info
    if maker is not None:
        maker_cert, maker_key = maker
        forged["cert"] = maker_cert.der
        forged["signed_value"] = maker_key.sign(info.dump())
    der: bytes = forged.dump()
    return der


Forger = tuple[SM2Certificate, SM2PrivateKey, tuple[SM2Certificate, SM2PrivateKey]]


@pytest.fixture(scope="module")
def forger() -> Forger:
    """A signer and a seal maker certified by a root of the harness's own making."""
    outsider = CertificateAuthority.create_root("zwfw conformance outsider CA")
    key = SM2PrivateKey.generate()
    cert = outsider.issue(key.public_key, SIGNER_NAME, CertProfile.SIGNER)
    maker_key = SM2PrivateKey.generate()
    maker = outsider.issue(maker_key.public_key, "zwfw conformance forger", CertProfile.SEAL_MAKER)
    return cert, key, (maker, maker_key)


def verify_over_forged_seal(
    eseal_client: httpx.Client,
    credential: Callable[[str], str],
    forger: Forger,
    resigned: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new seal (its period two to four Beijing days ahead) with the forger's signer added
    to its list, kept under the maker's signature or ``resigned`` by the forger's maker, and
    the verify answer for the forger's signature dated inside that period."""
    start, end = beijing_midnight(2), beijing_midnight(4)
    content = os.urandom(32)
    cert, key, maker = forger
    seal = new_seal(eseal_client, credential, valid_start=start, valid_end=end)
    forged = forged_seal(base64.b64decode(seal["seal"]), cert, maker if resigned else None)
    tbs = ses.build_tbs(
        forged, data_hash=sm3(content), time_info=start + timedelta(hours=1),
        property_info=PROPERTY,
    )  # fmt: skip
    return seal, verify(eseal_client, ses.sign_tbs(tbs, cert, key), content)


@pytest.mark.requirement(
    "IC-SEAL-002", catches=("seal-signature-unchecked", "seal-maker-untrusted")
)
def test_a_signature_over_a_forged_seal_fails_step_3(
    eseal_client: httpx.Client, credential: Callable[[str], str], forger: Forger
) -> None:
    # GB/T 38540 step 3 verifies the seal itself: the maker's signature over SES_SealInfo and
    # the maker's certificate. A forger adds its own signer to a genuine seal's list, so that
    # step 2 finds it listed; only step 3 can tell the seal is not the one the maker made.
    for what, resigned in (
        ("kept under the maker's signature", False),
        ("signed anew by a maker of another root", True),
    ):
        _, result = verify_over_forged_seal(eseal_client, credential, forger, resigned)
        # Step 1 holds (the forger signed right), step 2 holds (the forged list names the
        # forger), step 4 fails (no path to the published root).
        assert step_statuses(result) == ["passed", "passed", "failed", "failed", "passed"], (
            f"a seal with a signer added, {what}: {result['steps']}"
        )
        assert result["valid"] is False, what
        assert all(s["reason"] for s in result["steps"] if s["status"] == "failed"), what


@pytest.mark.requirement("IC-SEAL-001", catches=("status-not-reported",))
def test_a_failed_verification_still_reports_the_seal_status(
    eseal_client: httpx.Client, credential: Callable[[str], str], forger: Forger
) -> None:
    # Step 3 fails here before a verifier looks the seal's status up; the answer still names
    # the seal the signature carries and its status as the public endpoint states it.
    seal, result = verify_over_forged_seal(eseal_client, credential, forger, resigned=False)
    assert result["valid"] is False, result["steps"]
    assert result["es_id"] == seal["es_id"], result["es_id"]
    assert result["seal_status"] == public_status(eseal_client, seal["es_id"]), (
        f"the verify answer's seal status {result['seal_status']} is not the public one"
    )


@pytest.mark.requirement(
    "IC-SEAL-003",
    catches=("status-not-public", "still-verifies", "still-signs", "cached-status",
             "suspension-ignored", "status-disagrees", "digest-status-unchecked",
             "registry-disagrees"),
)  # fmt: skip
def test_revoked_seal_fails_step_3_and_cannot_sign(
    eseal_client: httpx.Client, credential: Callable[[str], str], made_seal: dict[str, Any]
) -> None:
    es_id = made_seal["es_id"]
    content = os.urandom(64)
    signature = signed(eseal_client, credential, es_id, content).json()["signature"]
    # Verified first, so that a status the service caches is warm before every change.
    before = verify(eseal_client, signature, content)
    assert step_statuses(before) == ["passed"] * 5, before["steps"]
    assert_registry_states(eseal_client, credential, made_seal, "before any change")

    suspended = change(eseal_client, credential, es_id, "suspend", "互联互通测试暂停")
    assert suspended.status_code == 200, suspended.text[:300]
    status = public_status(eseal_client, es_id)
    assert (status["status"], status["reason"]) == ("suspended", "互联互通测试暂停")
    result = verify(eseal_client, signature, content)
    assert result["steps"][2]["status"] == "failed", "a suspended seal passes step 3"
    assert result["valid"] is False
    assert result["seal_status"] == public_status(eseal_client, es_id)
    assert_registry_states(eseal_client, credential, made_seal, "suspended")
    by_digest = verify(eseal_client, signature, digest=sm3(content))
    assert by_digest["steps"][2]["status"] == "failed", "by digest, a suspended seal passes step 3"
    assert signed(eseal_client, credential, es_id, content).status_code in (403, 409)

    resumed = change(eseal_client, credential, es_id, "resume", "互联互通测试恢复")
    assert resumed.status_code == 200, resumed.text[:300]
    assert public_status(eseal_client, es_id)["status"] == "valid"
    result = verify(eseal_client, signature, content)
    assert step_statuses(result) == ["passed"] * 5, "a resumed seal is still refused"
    by_digest = verify(eseal_client, signature, digest=sm3(content))
    assert step_statuses(by_digest) == ["passed"] * 5, "by digest, a resumed seal is refused"
    assert result["seal_status"] == public_status(eseal_client, es_id)
    assert_registry_states(eseal_client, credential, made_seal, "resumed")
    assert signed(eseal_client, credential, es_id, content).status_code == 200

    revoked = change(eseal_client, credential, es_id, "revoke", "互联互通测试结束")
    assert revoked.status_code == 200, revoked.text[:300]
    status = public_status(eseal_client, es_id)
    assert status["status"] == "revoked"
    assert status["reason"] == "互联互通测试结束"
    result = verify(eseal_client, signature, content)
    assert result["steps"][2]["status"] == "failed"
    assert "revoked" in result["steps"][2]["reason"]
    assert result["valid"] is False
    assert result["seal_status"] == status, "verify and the public status disagree"
    # The same signature verified by its digest (how a service holding only the SM3 digest of
    # a large document verifies) is judged by the same status.
    by_digest = verify(eseal_client, signature, digest=sm3(content))
    assert by_digest["steps"][2]["status"] == "failed", "by digest, a revoked seal passes step 3"
    assert "revoked" in by_digest["steps"][2]["reason"]
    assert by_digest["valid"] is False
    assert by_digest["seal_status"] == status, "verify by digest and the public status disagree"
    assert signed(eseal_client, credential, es_id, content).status_code in (403, 409)
    # Revocation is for good.
    assert change(eseal_client, credential, es_id, "resume", "再次启用").status_code == 409


def beijing_midnight(days_ahead: int) -> datetime:
    """00:00 Beijing time ``days_ahead`` calendar days after today's Beijing date."""
    today = datetime.now(BEIJING).date()
    return datetime.combine(today + timedelta(days=days_ahead), time(0), tzinfo=BEIJING)


# How long the short-lived seal of the ended-period check is valid, and how long the check
# waits past that for the registry to say it ended.
SHORT_PERIOD_SECONDS = 6
END_WAIT_SECONDS = 30


@dataclass(frozen=True)
class EndingSeal:
    """A seal made valid for a few seconds, and how its signature within them was answered."""

    es_id: str
    end: datetime
    made_at: float  # monotonic clock
    inside: httpx.Response
    content: bytes


def ending_seal(eseal_client: httpx.Client, credential: Callable[[str], str]) -> EndingSeal:
    content = os.urandom(32)
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=SHORT_PERIOD_SECONDS)
    made_at = clock.monotonic()
    seal = new_seal(eseal_client, credential, valid_end=end)
    inside = signed(eseal_client, credential, seal["es_id"], content)
    return EndingSeal(seal["es_id"], end, made_at, inside, content)


ENDING_SEAL = HeadStart[EndingSeal]()


def signed_within_its_period(ending: EndingSeal) -> None:
    assert ending.inside.status_code == 200, (
        f"a seal within its period did not sign: {ending.inside.text[:200]}"
    )


# The near end of the window, and the start of the wait for the far one (see
# zwfw.harness.headstart): the seal's seconds run out while the other checks run.
@pytest.mark.head_start
@pytest.mark.requirement("IC-SEAL-004", catches=("window-one-sided",))
def test_a_seal_signs_within_a_period_about_to_end(
    eseal_client: httpx.Client, credential: Callable[[str], str]
) -> None:
    signed_within_its_period(ENDING_SEAL.begin(lambda: ending_seal(eseal_client, credential)))


@pytest.mark.requirement("IC-SEAL-004", catches=("ended-signs", "window-one-sided"))
def test_a_seal_whose_period_has_ended_no_longer_signs(
    eseal_client: httpx.Client, credential: Callable[[str], str]
) -> None:
    # The other end of the window: a seal valid for a few seconds signs within them and is
    # refused once they are over, and its public status says so (the seconds are the
    # registry's own: the check waits on its status, not on the harness's clock).
    ending = ENDING_SEAL.take(lambda: ending_seal(eseal_client, credential))
    signed_within_its_period(ending)
    deadline = ending.made_at + SHORT_PERIOD_SECONDS + END_WAIT_SECONDS
    status = public_status(eseal_client, ending.es_id)
    while status["within_validity"] and clock.monotonic() < deadline:
        clock.sleep(1)
        status = public_status(eseal_client, ending.es_id)
    assert status["within_validity"] is False, (
        f"the seal's period ended at {ending.end.isoformat()}, yet its status says within validity"
    )
    late = signed(eseal_client, credential, ending.es_id, ending.content)
    assert late.status_code in (403, 409), (
        f"a seal whose period has ended signed: {late.status_code} {late.text[:200]}"
    )


@pytest.mark.requirement(
    "IC-SEAL-004",
    catches=("not-yet-valid-signs", "window-one-sided", "window-not-as-registered",
             "unlisted-signer-signs", "window-malformed", "signer-certificate-shorter"),
)  # fmt: skip
def test_seal_signs_only_within_its_period_and_for_its_signers(
    eseal_client: httpx.Client, credential: Callable[[str], str], made_seal: dict[str, Any]
) -> None:
    content = os.urandom(32)
    # Both ends of the window: a seal in its period, and one whose period begins at a Beijing
    # midnight at least a day ahead (never near the run's own hour).
    current = public_status(eseal_client, made_seal["es_id"])
    assert current["within_validity"] is True, current
    assert moment(current["valid_end"]) == moment(made_seal["valid_end"])
    start, end = beijing_midnight(2), beijing_midnight(4)
    future = new_seal(eseal_client, credential, valid_start=start, valid_end=end)
    assert moment(future["valid_start"]) == start
    assert moment(future["valid_end"]) == end
    facts = ses.seal_facts(base64.b64decode(future["seal"]))
    assert (facts.valid_start, facts.valid_end) == (start, end), "the SESeal states another period"
    status = public_status(eseal_client, future["es_id"])
    assert (moment(status["valid_start"]), moment(status["valid_end"])) == (start, end), status
    assert status["within_validity"] is False, "a seal not yet valid is said to be within validity"
    early = signed(eseal_client, credential, future["es_id"], content)
    assert early.status_code in (403, 409), f"a seal not yet valid signed: {early.text[:200]}"
    for seal in (made_seal, future):
        first, last = moment(seal["valid_start"]), moment(seal["valid_end"])
        for signer in seal["signers"]:
            cert = SM2Certificate.from_pem(signer["certificate"].encode())
            assert cert.not_before <= first, (
                f"the signer certificate starts after the seal: {cert.not_before}"
            )
            assert cert.not_after >= last, (
                f"the signer certificate ends before the seal: {cert.not_after}"
            )
    ended = start - timedelta(days=29)
    long_ago = datetime(1990, 1, 1, tzinfo=BEIJING)
    for what, period in (
        ("ends before it begins", {"valid_start": end, "valid_end": start}),
        ("has ended", {"valid_start": ended - timedelta(days=1), "valid_end": ended}),
        ("begins before the maker certificate", {"valid_start": long_ago, "valid_end": end}),
    ):
        refused = eseal_client.post(
            "seals",
            headers=bearer(credential("eseal_admin_token")),
            json={**seal_body(credential), **{k: v.isoformat() for k, v in period.items()}},
        )
        assert refused.status_code == 400, (
            f"a seal whose period {what} was made: {refused.status_code}"
        )

    strangers = new_seal(eseal_client, credential, signer_subject="zwfw-conformance-not-the-caller")
    stranger = signed(eseal_client, credential, strangers["es_id"], content)
    assert stranger.status_code == 403, f"an unlisted signer signed: {stranger.text[:200]}"


@pytest.mark.requirement(
    "IC-SEAL-005",
    catches=("seal-info-not-as-registered", "picture-not-as-registered", "signers-not-listed",
             "record-not-as-registered", "bad-picture-accepted", "signer-twice-accepted",
             "licence-seal-for-others", "ambiguous-request-accepted"),
)  # fmt: skip
def test_the_sealseal_states_what_was_registered_and_bad_requests_are_refused(
    eseal_client: httpx.Client, credential: Callable[[str], str]
) -> None:
    admin = bearer(credential("eseal_admin_token"))
    body = seal_body(credential)
    body["picture"] = {**body["picture"], "width_mm": 42, "height_mm": 38}
    body["valid_end"] = beijing_midnight(3).isoformat()
    response = eseal_client.post("seals", headers=admin, json=body)
    assert response.status_code == 201, response.text[:300]
    made = response.json()
    # The registry's record: the values asked for.
    record = {k: made.get(k) for k in ("credit_code", "organisation", "category", "name")}
    assert record == {k: body[k] for k in record}, record
    assert made["category_name"] == "业务专用章"
    assert (made["status"]["status"], made["status"]["es_id"]) == ("valid", made["es_id"])
    assert [(s["subject"], s["name"]) for s in made["signers"]] == [
        (credential("eseal_signer_subject"), SIGNER_NAME)
    ]
    # The SESeal (GB/T 38540 SES_SealInfo): id, property and picture as registered.
    info = ses.parse_seal(base64.b64decode(made["seal"]))["e_seal_info"]
    prop, picture = info["property"], info["picture"]
    assert info["es_id"].native == made["es_id"]
    assert prop["type"].native == 1, "not an organisation seal (SES_ESPropertyInfo.type 1)"
    assert prop["name"].native == body["name"]
    assert prop["valid_end"].native == moment(body["valid_end"])
    assert prop["valid_start"].native == moment(made["valid_start"])
    assert prop["create_date"].native <= prop["valid_start"].native + timedelta(seconds=1)
    listed = SM2Certificate.from_pem(made["signers"][0]["certificate"].encode()).der
    assert prop["cert_list_type"].native == 1
    assert [bytes(c) for c in prop["cert_list"].native] == [listed], (
        "the SESeal does not list exactly the registered signer's certificate"
    )
    assert (picture["type"].native, picture["data"].native) == ("PNG", PNG), (
        "the SESeal carries another picture"
    )
    assert (picture["width"].native, picture["height"].native) == (42, 38)

    signer = {"subject": credential("eseal_signer_subject"), "name": SIGNER_NAME}
    for what, changes in (
        (
            "a picture that is no PNG",
            {"picture": {"png": base64.b64encode(b"GIF89a" + PNG[6:]).decode()}},
        ),
        ("the same signer twice", {"signers": [signer, signer]}),
        ("a licence seal signed by another than the e-licence service", {"category": "licence"}),
    ):
        refused = eseal_client.post("seals", headers=admin, json={**body, **changes})
        assert refused.status_code in (400, 409), (
            f"a seal with {what} was made: {refused.status_code}"
        )
    content = base64.b64encode(b"zwfw").decode()
    signer_token = bearer(credential("eseal_signer_token"))
    for what, path, request in (
        ("signing both content and digest", f"seals/{made['es_id']}/sign",
         {"content": content, "digest": sm3(b"zwfw").hex()}),
        ("signing nothing", f"seals/{made['es_id']}/sign", {}),
        ("signing a digest of 31 bytes", f"seals/{made['es_id']}/sign", {"digest": "00" * 31}),
        ("verifying against content and digest", "verify",
         {"signature": content, "content": content, "digest": sm3(b"zwfw").hex()}),
    ):  # fmt: skip
        refused = eseal_client.post(path, headers=signer_token, json=request)
        assert refused.status_code == 400, f"{what} was accepted: {refused.status_code}"
