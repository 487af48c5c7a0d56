"""Cases: application, case numbers, steps through HTTP, deadlines, visibility, masking."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from zwfw.codes import parse_case_number
from zwfw.codes.workdays import WorkdayCalendar
from zwfw.services.hall.models import field_protector
from zwfw.services.kit import configure_logging, outbox
from zwfw.services.kit.audit import audit_log

from .support import (
    EDITOR,
    IMPLEMENTATION,
    PHONE,
    RESIDENT_ID,
    Hall,
    application,
    guide,
    running_hall,
    upload,
)


def beijing_today() -> datetime:
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai"))


def test_case_runs_through_legal_steps(any_hall: Hall) -> None:
    hall = any_hall
    case = hall.apply()
    number = case["case_number"]
    parsed = parse_case_number(number)
    assert str(parsed.implementation_code) == IMPLEMENTATION
    assert parsed.day == beijing_today().date()
    assert parsed.sequence == 1
    assert case["state"] == "submitted"
    assert case["deadline"] is None
    assert case["missing_materials"] == ["营业执照"]

    accepted = hall.step(number, 1, 4)
    assert accepted.status_code == 201
    deadline = accepted.json()["deadline"]
    expected = WorkdayCalendar().add(beijing_today().date(), 5)
    assert deadline == {
        "promised_days": 5,
        "unit": "working_day",
        "date": expected.date.isoformat(),
        "provisional": expected.provisional,
        "provisional_years": list(expected.provisional_years),
    }
    assert hall.step(number, 2, 1).status_code == 201
    done = hall.step(number, 3, 1).json()
    assert (done["state"], done["result"]) == ("finished", "approved")
    assert [(s["nodetype"], s["noderesult"]) for s in done["steps"]] == [(1, 4), (2, 1), (3, 1)]
    assert done["steps"][0]["handler_name"] == "李四"
    assert done["finished_at"] is not None

    # Everything that happened is queued for the hub, one report per revision.
    with hall.db() as db:
        queued = [
            m for m in outbox.list_messages(db, protector=field_protector()) if m.kind == "case"
        ]
    assert [m.payload()["version"] for m in queued] == [1, 2, 3, 4]
    assert queued[-1].payload()["state"] == "finished"
    assert queued[-1].idempotency_key == f"340000:case:{number}:v4"
    assert queued[-1].path == "/reports/cases"


def test_illegal_steps_are_refused_naming_the_rule(hall: Hall) -> None:
    number = hall.apply()["case_number"]
    refused = hall.step(number, 3, 1)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["rule"] == "step-start-first"
    assert "nodetype 1" in problem["rule_text"]
    assert problem["state"] == "submitted"
    assert hall.step(number, 3, 7).json()["rule"] == "step-result-allowed"
    hall.finish(number)
    assert hall.step(number, 2, 1).json()["rule"] == "step-final"
    case = hall.client.get(f"/cases/{number}", headers=hall.citizen()).json()
    assert len(case["steps"]) == 3
    with hall.db() as db:
        refusals = db.execute(
            select(audit_log.c.detail).where(audit_log.c.result == "refused")
        ).all()
    assert [r.detail["rule"] for r in refusals] == [
        "step-start-first",
        "step-result-allowed",
        "step-final",
    ]


def test_steps_need_the_handling_scope(hall: Hall) -> None:
    number = hall.apply()["case_number"]
    response = hall.client.post(
        f"/cases/{number}/steps",
        json={"nodetype": 1, "noderesult": 4, "handler_name": "x"},
        headers=hall.citizen(),
    )
    assert response.status_code == 403
    assert hall.client.get(f"/cases/{number}", headers=hall.citizen()).json()["state"] == (
        "submitted"
    )


def test_applicants_see_only_their_own_cases(hall: Hall) -> None:
    mine = hall.apply("citizen-1")["case_number"]
    theirs = hall.apply("citizen-2")["case_number"]
    assert parse_case_number(theirs).sequence == 2
    assert hall.client.get(f"/cases/{theirs}", headers=hall.citizen("citizen-1")).status_code == (
        404
    )
    own = hall.client.get("/cases", headers=hall.citizen("citizen-1")).json()
    assert [c["case_number"] for c in own["cases"]] == [mine]
    everything = hall.client.get("/cases", headers=hall.staff()).json()
    assert everything["total"] == 2
    assert hall.client.get("/cases").status_code == 401


def test_personal_data_is_masked_in_responses_and_logs(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    try:
        with running_hall(f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path) as hall:
            hall.publish()
            case = hall.apply()
            bad = application()
            bad["applicant"]["certificate_number"] = RESIDENT_ID[:-1] + "0"
            refused = hall.client.post("/cases", json=bad, headers=hall.citizen())
    finally:
        logging.getLogger().removeHandler(handler)
    assert case["applicant"]["certificate_number"] == RESIDENT_ID[:3] + "*" * 11 + RESIDENT_ID[-4:]
    assert case["applicant"]["phone"] == "138****5678"
    assert refused.status_code == 422
    assert RESIDENT_ID[:-1] not in refused.text
    for text in (json.dumps(case), stream.getvalue(), refused.text):
        assert RESIDENT_ID not in text
        assert PHONE not in text


def test_application_is_checked_against_the_guide(hall: Hall) -> None:
    headers = hall.citizen()
    extra = application(materials=[upload("户口本")])
    response = hall.client.post("/cases", json=extra, headers=headers)
    assert response.status_code == 400
    assert "not a material of this item's guide" in response.json()["detail"]
    legal = hall.client.post("/cases", json=application(), headers=hall.citizen(user_type="x"))
    assert legal.status_code == 403
    staff_token = hall.client.post("/cases", json=application(), headers=hall.staff())
    assert staff_token.status_code == 403
    wrong_cert = application()
    wrong_cert["applicant"] = {
        "name": "某公司",
        "certificate_type": "001",
        "certificate_number": "113401000030547255",
    }
    assert hall.client.post("/cases", json=wrong_cert, headers=headers).status_code == 400
    company = hall.client.post(
        "/cases", json=wrong_cert, headers=hall.citizen("company-1", user_type="legal_person")
    )
    assert company.status_code == 201
    assert company.json()["applicant"]["user_type"] == "legal_person"
    not_base64 = application(materials=[{**upload(), "content_base64": "***"}])
    assert hall.client.post("/cases", json=not_base64, headers=headers).status_code == 400
    licence_upload = application(materials=[{**upload(), "licence_id": "x"}])
    assert hall.client.post("/cases", json=licence_upload, headers=headers).status_code == 422
    unknown = application(implementation_code=IMPLEMENTATION[:-1] + "9")
    assert hall.client.post("/cases", json=unknown, headers=headers).status_code == 404
    with hall.db() as db:
        assert outbox.counts(db)["pending"] == 1  # only the company's case


def test_correction_and_supplement(hall: Hall) -> None:
    number = hall.apply()["case_number"]
    assert hall.step(number, 1, 5).json()["state"] == "correction"
    assert hall.step(number, 1, 4).json()["rule"] == "step-correction-waits"
    other = hall.client.post(
        f"/cases/{number}/supplements",
        json={"materials": [upload("项目备案申请表", b"v2")]},
        headers=hall.citizen("citizen-2"),
    )
    assert other.status_code == 404
    supplied = hall.client.post(
        f"/cases/{number}/supplements",
        json={"materials": [upload("项目备案申请表", b"%PDF corrected")]},
        headers=hall.citizen(),
    )
    assert supplied.status_code == 200
    body = supplied.json()
    assert body["state"] == "submitted"
    assert [m["supplement"] for m in body["materials"]] == [False, True]
    again = hall.client.post(
        f"/cases/{number}/supplements",
        json={"materials": [upload("项目备案申请表", b"v3")]},
        headers=hall.citizen(),
    )
    assert again.status_code == 409
    assert again.json()["rule"] == "supplement-needs-correction"
    assert hall.step(number, 1, 4).json()["state"] == "accepted"


def test_deadline_surfaces_a_provisional_calendar(tmp_path: Path) -> None:
    last_known = max(WorkdayCalendar().years)
    with running_hall(f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path) as hall:
        hall.publish(anticipate_day=900, promise_day=800)
        number = hall.apply()["case_number"]
        deadline = hall.step(number, 1, 4).json()["deadline"]
    assert deadline["provisional"] is True
    assert deadline["provisional_years"][0] == last_known + 1


def test_natural_day_limits_and_immediate_cases(hall: Hall) -> None:
    code = IMPLEMENTATION[:-1] + "4"
    body = guide(
        implementation_code=code, project_type=1, promise_day=0, promise_day_unit="natural_day"
    )
    created = hall.client.post("/items", json=body, headers=hall.staff(*EDITOR))
    hall.client.post(f"/items/{code}/versions/1/publish", headers=hall.staff(*EDITOR))
    assert created.status_code == 201
    number = hall.apply(implementation_code=code, handling_item_code=None)["case_number"]
    done = hall.step(number, 4, 1).json()
    assert done["state"] == "finished"
    assert done["deadline"]["date"] == beijing_today().date().isoformat()
    assert done["accepted_at"] == done["finished_at"]


def test_concurrent_numbering_never_repeats(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with running_hall(f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path) as hall:
        hall.publish()
        with ThreadPoolExecutor(4) as pool:
            numbers = list(pool.map(lambda i: hall.apply(f"c{i}")["case_number"], range(12)))
    assert sorted(parse_case_number(n).sequence for n in numbers) == list(range(1, 13))
