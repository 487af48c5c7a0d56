"""E-licence interconnection checks (IC-LIC-*), against the target's e-licence service.

Credentials (profile `credentials`, each from an environment variable):
`elicense_holder_token` (a test holder holding at least one valid licence; scopes
elicense:read elicense:consent), `elicense_other_holder_token` (another holder with at least
one licence; scope elicense:read), `elicense_share_token` (an organisation; elicense:share).
The seal checks also use the e-seal service's published root when the profile lists it.

The registry checks (IC-LIC-006) need a certification test issuer: an issuing authority of
the province that exists for certification only, with its own seal (never a real issuer's),
on whose signer list the province puts, besides its e-licence service, a signing client whose
token it gives the harness. The test holder holds a valid licence of that issuer. Credentials:
`elicense_test_issuer_code` (the test issuer's credit code) and
`elicense_test_issuer_signer_token` (eseal:sign, on the test issuer's seal). With them the
harness seals documents the registry never issued, under identifiers it did issue.

The life-cycle checks (IC-LIC-007) issue, suspend, reinstate and revoke a licence of that
test issuer for the test holder: `elicense_issuer_token` (elicense:issue, allowed to issue
licences of the test issuer) and `elicense_holder_subject` (the test holder's `sub`). The
expiry checks (IC-LIC-009) issue two more, one whose validity ended yesterday and one on its
last day (revoked afterwards). The issuance check (IC-LIC-007) sends requests that break the
metadata rules, which must issue nothing, and issues one licence of version 001; the face
check (IC-LIC-011) issues one more and suspends it. Each is revoked afterwards: every test
licence a run leaves with the test holder is no longer valid. The seal-status check
(IC-LIC-008) makes a throw-away seal and revokes it, and another and suspends it, with the
seal suite's `eseal_admin_token`, `eseal_signer_token` and `eseal_signer_subject`.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from time import monotonic, sleep
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pypdfium2
import pytest
import rfc8785
import zxingcpp

from zwfw.codes import CodeError, build_licence_id, parse_credit_code, parse_licence_id
from zwfw.crypto import ses
from zwfw.crypto.hashing import sm3
from zwfw.harness.headstart import HeadStart
from zwfw.services.elicense.document import verify_document

CAUSE = "互联互通测试：免提交证照"
HOLDERS = ("elicense_holder_token", "elicense_other_holder_token")
BEIJING = ZoneInfo("Asia/Shanghai")
# The ID number the suite's own test licences are issued to (a test value, no real person's).
TEST_HOLDER_ID = "110101199003074477"
# A 1x1 PNG for the suite's throw-away seals.
TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def first_licence(client: httpx.Client, token: str) -> dict[str, Any]:
    listed = client.get("me/licences", headers=bearer(token))
    assert listed.status_code == 200, listed.text[:300]
    valid = [entry for entry in listed.json() if entry["status"]["code"] == "01"]
    assert valid, "the test holder holds no valid licence"
    response = client.get(f"me/licences/{valid[0]['identifier']}", headers=bearer(token))
    assert response.status_code == 200, response.text[:300]
    return response.json()


@pytest.fixture
def licence(elicense_client: httpx.Client, credential: Callable[[str], str]) -> dict[str, Any]:
    return first_licence(elicense_client, credential("elicense_holder_token"))


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def copy_until(
    client: httpx.Client, credential: Callable[[str], str], identifier: str,
    expires_at: datetime, *, holder_token: str | None = None,
) -> httpx.Response:  # fmt: skip
    return client.post(
        f"licences/{identifier}/copies",
        headers=bearer(credential("elicense_share_token")),
        json={
            "cause": CAUSE,
            "expires_at": expires_at.isoformat(),
            "holder_token": holder_token or credential("elicense_holder_token"),
        },
    )


def make_copy(
    client: httpx.Client, credential: Callable[[str], str], identifier: str, days: float
) -> httpx.Response:
    return copy_until(client, credential, identifier, datetime.now(UTC) + timedelta(days=days))


def sealed_document(item: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(item["document"]))


def published_root(target: Any) -> list[Any]:
    """The e-seal service's published root, when the profile lists that service."""
    if target.base_url("eseal") is None:
        return []
    from zwfw.crypto.x509 import SM2Certificate
    from zwfw.harness.http import service_client

    with service_client(target, "eseal") as eseal:
        pem = eseal.get("trust").json()["root_certificate"].encode()
    return [SM2Certificate.from_pem(pem)]


def as_yyyymmdd(value: str | None) -> str | None:
    return value.replace("-", "") if value else None


@pytest.mark.requirement(
    "IC-LIC-001",
    catches=("check-character", "metadata-identifier", "metadata-parts", "list-detail"),
)
def test_identifier_is_valid_and_matches_the_sealed_metadata(
    elicense_client: httpx.Client, credential: Callable[[str], str]
) -> None:
    # Every licence of both test holders, in the list and in the detail, not only the first.
    seen = 0
    for holder in HOLDERS:
        token = credential(holder)
        listed = elicense_client.get("me/licences", headers=bearer(token))
        assert listed.status_code == 200, listed.text[:300]
        for entry in listed.json():
            try:
                identifier = parse_licence_id(entry["identifier"])
            except CodeError as error:
                pytest.fail(f"listed licence: {error}", pytrace=False)
            response = elicense_client.get(f"me/licences/{identifier}", headers=bearer(token))
            assert response.status_code == 200, response.text[:300]
            detail = response.json()
            document = sealed_document(detail)
            assert detail["identifier"] == entry["identifier"] == str(identifier)
            assert document["identifier"] == str(identifier), "sealed metadata: other identifier"
            assert detail["metadata"] == document
            assert document["issuer_code"] == identifier.issuer_code == detail["issuer_code"]
            assert document["type_code"] == identifier.type_code == detail["type_code"]
            assert document["defining_authority_code"] == identifier.type_code[:18]
            assert entry["licence_number"] == detail["licence_number"]
            assert detail["licence_number"] == document["licence_number"]
            assert entry["valid_until"] == detail["valid_until"]
            assert as_yyyymmdd(detail["valid_until"]) == as_yyyymmdd(document["valid_until"])
            assert entry["status"] == detail["status"], (entry["status"], detail["status"])
            seen += 1
    assert seen, "the test holders hold no licence"


def assert_type_code(code: Any) -> None:
    """A GB/T 36902 licence type code: the defining authority's credit code and 3 digits."""
    well_formed = isinstance(code, str) and len(code) == 21 and code[18:].isdigit()
    assert well_formed, f"licence type code {code!r} is not a credit code and 3 digits"
    try:
        parse_credit_code(code[:18])
    except CodeError as error:
        pytest.fail(f"licence type {code}: defining authority: {error}", pytrace=False)


@pytest.mark.requirement(
    "IC-LIC-010",
    catches=("catalogue-needs-auth", "type-code-invalid", "detail-differs", "type-missing",
             "names-disagree", "unknown-type-found", "anonymous-registration"),
)  # fmt: skip
def test_the_licence_type_catalogue_is_public_and_names_types_as_the_licences_do(
    elicense_client: httpx.Client, credential: Callable[[str], str]
) -> None:
    listed = elicense_client.get("types")
    assert listed.status_code == 200, f"GET types without a token: HTTP {listed.status_code}"
    types = listed.json()
    assert isinstance(types, list), f"GET types: {str(types)[:200]}"
    assert types, "the licence type catalogue lists no type"
    catalogue: dict[str, dict[str, Any]] = {}
    for entry in types:
        assert_type_code(entry.get("type_code"))
        assert entry["type_code"] not in catalogue, f"type {entry['type_code']} listed twice"
        assert str(entry.get("name", "")).strip(), f"type {entry['type_code']} has no name"
        assert entry.get("defining_authority_code") == entry["type_code"][:18], (
            f"type {entry['type_code']}: defining authority {entry.get('defining_authority_code')}"
        )
        assert str(entry.get("defining_authority_name", "")).strip(), entry
        catalogue[entry["type_code"]] = entry
        detail = elicense_client.get(f"types/{entry['type_code']}")
        assert detail.status_code == 200, f"GET types/{entry['type_code']}: {detail.status_code}"
        assert detail.json() == entry, f"type {entry['type_code']}: detail and list differ"
    # Every licence of the test holders is of a catalogued type, named as the catalogue does.
    for holder in HOLDERS:
        token = credential(holder)
        mine = elicense_client.get("me/licences", headers=bearer(token))
        assert mine.status_code == 200, mine.text[:300]
        for item in mine.json():
            detail = elicense_client.get(f"me/licences/{item['identifier']}", headers=bearer(token))
            assert detail.status_code == 200, detail.text[:300]
            document = sealed_document(detail.json())
            known = catalogue.get(document["type_code"])
            assert known is not None, (
                f"licence {item['identifier']} is of type {document['type_code']}, "
                "which the catalogue does not list"
            )
            shown = (document.get("type_name"), document.get("defining_authority_name"))
            assert shown == (known["name"], known["defining_authority_name"]), (
                f"licence {item['identifier']} names its type {shown}, the catalogue "
                f"{(known['name'], known['defining_authority_name'])}"
            )
    # A well-formed code nobody registered, and one that is not a type code at all.
    some = next(iter(catalogue))
    unused = next(
        f"{some[:18]}{n:03d}" for n in range(1000) if f"{some[:18]}{n:03d}" not in catalogue
    )
    for code in (unused, "not-a-type"):
        missing = elicense_client.get(f"types/{code}")
        assert missing.status_code == 404, f"GET types/{code}: HTTP {missing.status_code}"
        kind = missing.headers.get("content-type", "")
        assert kind.startswith("application/problem+json"), f"GET types/{code}: {kind}"
    # Registering a type is the defining authorities' business: neither anonymous nor a holder.
    new_type = {"type_code": unused, "name": "认证测试证照类型",
                "defining_authority_name": "认证测试", "data_schema": {}}  # fmt: skip
    # (A service that registers types elsewhere answers 404 or 405: then nothing is taken.)
    for headers, expected in (
        ({}, (401, 404, 405)),
        (bearer(credential("elicense_holder_token")), (403, 404, 405)),
    ):
        refused = elicense_client.post("types", json=new_type, headers=headers)
        assert refused.status_code in expected, (
            f"registering a licence type {'without a token' if not headers else 'as a holder'}: "
            f"HTTP {refused.status_code}"
        )
    assert elicense_client.get(f"types/{unused}").status_code == 404, "a refused type was kept"


def other_division(metadata: dict[str, Any]) -> str:
    return "110000" if metadata.get("jurisdiction") != "110000" else "120000"


def flipped(document: bytes, **changes: Any) -> str:
    """The document with ``changes`` in canonical form, base64."""
    return base64.b64encode(rfc8785.dumps({**json.loads(document), **changes})).decode()


@pytest.mark.requirement(
    "IC-LIC-002",
    catches=("not-ses-signature", "signed-other-bytes", "not-issuer-seal", "tampering-accepted",
             "fields-not-covered", "status-disagrees"),
)  # fmt: skip
def test_licence_seal_verifies_with_status_and_tampering_fails(
    elicense_client: httpx.Client, credential: Callable[[str], str],
    licence: dict[str, Any], target: Any,
) -> None:  # fmt: skip
    der = base64.b64decode(licence["signature"])
    document = base64.b64decode(licence["document"])
    parsed = ses.parse_signature(der)
    assert parsed["to_sign"]["version"].native == 4
    assert parsed["to_sign"]["data_hash"].native == sm3(document), (
        "the signature's dataHash is not SM3 of the document as served"
    )
    anchors = published_root(target)
    if anchors:
        offline = ses.verify_signature(der, document, trust_anchors=anchors)
        assert offline.valid, [s.reason for s in offline.steps]
        assert offline.es_id == licence["es_id"]
    register = elicense_client.get("issuers")
    assert register.status_code == 200, register.text[:300]
    seals = {i["issuer_code"]: i["es_id"] for i in register.json()["issuers"]}
    assert seals.get(licence["issuer_code"]) == licence["es_id"], (
        "the licence is not sealed with its issuer's registered seal"
    )
    result = elicense_client.post(
        "verify", json={"document": licence["document"], "signature": licence["signature"]}
    ).json()
    assert result["valid"] is True, result["checks"]
    assert [s["status"] for s in result["seal"]["steps"]] == ["passed"] * 5
    assert result["seal"]["es_id"] == licence["es_id"]
    # One status whichever representation reports it.
    assert result["status"]["code"] == licence["status"]["code"] == "01"
    by_identifier = elicense_client.get(f"verify/{licence['identifier']}")
    assert by_identifier.status_code == 200, by_identifier.text[:300]
    assert by_identifier.json()["status"]["code"] == "01"
    assert by_identifier.json()["licence"]["status"]["code"] == "01"
    metadata = json.loads(document)
    # The seal covers the whole document, not only the fields a verifier thinks matter: the
    # type-specific data, the jurisdiction, the issuer's name and a field added count too.
    data = {**(metadata.get("data") or {}), "zwfw_conformance": "altered"}
    for what, tampered in (
        ("holder", flipped(document, holder_name=f"{metadata['holder_name']}伪")),
        ("number", flipped(document, licence_number=f"{metadata['licence_number']}X")),
        ("validity", flipped(document, valid_until="20991231")),
        ("spacing", base64.b64encode(document + b" ").decode()),
        ("data", flipped(document, data=data)),
        ("jurisdiction", flipped(document, jurisdiction=other_division(metadata))),
        ("issuer name", flipped(document, issuer_name=f"{metadata['issuer_name']}伪")),
        ("field added", flipped(document, zwfw_conformance="added")),
    ):
        forged = elicense_client.post(
            "verify", json={"document": tampered, "signature": licence["signature"]}
        ).json()
        assert forged["valid"] is False, f"a licence with another {what} verifies"
    broken = bytearray(der)
    broken[-1] ^= 0x01
    altered = elicense_client.post(
        "verify",
        json={"document": licence["document"], "signature": base64.b64encode(broken).decode()},
    ).json()
    assert altered["valid"] is False, "an altered signature verifies"


@pytest.mark.requirement(
    "IC-LIC-003", catches=("detail-leak", "list-leak", "existence-oracle", "face-leak")
)
def test_holder_cannot_read_another_holders_licence(
    elicense_client: httpx.Client, credential: Callable[[str], str], licence: dict[str, Any]
) -> None:
    other = bearer(credential("elicense_other_holder_token"))
    theirs = elicense_client.get(f"me/licences/{licence['identifier']}", headers=other)
    assert theirs.status_code == 404, "another holder's licence must answer 404"
    listed = elicense_client.get("me/licences", headers=other).json()
    assert licence["identifier"] not in [entry["identifier"] for entry in listed]
    serial = licence["identifier"].split(".")
    nowhere = elicense_client.get(f"me/licences/{'.'.join(serial[:-2])}.999.0", headers=other)
    assert nowhere.status_code == theirs.status_code
    # The licence's face (the printable PDF with its QR code) is the licence too.
    face = elicense_client.get(f"me/licences/{licence['identifier']}/face.pdf", headers=other)
    assert face.status_code == 404, f"another holder's licence face answers {face.status_code}"
    own = elicense_client.get(
        f"me/licences/{licence['identifier']}/face.pdf",
        headers=bearer(credential("elicense_holder_token")),
    )
    assert own.status_code == 200, f"the holder's own licence face answers {own.status_code}"


@pytest.mark.requirement(
    "IC-LIC-004",
    catches=("cause-not-stated", "expiry-not-stated", "expiry-unbounded", "expiry-in-the-past",
             "not-issuer-seal", "usable-after-expiry", "consent-not-bound", "expiry-offset-ignored",
             "annotation-not-covered"),
)  # fmt: skip
def test_annotated_copy_carries_cause_and_expiry(
    elicense_client: httpx.Client,
    credential: Callable[[str], str],
    licence: dict[str, Any],
    target: Any,
) -> None:
    # Asked in Beijing time (+08:00), as a province's own clients write it: the expiry is the
    # instant asked for, whatever offset it is written with.
    asked = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).astimezone(BEIJING)
    response = copy_until(elicense_client, credential, licence["identifier"], asked)
    assert response.status_code == 201, response.text[:300]
    copy = response.json()
    document = sealed_document(copy)
    annotation = document["annotation"]
    assert annotation["cause"] == copy["cause"] == CAUSE
    expires = moment(annotation["expires_at"])
    assert expires == asked == moment(copy["expires_at"]), "the copy states another expiry"
    assert document["licence"] == sealed_document(licence), "the copy carries another licence"
    assert copy["es_id"] == licence["es_id"], "the copy is not sealed with the issuer's seal"
    assert ses.parse_signature(base64.b64decode(copy["signature"]))["to_sign"][
        "data_hash"
    ].native == (sm3(base64.b64decode(copy["document"])))
    result = elicense_client.post(
        "verify", json={"document": copy["document"], "signature": copy["signature"]}
    ).json()
    assert result["valid"] is True, result["checks"]
    assert result["cause"] == CAUSE
    assert result["seal"]["es_id"] == licence["es_id"]
    assert moment(result["expires_at"]) == expires
    # The seal covers the annotation as well as the licence: a copy whose cause or expiry was
    # changed after sealing, the signature kept, does not verify.
    for what, changes in (
        ("a longer life", {"expires_at": (expires + timedelta(days=365)).isoformat()}),
        ("another cause", {"cause": "任意用途"}),
    ):
        edited = {**document, "annotation": {**annotation, **changes}}
        forged = elicense_client.post(
            "verify",
            json={
                "document": base64.b64encode(rfc8785.dumps(edited)).decode(),
                "signature": copy["signature"],
            },
        ).json()
        assert forged["valid"] is False, f"a copy edited to {what} verifies"
    # Both ends of the copy's life, from the province's own timestamp of the copy; the past
    # written in Beijing time too, so that an offset read as UTC makes it the future.
    made = moment(annotation["made_at"])
    hour_ago = made - timedelta(hours=1)
    for what, when in (("now", made), ("in the past", hour_ago),
                       ("an hour ago, Beijing time", hour_ago.astimezone(BEIJING)),
                       ("ten years on", made + timedelta(days=3660))):  # fmt: skip
        refused = copy_until(elicense_client, credential, licence["identifier"], when)
        assert refused.status_code == 400, f"a copy expiring {what} was made: {refused.text[:200]}"
    # The holder's consent binds only their own licences.
    stranger = copy_until(
        elicense_client, credential, licence["identifier"], asked,
        holder_token=credential("elicense_other_holder_token"),
    )  # fmt: skip
    assert stranger.status_code in (403, 404), (
        f"a copy was made with the consent of someone who does not hold it: {stranger.status_code}"
    )
    anchors = published_root(target)
    if anchors:
        data, signature = base64.b64decode(copy["document"]), base64.b64decode(copy["signature"])
        last = verify_document(data, signature, trust_anchors=anchors, now=expires)
        assert last.check("copy_expiry").status == "passed", "refused before its expiry"
        later = verify_document(
            data, signature, trust_anchors=anchors, now=expires + timedelta(seconds=1)
        )
        assert later.check("copy_expiry").status == "failed"
    expiring = EXPIRING_COPY.take(
        lambda: copy_to_expire(elicense_client, credential, licence["identifier"])
    )
    expired_copy_is_refused(elicense_client, expiring)


def province_clock(response: httpx.Response) -> datetime:
    date = response.headers.get("date")
    assert date, "the e-licence service sends no Date header to judge its clock by"
    return parsedate_to_datetime(date).astimezone(UTC)


def copy_to_expire(
    client: httpx.Client, credential: Callable[[str], str], identifier: str
) -> httpx.Response:
    """A copy made to live a few seconds."""
    return copy_until(
        client,
        credential,
        identifier,
        datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2),
    )


EXPIRING_COPY = HeadStart[httpx.Response]()


# The copy's seconds run out while the other checks run (see zwfw.harness.headstart);
# test_annotated_copy_carries_cause_and_expiry judges it.
@pytest.mark.head_start
@pytest.mark.requirement("IC-LIC-004")
def test_a_copy_can_be_made_to_expire_in_seconds(
    elicense_client: httpx.Client, credential: Callable[[str], str], licence: dict[str, Any]
) -> None:
    made = EXPIRING_COPY.begin(
        lambda: copy_to_expire(elicense_client, credential, licence["identifier"])
    )
    assert made.status_code == 201, made.text[:300]


def expired_copy_is_refused(client: httpx.Client, made: httpx.Response) -> None:
    """The province's verification refuses a copy once its own clock has passed the copy's
    expiry: a copy made to live a few seconds, verified until the province's Date says the
    expiry is over (bounded; each round is a verification, not a blind wait)."""
    assert made.status_code == 201, made.text[:300]
    copy = made.json()
    expires = moment(copy["expires_at"])
    sealed = {"document": copy["document"], "signature": copy["signature"]}
    give_up = monotonic() + 15
    while True:
        response = client.post("verify", json=sealed)
        assert response.status_code == 200, response.text[:300]
        if province_clock(response) > expires:
            break
        assert monotonic() < give_up, "the province's clock never passed the copy's expiry"
        sleep(0.25)
    result = response.json()
    assert result["valid"] is False, "an annotated copy verifies after its expiry"
    expiry = [c for c in result["checks"] if c["name"] == "copy_expiry"]
    assert expiry, "the verification of a copy reports no copy_expiry check"
    assert expiry[0]["status"] == "failed", result["checks"]


@pytest.mark.requirement(
    "IC-LIC-005",
    catches=("copy-not-recorded", "cause-not-recorded", "actor-not-recorded",
             "time-not-recorded", "records-leak"),
)  # fmt: skip
def test_copies_appear_in_the_holders_usage_records(
    elicense_client: httpx.Client, credential: Callable[[str], str], licence: dict[str, Any]
) -> None:
    response = make_copy(elicense_client, credential, licence["identifier"], days=1)
    assert response.status_code == 201, response.text[:300]
    copy = response.json()
    usage = elicense_client.get(
        f"me/licences/{licence['identifier']}/usage",
        headers=bearer(credential("elicense_holder_token")),
    )
    assert usage.status_code == 200, usage.text[:300]
    records = [r for r in usage.json() if r.get("copy_id") == copy["copy_id"]]
    assert len(records) == 1, "the annotated copy is not in the usage records exactly once"
    assert records[0]["cause"] == CAUSE
    assert records[0]["actor_kind"] == "organisation"
    assert records[0]["actor"] == copy["made_by"]
    assert records[0]["identifier"] == licence["identifier"]
    # The province's own times: the record is of the moment the copy was made.
    gap = abs(moment(records[0]["at"]) - moment(copy["made_at"]))
    assert gap <= timedelta(seconds=60), f"recorded {gap} away from the making of the copy"
    leaked = elicense_client.get(
        f"me/licences/{licence['identifier']}/usage",
        headers=bearer(credential("elicense_other_holder_token")),
    )
    assert leaked.status_code == 404, "another holder reads the usage records"


# --- IC-LIC-006: the registry accepts only what it issued ----------------------------------


@pytest.fixture
def test_issuer_licence(
    elicense_client: httpx.Client, credential: Callable[[str], str]
) -> dict[str, Any]:
    """The test holder's valid licence of the certification test issuer."""
    code = credential("elicense_test_issuer_code")
    token = credential("elicense_holder_token")
    listed = elicense_client.get("me/licences", headers=bearer(token))
    assert listed.status_code == 200, listed.text[:300]
    for entry in listed.json():
        # The issuer part of 1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>, read
        # without judging the check character (IC-LIC-001's business).
        parts = str(entry["identifier"]).split(".")
        ours = len(parts) == 10 and parts[6] == code
        if ours and entry["status"]["code"] == "01":
            response = elicense_client.get(
                f"me/licences/{entry['identifier']}", headers=bearer(token)
            )
            assert response.status_code == 200, response.text[:300]
            return response.json()
    pytest.fail(
        f"the test holder holds no valid licence of the certification test issuer {code}",
        pytrace=False,
    )


def resealed(
    eseal_client: httpx.Client, credential: Callable[[str], str], es_id: str,
    document: dict[str, Any], property_info: str,
) -> dict[str, str]:  # fmt: skip
    """``document`` in canonical form, sealed with the test issuer's seal."""
    data = rfc8785.dumps(document)
    response = eseal_client.post(
        f"seals/{es_id}/sign",
        headers=bearer(credential("elicense_test_issuer_signer_token")),
        json={"digest": sm3(data).hex(), "property_info": property_info},
    )
    assert response.status_code == 200, (
        f"the test issuer's signing credential cannot seal with {es_id}: {response.text[:300]}"
    )
    return {"document": base64.b64encode(data).decode(), "signature": response.json()["signature"]}


def verified(elicense_client: httpx.Client, sealed: dict[str, str]) -> dict[str, Any]:
    response = elicense_client.post("verify", json=sealed)
    assert response.status_code == 200, response.text[:300]
    return response.json()


def check_status(result: dict[str, Any], name: str) -> str | None:
    return next((c["status"] for c in result["checks"] if c["name"] == name), None)


def changed(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(document)), **changes}


def forgeries(licence: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issued licence with another holder, another validity, other data: one each."""
    later = datetime.now(UTC) + timedelta(days=3650)
    data = dict(licence.get("data") or {})
    data["zwfw_conformance"] = "altered"
    return {
        "another holder": changed(licence, holder_name=f"{licence['holder_name']}伪"),
        "another validity": changed(licence, valid_until=later.strftime("%Y%m%d")),
        "other data": changed(licence, data=data),
    }


def assert_only_the_registry_refuses(result: dict[str, Any], what: str, *checks: str) -> None:
    assert result["valid"] is False, f"{what}: a document the registry never issued verifies"
    assert check_status(result, "seal") == "passed", (
        f"{what}: the test issuer's seal did not verify, so the registry was not what refused "
        f"({result['checks']})"
    )
    for name in checks:
        assert check_status(result, name) == "failed", (
            f"{what}: the {name} check did not fail ({result['checks']})"
        )


@pytest.mark.requirement("IC-LIC-006", catches=("resealed-licence", "registry-digest"))
def test_a_licence_resealed_under_its_identifier_fails_at_the_registry(
    elicense_client: httpx.Client, eseal_client: httpx.Client,
    credential: Callable[[str], str], test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    licence, es_id = test_issuer_licence, test_issuer_licence["es_id"]
    genuine = {"document": licence["document"], "signature": licence["signature"]}
    before = verified(elicense_client, genuine)
    assert before["valid"] is True, before["checks"]
    assert check_status(before, "registry") == "passed", before["checks"]
    metadata = json.loads(base64.b64decode(licence["document"]))
    identifier = metadata["identifier"]
    for what, document in forgeries(metadata).items():
        sealed = resealed(eseal_client, credential, es_id, document, f"licence:{identifier}")
        assert_only_the_registry_refuses(verified(elicense_client, sealed), what, "registry")
    # The genuine licence still verifies, and its public record is the issued document.
    assert verified(elicense_client, genuine)["valid"] is True
    record = elicense_client.get(f"verify/{identifier}")
    assert record.status_code == 200, record.text[:300]
    published = record.json()
    assert published["valid"] is True, published["checks"]
    assert check_status(published, "registry") == "passed", published["checks"]
    assert published["licence"]["document_sm3"] == sm3(base64.b64decode(licence["document"])).hex()


@pytest.mark.requirement("IC-LIC-006", catches=("copy-of-another-licence", "copy-not-as-made"))
def test_an_annotated_copy_must_carry_the_issued_licence_and_be_the_copy_made(
    elicense_client: httpx.Client, eseal_client: httpx.Client,
    credential: Callable[[str], str], test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    es_id = test_issuer_licence["es_id"]
    response = make_copy(elicense_client, credential, test_issuer_licence["identifier"], days=1)
    assert response.status_code == 201, response.text[:300]
    copy = response.json()
    genuine = verified(
        elicense_client, {"document": copy["document"], "signature": copy["signature"]}
    )
    assert genuine["valid"] is True, genuine["checks"]
    assert check_status(genuine, "registry") == check_status(genuine, "copy_registry") == "passed"
    document = json.loads(base64.b64decode(copy["document"]))
    prop = f"copy:{document['annotation']['copy_id']}"
    for what, licence in forgeries(document["licence"]).items():
        sealed = resealed(eseal_client, credential, es_id, changed(document, licence=licence), prop)
        result = verified(elicense_client, sealed)
        assert_only_the_registry_refuses(result, f"a copy of {what}", "registry", "copy_registry")
    expires = datetime.fromisoformat(document["annotation"]["expires_at"])
    for what, annotation in (
        ("another cause", {"cause": "任意用途"}),
        ("a longer life", {"expires_at": (expires + timedelta(days=365)).isoformat()}),
    ):
        forged = changed(document, annotation={**document["annotation"], **annotation})
        result = verified(elicense_client, resealed(eseal_client, credential, es_id, forged, prop))
        assert_only_the_registry_refuses(result, f"a copy with {what}", "copy_registry")
        assert check_status(result, "registry") == "passed", result["checks"]


def sealed_as(signature: str) -> str:
    """The propertyInfo of a GB/T 38540 seal signature: what the sealer says it sealed."""
    return str(ses.parse_signature(base64.b64decode(signature))["to_sign"]["property_info"].native)


@pytest.mark.requirement(
    "IC-LIC-006", catches=("sealed-as-another-document", "sealed-as-another-of-its-kind")
)
def test_a_document_sealed_as_another_document_does_not_verify(
    elicense_client: httpx.Client, eseal_client: httpx.Client,
    credential: Callable[[str], str], test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    # GB/T 38540's propertyInfo binds a seal to what it was applied to. The platform's own
    # convention for it is read from its own signatures, then swapped, each time with the
    # issuer's own seal: the licence sealed as its copy and the copy as the licence, and (a
    # check of the kind of document only passes these) the licence sealed as another licence
    # of the same issuer and the copy as another copy of the same licence.
    es_id = test_issuer_licence["es_id"]
    copies = []
    for _ in range(2):
        response = make_copy(elicense_client, credential, test_issuer_licence["identifier"], days=1)
        assert response.status_code == 201, response.text[:300]
        copies.append(response.json())
    copy, other_copy = copies
    _, other_licence = issue_test_licence(elicense_client, credential, test_issuer_licence)
    as_licence, as_copy = sealed_as(test_issuer_licence["signature"]), sealed_as(copy["signature"])
    as_other_licence = sealed_as(other_licence["signature"])
    as_other_copy = sealed_as(other_copy["signature"])
    for first, second, which in (
        (as_licence, as_copy, "the licence and its annotated copy"),
        (as_licence, as_other_licence, "two licences"),
        (as_copy, as_other_copy, "two annotated copies of one licence"),
    ):
        assert first != second, (
            f"{which} are sealed as the same thing ({first!r}): the seal does not say which "
            "document it was applied to"
        )
    for what, document, prop in (
        ("the licence sealed as its copy", test_issuer_licence["document"], as_copy),
        ("the copy sealed as its licence", copy["document"], as_licence),
        ("the licence sealed as another licence", test_issuer_licence["document"],
         as_other_licence),
        ("the copy sealed as another copy", copy["document"], as_other_copy),
    ):  # fmt: skip
        genuine = json.loads(base64.b64decode(document))
        result = verified(elicense_client, resealed(eseal_client, credential, es_id, genuine, prop))
        assert result["valid"] is False, f"{what} verifies: {result['checks']}"
        assert check_status(result, "seal") == "passed", (
            f"{what}: the test issuer's seal did not verify, so what was refused is unclear "
            f"({result['checks']})"
        )


# --- IC-LIC-007: a status change reaches every representation ------------------------------


def beijing_today() -> date:
    return datetime.now(BEIJING).date()


def issue_test_licence(
    client: httpx.Client, credential: Callable[[str], str], model: dict[str, Any],
    *, valid_from: date | None = None, valid_until: date | None = None, version: int = 2,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """A fresh licence of the certification test issuer for the test holder, modelled on
    ``model`` (its type and data), with every GB/T 36903 field given explicitly (by default
    valid from two days ago for 400 days); returns the request and the issued licence."""
    body = licence_request(credential, model, valid_from=valid_from, valid_until=valid_until,
                             version=version)  # fmt: skip
    response = client.post(
        "licences", headers=bearer(credential("elicense_issuer_token")), json=body
    )
    assert response.status_code == 201, (
        f"the issuer cannot issue a test licence: {response.text[:300]}"
    )
    return body, response.json()


def licence_request(
    credential: Callable[[str], str], model: dict[str, Any], *, valid_from: date | None = None,
    valid_until: date | None = None, version: int = 2,
) -> dict[str, Any]:  # fmt: skip
    """The issuance request of a test licence (see issue_test_licence)."""
    metadata = json.loads(base64.b64decode(model["document"]))
    today = beijing_today()
    valid_from = valid_from or today - timedelta(days=2)
    valid_until = valid_until or today + timedelta(days=400)
    number = f"ZWFW{secrets.token_hex(6).upper()}"
    return {
        "type_code": metadata["type_code"],
        "issuer_code": credential("elicense_test_issuer_code"),
        "licence_number": number,
        "serial": f"T{secrets.token_hex(8).upper()}",
        "version": version,
        "issue_date": (valid_from - timedelta(days=1)).isoformat(),
        "valid_from": valid_from.isoformat(),
        "valid_until": valid_until.isoformat(),
        "jurisdiction": metadata["jurisdiction"],
        "holder": {
            "name": "互联互通测试持证人",
            "code": TEST_HOLDER_ID,
            "code_type": "111",
            "sub": credential("elicense_holder_subject"),
        },
        "data": metadata["data"],
    }


def assert_issued_as_asked(body: dict[str, Any], licence: dict[str, Any]) -> None:
    """The sealed GB/T 36903 metadata states the values the issuer asked for, not only the
    fields."""
    document = sealed_document(licence)
    identifier = build_licence_id(
        body["type_code"], body["issuer_code"], body["serial"], body["version"]
    )
    expected = {
        "identifier": str(identifier),
        "type_code": body["type_code"],
        "issuer_code": body["issuer_code"],
        "defining_authority_code": body["type_code"][:18],
        "licence_number": body["licence_number"],
        "version": f"{body['version']:03d}",
        "issue_date": as_yyyymmdd(body["issue_date"]),
        "valid_from": as_yyyymmdd(body["valid_from"]),
        "valid_until": as_yyyymmdd(body["valid_until"]),
        "jurisdiction": body["jurisdiction"],
        "holder_name": body["holder"]["name"],
        "holder_code_type": body["holder"]["code_type"],
        "data": body["data"],
    }
    stated = {name: document.get(name) for name in expected}
    assert stated == expected, f"the sealed metadata states other values: {stated}"
    # A personal holder code is masked in the sealed metadata (never the full ID number), and
    # still the holder's: the visible ends are the ID number's own.
    code = str(document.get("holder_code"))
    assert code != TEST_HOLDER_ID, "the sealed metadata carries the holder's full ID number"
    assert (code[:3], code[-4:]) == (TEST_HOLDER_ID[:3], TEST_HOLDER_ID[-4:]), code
    assert licence["identifier"] == str(identifier)
    assert (licence["valid_from"], licence["valid_until"]) == (
        body["valid_from"],
        body["valid_until"],
    )


def every_status(
    client: httpx.Client, credential: Callable[[str], str], licence: dict[str, Any]
) -> dict[str, Any]:
    """The licence's status as each representation states it: the holder's list and detail,
    the issuer's view, the verification of the sealed licence and the by-identifier one."""
    identifier = licence["identifier"]
    holder = bearer(credential("elicense_holder_token"))
    listed = client.get("me/licences", headers=holder)
    assert listed.status_code == 200, listed.text[:300]
    entries = [e for e in listed.json() if e["identifier"] == identifier]
    assert len(entries) == 1, "the issued licence is not in its holder's list exactly once"
    detail = client.get(f"me/licences/{identifier}", headers=holder)
    assert detail.status_code == 200, detail.text[:300]
    issuer = client.get(
        f"licences/{identifier}", headers=bearer(credential("elicense_issuer_token"))
    )
    assert issuer.status_code == 200, issuer.text[:300]
    sealed = verified(client, {"document": licence["document"], "signature": licence["signature"]})
    record = client.get(f"verify/{identifier}")
    assert record.status_code == 200, record.text[:300]
    return {
        "list": entries[0]["status"],
        "detail": detail.json()["status"],
        "issuer": issuer.json()["status"],
        "verify": sealed,
        "record": record.json(),
    }


def assert_status_everywhere(
    statuses: dict[str, Any], code: str, reason: str | None, when: str
) -> None:
    for name in ("list", "detail", "issuer"):
        status = statuses[name]
        assert status["code"] == code, f"{when}: the {name} states status {status['code']}"
        assert status.get("reason") == reason, f"{when}: the {name} states reason {status}"
    for name in ("verify", "record"):
        result = statuses[name]
        assert (result["status"] or {}).get("code") == code, (
            f"{when}: the {name} verification states status {result['status']}"
        )
        assert check_status(result, "seal") == "passed", (when, name, result["checks"])
        assert check_status(result, "status") == ("passed" if code == "01" else "failed"), (
            when, name, result["checks"]
        )  # fmt: skip
        assert result["valid"] is (code == "01"), (
            f"{when}: the {name} verification says {result['valid']}"
        )
    published = statuses["record"]["licence"]["status"]
    assert (published["code"], published.get("reason")) == (code, reason), (when, published)


def warm_copy(
    client: httpx.Client, credential: Callable[[str], str], licence: dict[str, Any]
) -> dict[str, str]:
    """Every representation of a valid licence read, and a copy of it made and verified, so
    that whatever the service caches is warm before its status changes; returns the copy."""
    assert_status_everywhere(every_status(client, credential, licence), "01", None, "issued")
    made = make_copy(client, credential, licence["identifier"], days=1)
    assert made.status_code == 201, made.text[:300]
    copy = {"document": made.json()["document"], "signature": made.json()["signature"]}
    assert verified(client, copy)["valid"] is True
    return copy


def change_licence_status(
    client: httpx.Client, credential: Callable[[str], str], identifier: str, code: str,
    reason: str,
) -> httpx.Response:  # fmt: skip
    return client.post(
        f"licences/{identifier}/status",
        headers=bearer(credential("elicense_issuer_token")),
        json={"status": code, "reason": reason},
    )


@pytest.mark.requirement(
    "IC-LIC-007",
    catches=("fields-not-as-issued", "status-not-everywhere", "suspension-sticks",
             "suspended-copy", "revoked-still-verifies", "revoked-copy-verifies",
             "revoked-copy-made", "revocation-undone"),
)  # fmt: skip
def test_a_licence_status_change_reaches_every_representation(
    elicense_client: httpx.Client, credential: Callable[[str], str],
    test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    body, licence = issue_test_licence(elicense_client, credential, test_issuer_licence)
    assert_issued_as_asked(body, licence)
    identifier = licence["identifier"]
    copy = warm_copy(elicense_client, credential, licence)

    suspended = change_licence_status(
        elicense_client, credential, identifier, "02", "互联互通测试暂停"
    )
    assert suspended.status_code == 200, suspended.text[:300]
    assert suspended.json()["code"] == "02"
    statuses = every_status(elicense_client, credential, licence)
    assert_status_everywhere(statuses, "02", "互联互通测试暂停", "suspended")
    # While suspended, the copy made before fails at the status check and none is made.
    while_suspended = verified(elicense_client, copy)
    assert while_suspended["valid"] is False, "a copy of a suspended licence verifies"
    assert check_status(while_suspended, "status") == "failed", while_suspended["checks"]
    refused = make_copy(elicense_client, credential, identifier, days=1)
    assert refused.status_code in (400, 403, 409), (
        f"a copy of a suspended licence was made: {refused.status_code}"
    )
    reinstated = change_licence_status(
        elicense_client, credential, identifier, "01", "互联互通测试恢复"
    )
    assert reinstated.status_code == 200, reinstated.text[:300]
    statuses = every_status(elicense_client, credential, licence)
    assert_status_everywhere(statuses, "01", "互联互通测试恢复", "reinstated")
    assert verified(elicense_client, copy)["valid"] is True, "a reinstated licence's copy fails"

    revoked = change_licence_status(
        elicense_client, credential, identifier, "03", "互联互通测试吊销"
    )
    assert revoked.status_code == 200, revoked.text[:300]
    assert (revoked.json()["code"], revoked.json()["reason"]) == ("03", "互联互通测试吊销")
    statuses = every_status(elicense_client, credential, licence)
    assert_status_everywhere(statuses, "03", "互联互通测试吊销", "revoked")
    # The copy made while the licence was valid no longer verifies, and no new one is made.
    old_copy = verified(elicense_client, copy)
    assert old_copy["valid"] is False, "a copy of a revoked licence verifies"
    assert check_status(old_copy, "status") == "failed", old_copy["checks"]
    again = make_copy(elicense_client, credential, identifier, days=1)
    assert again.status_code in (400, 403, 409), (
        f"a copy of a revoked licence was made: {again.status_code}"
    )
    # Revocation is for good.
    undone = change_licence_status(elicense_client, credential, identifier, "01", "再次启用")
    assert undone.status_code == 409, f"a revoked licence was reinstated: {undone.status_code}"
    assert every_status(elicense_client, credential, licence)["detail"]["code"] == "03"


def wrong_check_character(resident_id: str) -> str:
    """The resident ID number with another check character (GB 11643)."""
    return resident_id[:-1] + ("0" if resident_id[-1] != "0" else "1")


@pytest.mark.requirement("IC-LIC-007", catches=("fields-not-as-issued", "malformed-issued"))
def test_an_issuance_breaking_the_metadata_rules_is_refused_and_nothing_issued(
    elicense_client: httpx.Client, credential: Callable[[str], str],
    test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    issuer = bearer(credential("elicense_issuer_token"))
    holder = bearer(credential("elicense_holder_token"))
    held = elicense_client.get("me/licences", headers=holder)
    assert held.status_code == 200, held.text[:300]
    today = beijing_today()
    defects: dict[str, dict[str, Any]] = {
        "a 4-digit jurisdiction": {"jurisdiction": "3401"},
        "a jurisdiction with a letter": {"jurisdiction": "34010A"},
        "a validity ending before it starts": {
            "valid_from": today.isoformat(), "valid_until": (today - timedelta(days=1)).isoformat(),
        },
        "version 0": {"version": 0},
        "version 1000": {"version": 1000},
    }  # fmt: skip
    holder_defects = {
        "a resident ID number (code type 111) with a wrong check character":
            {"code": wrong_check_character(TEST_HOLDER_ID)},
        "a resident ID number (code type 111) of 17 characters": {"code": TEST_HOLDER_ID[:-1]},
    }  # fmt: skip
    requests = {what: {**licence_request(credential, test_issuer_licence), **change}
                for what, change in defects.items()}  # fmt: skip
    for what, change in holder_defects.items():
        body = licence_request(credential, test_issuer_licence)
        requests[what] = {**body, "holder": {**body["holder"], **change}}
    for what, body in requests.items():
        response = elicense_client.post("licences", headers=issuer, json=body)
        assert 400 <= response.status_code < 500, (
            f"a licence with {what} was issued: HTTP {response.status_code}"
        )
        assert response.headers.get("content-type", "").startswith("application/problem+json"), (
            f"the refusal of {what} is not problem+json"
        )
        if 1 <= body["version"] <= 999:
            identifier = build_licence_id(
                body["type_code"], body["issuer_code"], body["serial"], body["version"]
            )
            record = elicense_client.get(f"verify/{identifier}")
            assert record.status_code == 404, f"the refused licence with {what} is in the registry"
    after = elicense_client.get("me/licences", headers=holder)
    assert len(after.json()) == len(held.json()), "a refused issuance reached the holder's list"
    # The first version of a licence, 001, is issued as asked (then revoked: none left valid).
    body, first = issue_test_licence(elicense_client, credential, test_issuer_licence, version=1)
    assert_issued_as_asked(body, first)
    revoked = change_licence_status(
        elicense_client, credential, first["identifier"], "03", "互联互通测试结束"
    )
    assert revoked.status_code == 200, revoked.text[:300]


# Cancellation (04) and withdrawal (07) end a licence as revocation (03) does; an implementation
# that treats only 03 as final lets copies of the others verify, be made, or be reinstated.
ENDING_STATUSES = [("04", "互联互通测试注销"), ("07", "互联互通测试撤回")]


@pytest.mark.requirement(
    "IC-LIC-007",
    catches=("status-not-everywhere", "ended-copy-verifies", "ended-copy-made", "ended-undone"),
)  # fmt: skip
@pytest.mark.parametrize(("code", "reason"), ENDING_STATUSES, ids=["cancelled", "withdrawn"])
def test_a_cancelled_or_withdrawn_licence_ends_for_good(
    elicense_client: httpx.Client, credential: Callable[[str], str],
    test_issuer_licence: dict[str, Any], code: str, reason: str,
) -> None:  # fmt: skip
    _, licence = issue_test_licence(elicense_client, credential, test_issuer_licence)
    identifier = licence["identifier"]
    copy = warm_copy(elicense_client, credential, licence)

    ended = change_licence_status(elicense_client, credential, identifier, code, reason)
    assert ended.status_code == 200, ended.text[:300]
    assert (ended.json()["code"], ended.json()["reason"]) == (code, reason)
    assert_status_everywhere(
        every_status(elicense_client, credential, licence), code, reason, f"status {code}"
    )
    old_copy = verified(elicense_client, copy)
    assert old_copy["valid"] is False, f"a copy of a licence in status {code} verifies"
    assert check_status(old_copy, "status") == "failed", old_copy["checks"]
    again = make_copy(elicense_client, credential, identifier, days=1)
    assert again.status_code in (400, 403, 409), (
        f"a copy of a licence in status {code} was made: {again.status_code}"
    )
    for back in ("01", "02"):
        undone = change_licence_status(elicense_client, credential, identifier, back, "再次变更")
        assert undone.status_code == 409, (
            f"a licence in status {code} was changed to {back}: {undone.status_code}"
        )
    final = every_status(elicense_client, credential, licence)
    assert_status_everywhere(final, code, reason, f"status {code}, after attempts to undo it")


@pytest.mark.requirement(
    "IC-LIC-009", catches=("expired-shown-valid", "expired-verifies", "expired-copy-made",
                           "last-day-expired"),
)  # fmt: skip
def test_a_licence_past_its_validity_end_is_expired_everywhere(
    elicense_client: httpx.Client, credential: Callable[[str], str],
    test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    # Validity ends are Beijing calendar days: one licence whose last day was yesterday, one
    # whose last day is today, both judged against the date at the start and end of the checks.
    today = beijing_today()
    _, ended = issue_test_licence(
        elicense_client, credential, test_issuer_licence,
        valid_from=today - timedelta(days=30), valid_until=today - timedelta(days=1),
    )  # fmt: skip
    _, last_day = issue_test_licence(
        elicense_client, credential, test_issuer_licence,
        valid_from=today - timedelta(days=30), valid_until=today,
    )  # fmt: skip
    assert_status_everywhere(
        every_status(elicense_client, credential, ended), "05", None, "validity ended yesterday"
    )
    copy = make_copy(elicense_client, credential, ended["identifier"], days=1)
    assert copy.status_code in (400, 403, 409), (
        f"a copy of an expired licence was made: {copy.status_code}"
    )
    statuses = every_status(elicense_client, credential, last_day)
    if beijing_today() == today:
        assert_status_everywhere(statuses, "01", None, "on the last day of its validity")
    # Tidied away: the last-day licence is revoked, so later runs never pick it as valid.
    revoked = change_licence_status(
        elicense_client, credential, last_day["identifier"], "03", "互联互通测试结束"
    )
    assert revoked.status_code in (200, 409), revoked.text[:300]


# --- IC-LIC-011: the licence face ----------------------------------------------------------

# Pages are rendered at 288 dpi, enough for a 2-D code a centimetre wide.
FACE_SCALE = 4


@dataclass(frozen=True)
class Face:
    """What a holder's reader takes from a licence face: its text (whitespace removed, as line
    breaks fall where the layout puts them) and the contents of its 2-D codes."""

    text: str
    codes: list[str]


def read_face(client: httpx.Client, token: str, identifier: str) -> Face:
    response = client.get(f"me/licences/{identifier}/face.pdf", headers=bearer(token))
    assert response.status_code == 200, (
        f"the holder's licence face answers {response.status_code}: {response.text[:200]}"
    )
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type == "application/pdf", f"the licence face is served as {media_type!r}"
    try:
        document = pypdfium2.PdfDocument(response.content)
    except pypdfium2.PdfiumError as exc:
        pytest.fail(f"the licence face of {identifier} is not a PDF: {exc}", pytrace=False)
    text, codes = [], []
    for number, page in enumerate(document, start=1):
        width, height = page.get_size()
        textpage = page.get_textpage()
        text.append(textpage.get_text_range())
        # A reader sees only what lies on the page: text placed beyond it is not on the face.
        for index in range(textpage.count_chars()):
            left, bottom, right, top = textpage.get_charbox(index)
            on_page = 0 <= left <= right <= width and 0 <= bottom <= top <= height
            assert on_page, (
                f"the licence face of {identifier} puts text outside page {number}: "
                f"{textpage.get_text_range(index, 1)!r} at ({left:.0f}, {bottom:.0f})"
            )
        image = page.render(scale=FACE_SCALE).to_pil()
        found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.AllMatrix)
        codes += [code.text for code in found]
    face = Face("".join("".join(text).split()), codes)
    assert face.text, f"the licence face of {identifier} has no text a reader can extract"
    return face


def date_spellings(yyyymmdd: str) -> set[str]:
    """The ways a face may print a GB/T 36903 date (yyyyMMdd)."""
    day = datetime.strptime(yyyymmdd, "%Y%m%d").date()
    return {
        yyyymmdd, day.isoformat(), day.strftime("%Y/%m/%d"), day.strftime("%Y.%m.%d"),
        f"{day.year}年{day.month}月{day.day}日", f"{day.year}年{day.month:02}月{day.day:02}日",
    }  # fmt: skip


def assert_face_states(face: Face, licence: dict[str, Any]) -> None:
    """The face states its own licence's facts as sealed."""
    document = sealed_document(licence)
    facts = {
        "identifier": licence["identifier"],
        "licence number": document["licence_number"],
        "holder": document["holder_name"],
        "issuer": document["issuer_name"],
    }
    for what, value in facts.items():
        stated = "".join(str(value).split())
        assert stated in face.text, (
            f"the face of {licence['identifier']} does not state its {what} {value!r}"
        )
    for end in ("valid_from", "valid_until"):
        value = document.get(end)
        spellings = date_spellings(value) if value else {"长期"}
        assert any(spelling in face.text for spelling in spellings), (
            f"the face of {licence['identifier']} does not state its {end} {value!r}"
        )


def assert_code_verifies(
    client: httpx.Client, public_base: str, face: Face, licence: dict[str, Any], status: str,
) -> str:  # fmt: skip
    """One of the face's 2-D codes names a URL at the service's public address that answers,
    without a token, the verification of this licence with ``status``; returns that URL."""
    identifier = licence["identifier"]
    assert face.codes, f"the face of {identifier} carries no 2-D code a reader decodes"
    public = httpx.URL(public_base)
    digest = sm3(base64.b64decode(licence["document"])).hex()
    why: list[str] = []
    for code in face.codes:
        try:
            url = httpx.URL(code)
        except httpx.InvalidURL:
            why.append(f"{code[:80]!r} is not a URL")
            continue
        if (url.scheme, url.host, url.port) != (public.scheme, public.host, public.port):
            why.append(f"{code[:120]} is outside the public address {public_base}")
            continue
        answer = client.get(url)
        if answer.status_code != 200:
            why.append(f"{code[:120]} answers {answer.status_code} without a token")
            continue
        body = answer.json()
        record = body.get("licence") or {}
        if record.get("document_sm3") != digest:
            why.append(f"{code[:120]} verifies another document than licence {identifier}'s")
        elif (body.get("status") or {}).get("code") != status or (
            (record.get("status") or {}).get("code") != status
        ):
            why.append(f"{code[:120]} states status {body.get('status')}, not {status}")
        else:
            return str(url)
    pytest.fail("; ".join(why), pytrace=False)


@pytest.mark.requirement(
    "IC-LIC-011",
    catches=("not-a-pdf", "off-the-page", "face-differs", "id-number-shown", "code-missing",
             "code-not-public", "code-elsewhere"),
)  # fmt: skip
def test_the_licence_face_is_its_licence_and_its_code_verifies_it(
    target: Any, elicense_client: httpx.Client, credential: Callable[[str], str],
    licence: dict[str, Any], test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    token = credential("elicense_holder_token")
    public_base = target.base_url("elicense")
    # One holder's faces, each read after the other's: a face cached per holder or per type
    # shows the other licence.
    first = read_face(elicense_client, token, licence["identifier"])
    assert_face_states(first, licence)
    assert_code_verifies(elicense_client, public_base, first, licence, "01")
    _, issued = issue_test_licence(elicense_client, credential, test_issuer_licence)
    face = read_face(elicense_client, token, issued["identifier"])
    assert_face_states(face, issued)
    assert TEST_HOLDER_ID not in face.text, "the licence face prints the holder's full ID number"
    url = assert_code_verifies(elicense_client, public_base, face, issued, "01")
    again = read_face(elicense_client, token, licence["identifier"])
    assert_face_states(again, licence)
    # The code printed on a face is read long after: it answers the licence's status now.
    suspended = change_licence_status(
        elicense_client, credential, issued["identifier"], "02", "互联互通测试暂停"
    )
    assert suspended.status_code == 200, suspended.text[:300]
    try:
        assert_code_verifies(elicense_client, public_base, Face(face.text, [url]), issued, "02")
    finally:
        # Tidied away: the licence is revoked, so later runs never pick it as valid.
        change_licence_status(
            elicense_client, credential, issued["identifier"], "03", "互联互通测试结束"
        )


# --- IC-LIC-008: verification follows the seal registry ------------------------------------

# How long after a seal's revocation at the e-seal service the e-licence service may still
# pass documents sealed with it (a status it caches must expire within this bound).
SEAL_STATUS_BOUND_SECONDS = 30


def throwaway_seal(eseal_client: httpx.Client, credential: Callable[[str], str]) -> str:
    """A business seal of its own, valid for a day, signed by the harness's signing client."""
    response = eseal_client.post(
        "seals",
        headers=bearer(credential("eseal_admin_token")),
        json={
            "credit_code": "11340100MB0000000T",
            "organisation": "zwfw conformance",
            "category": "business",
            "name": "互联互通测试专用章",
            "picture": {"png": TINY_PNG},
            "valid_end": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "signers": [{"subject": credential("eseal_signer_subject"), "name": "测试签章人"}],
        },
    )
    assert response.status_code == 201, f"making a seal failed: {response.text[:300]}"
    return str(response.json()["es_id"])


@dataclass
class RevokedSeal:
    """Documents sealed with throw-away seals, verified while the seals were valid, by the
    status each seal was then given at the e-seal service (``revoked``, ``suspended``), and
    when the last change was made (monotonic clock); ``problem`` says why there are none."""

    sealed: dict[str, dict[str, str]] | None
    revoked_at: float
    problem: str | None = None


def seal_and_verify(
    elicense_client: httpx.Client, eseal_client: httpx.Client,
    credential: Callable[[str], str], licence: dict[str, Any],
) -> tuple[str, dict[str, str]]:  # fmt: skip
    """A throw-away seal and the licence sealed with it, verified once at the e-licence
    service so that a seal status it caches is warm."""
    es_id = throwaway_seal(eseal_client, credential)
    # The licence's canonical form (RFC 8785), whatever serialisation it was served in: the
    # seal check is what is judged here, not the licence as served (IC-LIC-002's business).
    document = rfc8785.dumps(json.loads(base64.b64decode(licence["document"])))
    response = eseal_client.post(
        f"seals/{es_id}/sign",
        headers=bearer(credential("eseal_signer_token")),
        json={"digest": sm3(document).hex(), "property_info": f"licence:{licence['identifier']}"},
    )
    assert response.status_code == 200, f"signing with a new seal failed: {response.text[:300]}"
    sealed = {
        "document": base64.b64encode(document).decode(),
        "signature": response.json()["signature"],
    }
    # The seal is not the issuer's: only the seal check itself is judged.
    before = verified(elicense_client, sealed)
    assert check_status(before, "seal") == "passed", f"before its revocation: {before['checks']}"
    return es_id, sealed


def revoke_a_verified_seal(
    target: Any, service_client: Callable[[str], httpx.Client]
) -> RevokedSeal:
    if target.base_url("eseal") is None:
        return RevokedSeal(None, monotonic(), "the target profile lists no eseal service")
    credential = target.secret
    elicense_client, eseal_client = service_client("elicense"), service_client("eseal")
    licence = first_licence(elicense_client, credential("elicense_holder_token"))
    # One seal revoked, one suspended: a verifier that refuses only revoked seals lets the
    # suspended one pass.
    made = {
        status: seal_and_verify(elicense_client, eseal_client, credential, licence)
        for status in ("revoked", "suspended")
    }
    for status, action in (("revoked", "revoke"), ("suspended", "suspend")):
        changed_status = eseal_client.post(
            f"seals/{made[status][0]}/{action}",
            headers=bearer(credential("eseal_admin_token")),
            json={"reason": "互联互通测试结束"},
        )
        assert changed_status.status_code == 200, (
            f"{action} the seal failed: {changed_status.text[:300]}"
        )
    return RevokedSeal({status: sealed for status, (_, sealed) in made.items()}, monotonic())


def revoked_or_why_not(target: Any, service_client: Callable[[str], httpx.Client]) -> RevokedSeal:
    """Never raises: what goes wrong is IC-LIC-008's failure, said by its checks."""
    from zwfw.harness.profile import SecretUnavailable

    try:
        return revoke_a_verified_seal(target, service_client)
    except (AssertionError, httpx.HTTPError, SecretUnavailable, KeyError, ValueError) as error:
        return RevokedSeal(None, monotonic(), f"no revoked seal to judge by: {error}")


REVOKED_SEAL = HeadStart[RevokedSeal]()


# Revoked before the run's other checks and judged later (see zwfw.harness.headstart), so that
# the bound a status cache may take elapses while they run, not in a wait.
@pytest.mark.head_start
@pytest.mark.requirement("IC-LIC-008")
def test_seals_verify_until_the_seal_registry_revokes_them(
    target: Any, service_client: Callable[[str], httpx.Client]
) -> None:
    revoked = REVOKED_SEAL.begin(lambda: revoked_or_why_not(target, service_client))
    if revoked.sealed is None:
        pytest.fail(str(revoked.problem), pytrace=False)


@pytest.mark.requirement(
    "IC-LIC-008", catches=("seal-status-cached", "seal-status-ignored", "seal-suspension-ignored")
)
def test_a_seal_revoked_at_the_seal_registry_stops_verifying_within_the_bound(
    elicense_client: httpx.Client, target: Any, service_client: Callable[[str], httpx.Client]
) -> None:
    revoked_seal = REVOKED_SEAL.take(lambda: revoked_or_why_not(target, service_client))
    if revoked_seal.sealed is None:
        pytest.fail(str(revoked_seal.problem), pytrace=False)
    give_up = revoked_seal.revoked_at + SEAL_STATUS_BOUND_SECONDS
    for status, sealed in revoked_seal.sealed.items():
        while True:
            result = verified(elicense_client, sealed)
            if check_status(result, "seal") != "passed":
                break
            assert monotonic() < give_up, (
                f"a document sealed with a {status} seal still passes the seal check "
                f"{SEAL_STATUS_BOUND_SECONDS} s after the change"
            )
            sleep(0.5)
        steps = result["seal"]["steps"]
        assert [s["status"] for s in steps] == ["passed", "passed", "failed", "passed", "passed"], (
            status, steps
        )  # fmt: skip
        assert status in steps[2]["reason"], steps[2]
