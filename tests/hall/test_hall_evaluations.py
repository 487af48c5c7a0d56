"""好差评: one rating per concluded case, one follow-up, rectification of 差评."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from zwfw.codes.workdays import WorkdayCalendar
from zwfw.services.hall.models import field_protector
from zwfw.services.kit import outbox

from .support import RECTIFIER, RESIDENT_ID, Hall, running_hall


def today() -> object:
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()


def finished_case(hall: Hall, sub: str = "citizen-1") -> str:
    number = hall.apply(sub)["case_number"]
    hall.finish(number)
    return number


def rate(hall: Hall, number: str, sub: str = "citizen-1", **body: object):  # noqa: ANN201
    return hall.client.post(f"/cases/{number}/evaluation", json=body, headers=hall.citizen(sub))


def test_good_rating_once(hall: Hall) -> None:
    number = finished_case(hall)
    response = rate(hall, number, level=5, dimensions={"办事效率": 5, "服务态度": 4}, text="")
    assert response.status_code == 201
    body = response.json()
    assert (body["level"], body["level_name"], body["bad"]) == (5, "非常满意", False)
    assert body["rectification"] is None
    again = rate(hall, number, level=4)
    assert again.status_code == 409
    assert "once" in again.json()["detail"]
    assert hall.client.get(f"/cases/{number}/evaluation", headers=hall.staff()).json()["level"] == 5


def test_only_the_applicant_rates_a_concluded_case(hall: Hall) -> None:
    number = hall.apply()["case_number"]
    assert rate(hall, number, level=5).status_code == 409
    hall.finish(number)
    assert rate(hall, number, "citizen-2", level=1, text="x").status_code == 404
    assert rate(hall, number, level=6).status_code == 422
    assert rate(hall, number, level=2).status_code == 422  # a 差评 says why
    assert rate(hall, number, level=3, dimensions={"效率": 9}).status_code == 422


def test_bad_rating_opens_rectification_with_a_working_day_deadline(hall: Hall) -> None:
    number = finished_case(hall)
    response = rate(hall, number, level=1, text="材料被要求重复提交")
    task = response.json()["rectification"]
    expected = WorkdayCalendar().add(today(), 5)
    assert task["state"] == "open"
    assert task["working_days"] == 5
    assert task["deadline"] == expected.date.isoformat()
    assert task["deadline_provisional"] == expected.provisional
    listing = hall.client.get("/rectifications?state=open", headers=hall.staff(*RECTIFIER))
    assert [t["case_number"] for t in listing.json()] == [number]
    assert hall.client.get("/rectifications", headers=hall.staff()).status_code == 403
    close = hall.client.post(
        f"/rectifications/{task['id']}/close",
        json={"response": "已整改：取消重复提交要求并回访"},
        headers=hall.staff(*RECTIFIER),
    )
    assert close.status_code == 200
    assert close.json()["state"] == "closed"
    twice = hall.client.post(
        f"/rectifications/{task['id']}/close",
        json={"response": "again"},
        headers=hall.staff(*RECTIFIER),
    )
    assert twice.status_code == 409
    follow = hall.client.post(
        f"/cases/{number}/evaluation/follow-up",
        json={"text": "已解决", "level": 4},
        headers=hall.citizen(),
    )
    assert follow.status_code == 200
    assert follow.json()["follow_up"]["level"] == 4
    second = hall.client.post(
        f"/cases/{number}/evaluation/follow-up", json={"text": "再评"}, headers=hall.citizen()
    )
    assert second.status_code == 409

    with hall.db() as db:
        reports = [
            m
            for m in outbox.list_messages(db, protector=field_protector())
            if m.kind == "evaluation"
        ]
    assert [m.payload()["version"] for m in reports] == [1, 2, 3]
    last = reports[-1].payload()
    assert last["case_number"] == number
    assert (last["level"], last["user_type"], last["certificate_type"]) == (1, "0", "10")
    assert last["certificate_number"] == RESIDENT_ID
    assert last["rectification"]["state"] == "closed"
    assert last["follow_up"]["text"] == "已解决"
    assert last["handler_name"] == "李四"
    assert reports[0].path == "/reports/evaluations"


def test_rectification_days_are_configurable(tmp_path: Path) -> None:
    with running_hall(
        f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path, rectification_days=15
    ) as hall:
        hall.publish()
        number = finished_case(hall)
        task = rate(hall, number, level=2, text="态度差").json()["rectification"]
    assert task["working_days"] == 15
    assert task["deadline"] == WorkdayCalendar().add(today(), 15).date.isoformat()


def test_not_accepted_case_can_be_rated(hall: Hall) -> None:
    number = hall.apply()["case_number"]
    assert hall.step(number, 4, 3).json()["state"] == "not_accepted"
    assert rate(hall, number, level=3).status_code == 201


def test_an_identifier_beyond_the_stores_range_is_refused_never_an_error(any_hall: Hall) -> None:
    """PostgreSQL refuses a task identifier past its integer column: a client's bad value,
    answered as a problem (here a 422), never a 500, whichever database the hall runs on."""
    for task in ("41646889395", "1"):
        response = any_hall.client.post(
            f"/rectifications/{task}/close",
            json={"response": "已整改"},
            headers=any_hall.staff(*RECTIFIER),
        )
        assert response.status_code in (404, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"
