"""免证办: licence references fetched and verified through the e-licence library."""

from __future__ import annotations

from sqlalchemy import func, select

from zwfw.services.hall.models import Case
from zwfw.services.kit.audit import audit_log

from .support import LICENCE_ID, OTHER_TYPE_LICENCE, Hall, application, upload


def licence_application(identifier: str = LICENCE_ID) -> dict[str, object]:
    return application(
        materials=[upload(), {"name": "营业执照", "gettype": 3, "licence_id": identifier}]
    )


def case_count(hall: Hall) -> int:
    with hall.db() as db:
        return db.scalar(select(func.count()).select_from(Case)) or 0


def test_licence_reference_is_fetched_with_a_cause(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 201, response.text
    case = response.json()
    licence = case["materials"][1]
    assert licence["gettype"] == 3
    assert licence["licence_id"] == LICENCE_ID
    assert "企业投资项目备案" in licence["licence_cause"]
    assert licence["licence_copy"]["status"] == "01"
    assert licence["licence_copy"]["copy_id"] == "copy-1"
    assert case["missing_materials"] == []
    # The library saw the applicant's own token, the cause and an expiry.
    (request,) = hall.library.requests
    assert request["sub"] == "citizen-1"
    assert request["cause"] == licence["licence_cause"]
    assert request["expires_at"] == licence["licence_copy"]["expires_at"]
    with hall.db() as db:
        (detail,) = db.execute(
            select(audit_log.c.detail).where(audit_log.c.action == "case.apply")
        ).one()
    assert detail["licences"] == [{"licence_id": LICENCE_ID, "cause": licence["licence_cause"]}]


def test_licence_of_someone_else_is_refused(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-9"
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 422
    assert "not available to the applicant" in response.json()["detail"]
    assert case_count(hall) == 0


def test_invalid_licence_status_is_refused(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    hall.library.status[LICENCE_ID] = "03"
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 422
    assert "status 03 revoked" in response.json()["detail"]


def test_copies_that_do_not_check_out_are_refused(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    for tamper, reason in (
        ("cause", "requested cause"),
        ("identifier", "not " + LICENCE_ID),
        ("digest", "SHA-256"),
    ):
        hall.library.tamper = tamper
        response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
        assert response.status_code == 422, tamper
        assert reason in response.json()["detail"]
    assert case_count(hall) == 0


def test_library_outage_is_a_503_and_stores_nothing(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    hall.library.down = True
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert case_count(hall) == 0


def test_licence_must_fit_the_material(hall: Hall) -> None:
    wrong_type = hall.client.post(
        "/cases", json=licence_application(OTHER_TYPE_LICENCE), headers=hall.citizen()
    )
    assert wrong_type.status_code == 400
    assert "needs type 11100000000013338W001" in wrong_type.json()["detail"]
    not_replaceable = application(
        materials=[{"name": "项目备案申请表", "gettype": 3, "licence_id": LICENCE_ID}]
    )
    response = hall.client.post("/cases", json=not_replaceable, headers=hall.citizen())
    assert response.status_code == 400
    assert "cannot be replaced by an e-licence" in response.json()["detail"]
    malformed = licence_application(LICENCE_ID[:-1] + "0")
    response = hall.client.post("/cases", json=malformed, headers=hall.citizen())
    assert response.status_code == 422
    assert "check character" in response.text
    assert hall.library.requests == []
