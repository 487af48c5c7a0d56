"""Report intake at the hub: signed, once per idempotency key, newest version kept."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hub_support import IMPL_340, IMPL_OUTSIDE, send
from sqlalchemy import func, select

from zwfw.codes import build_case_number
from zwfw.services.hub.models import Case, Report
from zwfw.services.kit import kit_state

CASES = "/reports/cases"
EVALUATIONS = "/reports/evaluations"


def case_report(
    *, version: int = 1, promise: date | None = None, finished: bool = False, seq: int = 1
) -> dict[str, Any]:
    accepted = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    steps = [
        {
            "seq": 1,
            "nodetype": 1,
            "noderesult": 4,
            "node_name": "受理",
            "time": accepted.isoformat(),
        }
    ]
    if finished:
        steps.append(
            {
                "seq": 2,
                "nodetype": 3,
                "noderesult": 1,
                "node_name": "办结",
                "time": (accepted + timedelta(days=2)).isoformat(),
            }
        )
    return {
        "report": "case",
        "version": version,
        "region_code": "340000",
        "case_number": str(build_case_number(IMPL_340, date(2025, 3, 3), seq)),
        "implementation_code": IMPL_340,
        "handling_item_code": IMPL_340 + "01",
        "item_name": "户口迁移",
        "dept_code": IMPL_340[:18],
        "dept_name": "合肥市公安局",
        "project_type": "2",
        "user_type": "0",
        "applicant_name": "张三",
        "certificate_type": "10",
        "certificate_number": "110101199003071234",
        "channel": "web",
        "state": "finished" if finished else "accepted",
        "apply_time": accepted.isoformat(),
        "accept_time": accepted.isoformat(),
        "promised_days": 5,
        "promise_date": (promise or date(2025, 3, 10)).isoformat(),
        "finish_time": (accepted + timedelta(days=2)).isoformat() if finished else None,
        "result": "approved" if finished else None,
        "steps": steps,
        "materials": [{"name": "户口簿", "gettype": 3, "licence_id": "x"}],
    }


def evaluation_report(
    case_number: str, *, level: int = 1, version: int = 1, closed: bool = False
) -> dict[str, Any]:
    rectification = None
    if level <= 2:
        rectification = {
            "state": "closed" if closed else "open",
            "deadline": "2025-03-20",
            "working_days": 5,
            "response": "已整改，窗口增派人员" if closed else None,
            "closed_at": "2025-03-18T10:00:00+00:00" if closed else None,
        }
    return {
        "report": "evaluation",
        "version": version,
        "region_code": "340000",
        "case_number": case_number,
        "implementation_code": IMPL_340,
        "item_name": "户口迁移",
        "dept_code": IMPL_340[:18],
        "dept_name": "合肥市公安局",
        "user_type": "0",
        "certificate_number": "110101199003071234",
        "level": level,
        "time": "2025-03-06T10:00:00+00:00",
        "text": "等了很久，电话13812345678没人接",
        "follow_up": None,
        "rectification": rectification,
    }


def test_a_case_report_is_stored_once(hub) -> None:
    token = hub.token(hub.a)
    report = case_report()
    first = send(hub.client, hub.a, token, CASES, report, idempotency_key="340000:case:1:v1")
    assert first.status_code == 201, first.text
    assert first.json()["outcome"] == "stored"
    assert first.json()["duplicate"] is False
    again = send(hub.client, hub.a, token, CASES, report, idempotency_key="340000:case:1:v1")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["report_id"] == first.json()["report_id"]
    with kit_state(hub.client.app).sessions() as db:
        assert db.scalar(select(func.count()).select_from(Report)) == 1
        case = db.get(Case, report["case_number"])
        assert case is not None
        assert case.version == 1
        assert case.licence_materials == 1


def test_the_hub_keeps_the_newest_version(hub) -> None:
    token = hub.token(hub.a)
    newer = case_report(version=2, finished=True)
    older = case_report(version=1)
    assert (
        send(hub.client, hub.a, token, CASES, newer, idempotency_key="key-000-case-v2").status_code
        == 201
    )
    late = send(hub.client, hub.a, token, CASES, older, idempotency_key="key-000-case-v1")
    assert late.status_code == 201
    assert late.json()["outcome"] == "superseded"
    shown = hub.client.get(f"/cases/{newer['case_number']}", headers=hub.ops())
    assert shown.json()["state"] == "finished"
    assert shown.json()["version"] == 2


def test_a_reused_idempotency_key_with_other_content_is_a_conflict(hub) -> None:
    token = hub.token(hub.a)
    send(hub.client, hub.a, token, CASES, case_report(), idempotency_key="key-000-reused-1")
    other = send(
        hub.client, hub.a, token, CASES, case_report(seq=2), idempotency_key="key-000-reused-1"
    )
    assert other.status_code == 409
    assert other.json()["reason"] == "idempotency-key-reused"


def test_a_replayed_message_is_refused(hub) -> None:
    token = hub.token(hub.a)
    raw = b'{"x":1}'
    headers = hub.a.signer.headers(
        "POST", CASES, raw, recipient="hub", idempotency_key="key-000-replay-1"
    )
    headers |= {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    first = hub.client.post(CASES, content=raw, headers=headers)
    assert first.status_code == 422  # verified, then the content is refused; nonce rolled back
    body = __import__("json").dumps(case_report(), separators=(",", ":")).encode()
    headers = hub.a.signer.headers(
        "POST", CASES, body, recipient="hub", idempotency_key="key-000-rp-2"
    )
    headers |= {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert hub.client.post(CASES, content=body, headers=headers).status_code == 201
    replay = hub.client.post(CASES, content=body, headers=headers)
    assert replay.status_code == 409
    assert replay.json()["type"] == "urn:zwfw:problem:channel:replayed"


def test_an_altered_message_is_refused(hub) -> None:
    report = case_report()
    tampered = __import__("json").dumps({**report, "promise_date": "2026-01-01"}).encode()
    response = send(
        hub.client,
        hub.a,
        hub.token(hub.a),
        CASES,
        report,
        idempotency_key="key-000-alt-1",
        body=tampered,
    )
    assert response.status_code == 401
    assert response.json()["reason"] == "altered"
    assert response.headers["content-type"] == "application/problem+json"


def test_an_unsigned_report_is_refused(hub) -> None:
    response = hub.client.post(
        CASES, json=case_report(), headers={"Authorization": f"Bearer {hub.token(hub.a)}"}
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "malformed"


def test_a_province_cannot_sign_with_another_provinces_client(hub) -> None:
    response = send(
        hub.client, hub.a, hub.token(hub.b), CASES, case_report(), idempotency_key="key-000-other-1"
    )
    assert response.status_code == 403
    assert response.json()["reason"] == "sender-mismatch"


def test_a_province_cannot_report_for_another(hub) -> None:
    report = {**case_report(), "region_code": "330000"}
    response = send(
        hub.client, hub.b, hub.token(hub.b), CASES, report, idempotency_key="key-000-x-1"
    )
    assert response.status_code == 403


def test_reporting_needs_the_report_scope(hub) -> None:
    token = hub.idp.client_token(hub.a.client_id, "hub:exchange")
    response = send(hub.client, hub.a, token, CASES, case_report(), idempotency_key="key-000-s-1")
    assert response.status_code == 403
    assert "hub:report" in response.json()["detail"]


def test_a_suspended_provinces_reports_are_refused(hub) -> None:
    changed = hub.client.patch("/provinces/340000", json={"status": "suspended"}, headers=hub.ops())
    assert changed.status_code == 200
    response = send(
        hub.client, hub.a, hub.token(hub.a), CASES, case_report(), idempotency_key="key-000-su-1"
    )
    assert response.status_code == 403
    assert response.json()["reason"] == "sender-suspended"
    hub.client.patch("/provinces/340000", json={"status": "active"}, headers=hub.ops())
    again = send(
        hub.client, hub.a, hub.token(hub.a), CASES, case_report(), idempotency_key="key-000-su-2"
    )
    assert again.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"steps": [{"seq": 1, "nodetype": 3, "noderesult": 4, "time": "2025-03-03T09:00:00Z"}]},
            "steps.0",
        ),
        ({"case_number": "11340100MB0000001X3370117002011202513400001"}, "case_number"),
        ({"implementation_code": IMPL_OUTSIDE}, "(body)"),
        ({"user_type": "7"}, "user_type"),
    ],
)
def test_invalid_case_reports_are_refused_with_the_field(hub, change, field) -> None:
    report = {**case_report(), **change}
    response = send(
        hub.client, hub.a, hub.token(hub.a), CASES, report, idempotency_key="key-000-inv-1"
    )
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert "110101199003071234" not in response.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"implementation_code": IMPL_340[:-1]}, "expected 31 characters"),
        ({"handling_item_code": IMPL_340 + "0"}, "handling"),
        ({"accept_time": "2025-03-03T08:59:59+00:00"}, "accept_time is before apply_time"),
        # Without an offset a time is Beijing time: 16:30 there is 08:30 UTC, before 09:00.
        ({"accept_time": "2025-03-03T16:30:00"}, "accept_time is before apply_time"),
        (
            {"finish_time": "2025-03-03T08:00:00+00:00", "state": "finished"},
            "finish_time is before",
        ),
        # Accepted 01:00 on 4 March in Beijing (17:00 UTC on the 3rd): due on the 3rd is before.
        (
            {"accept_time": "2025-03-03T17:00:00+00:00", "promise_date": "2025-03-03"},
            "promise_date is before the day of acceptance",
        ),
    ],
)
def test_case_reports_whose_codes_or_times_do_not_hold_together_are_refused(
    hub, change, message
) -> None:
    report = {**case_report(), **change}
    response = send(
        hub.client, hub.a, hub.token(hub.a), CASES, report, idempotency_key="key-000-ord-1"
    )
    assert response.status_code == 422, response.text
    assert message in response.text
    assert hub.client.get(f"/cases/{report['case_number']}", headers=hub.ops()).status_code == 404


def test_a_case_due_on_its_beijing_day_of_acceptance_is_taken(hub) -> None:
    # Accepted 01:00 on 4 March in Beijing; due that same day (a 0-day promise).
    report = {
        **case_report(),
        "accept_time": "2025-03-03T17:00:00+00:00",
        "promise_date": "2025-03-04",
    }
    response = send(
        hub.client, hub.a, hub.token(hub.a), CASES, report, idempotency_key="key-000-ord-2"
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"implementation_code": IMPL_340[:-1]}, "expected 31 characters"),
        (
            {"follow_up": {"level": 1, "time": "2025-03-06T09:59:59+00:00"}},
            "the follow-up is before the rating",
        ),
    ],
)
def test_evaluation_reports_whose_codes_or_times_do_not_hold_together_are_refused(
    hub, change, message
) -> None:
    report = {**evaluation_report(case_report()["case_number"]), **change}
    response = send(
        hub.client, hub.a, hub.token(hub.a), EVALUATIONS, report, idempotency_key="key-000-ord-3"
    )
    assert response.status_code == 422, response.text
    assert message in response.text


def test_overdue_cases_are_listed_and_counted(hub) -> None:
    token = hub.token(hub.a)
    yesterday = date.today() - timedelta(days=2)
    overdue = case_report(promise=yesterday, seq=11)
    on_time = case_report(promise=date.today() + timedelta(days=5), seq=12)
    done_late = case_report(promise=yesterday, seq=13, finished=True)
    for n, report in enumerate((overdue, on_time, done_late)):
        assert (
            send(
                hub.client, hub.a, token, CASES, report, idempotency_key=f"key-000-od-{n:04}"
            ).status_code
            == 201
        )
    listed = hub.client.get("/supervision/overdue-cases", headers=hub.ops())
    assert listed.status_code == 200
    assert [c["case_number"] for c in listed.json()] == [overdue["case_number"]]
    assert listed.json()[0]["overdue_days"] >= 1
    assert (
        hub.client.get("/supervision/overdue-cases?region=330000", headers=hub.ops()).json() == []
    )
    metrics = hub.client.get("/metrics").text
    assert 'zwfw_hub_overdue_cases{region_code="340000"} 1.0' in metrics


def test_bad_evaluations_past_their_rectification_deadline(hub) -> None:
    token = hub.token(hub.a)
    case_number = case_report()["case_number"]
    bad = evaluation_report(case_number, level=1)
    assert (
        send(hub.client, hub.a, token, EVALUATIONS, bad, idempotency_key="key-000-ev-1").status_code
        == 201
    )
    late = hub.client.get("/supervision/overdue-rectifications", headers=hub.ops()).json()
    assert [e["case_number"] for e in late] == [case_number]
    assert (
        "13812345678" not in hub.client.get(f"/evaluations/{case_number}", headers=hub.ops()).text
    )
    assert (
        'zwfw_hub_overdue_rectifications{region_code="340000"} 1.0'
        in hub.client.get("/metrics").text
    )

    closed = evaluation_report(case_number, level=1, version=2, closed=True)
    assert (
        send(
            hub.client, hub.a, token, EVALUATIONS, closed, idempotency_key="key-000-ev-2"
        ).status_code
        == 201
    )
    assert hub.client.get("/supervision/overdue-rectifications", headers=hub.ops()).json() == []
    shown = hub.client.get(f"/evaluations/{case_number}", headers=hub.ops()).json()
    assert shown["rectification_state"] == "closed"


def test_a_bad_evaluation_without_rectification_is_refused(hub) -> None:
    report = {**evaluation_report(case_report()["case_number"]), "rectification": None}
    response = send(
        hub.client, hub.a, hub.token(hub.a), EVALUATIONS, report, idempotency_key="key-000-ev-3"
    )
    assert response.status_code == 422
    assert "rectification" in response.json()["errors"][0]["message"]


def test_supervision_needs_its_scope(hub) -> None:
    token = hub.token(hub.a)
    response = hub.client.get(
        "/supervision/overdue-cases", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
