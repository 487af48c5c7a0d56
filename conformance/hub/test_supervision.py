"""IC-CHAN-004..006 and IC-SUP-*: what the hub makes of the province's reports: the case and
the evaluation as reported, member for member; the receipt naming what it took; reports in
another province's name refused; and the e-supervision lists (电子监察) holding exactly the
open cases past their promised date and the open rectifications past their deadline, of the
region asked for, and no longer once a later report closes them.

Dates are Beijing calendar dates read from the hub's own clock (its Date header), so the
verdicts do not depend on the hour of the run; a run across midnight accepts either day.
Every synthetic case and rectification this suite leaves overdue is closed again by a later
version before the test ends, so the supervision lists and gauges are left as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from zwfw.codes import build_case_number, build_credit_code
from zwfw.harness.profile import TargetProfile

from .conftest import (
    CASES,
    EVALUATIONS,
    Province,
    accepted_case_report,
    case_report,
    evaluation_report,
    finished_case_report,
    fresh_key,
    hub_today,
)


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _other_region(hub_client: httpx.Client, supervise: dict[str, str], region: str) -> str:
    """Another province registered at the hub, or a province code nobody registered."""
    answer = hub_client.get("provinces", headers=supervise)
    assert answer.status_code == 200, f"GET provinces: {answer.status_code}"
    others = [p["region_code"] for p in answer.json() if p["region_code"] != region]
    return others[0] if others else ("110000" if region != "110000" else "120000")


def _listed(
    hub_client: httpx.Client, supervise: dict[str, str], path: str, region: str, number: str
) -> list[dict[str, Any]]:
    answer = hub_client.get(path, params={"region": region}, headers=supervise)
    assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:200]}"
    rows = answer.json()
    assert all(r["region_code"] == region for r in rows), f"{path}?region={region}: {rows[:3]}"
    return [r for r in rows if r["case_number"] == number]


def _gauge_agrees(
    hub_client: httpx.Client, supervise: dict[str, str], path: str, gauge: str, region: str
) -> None:
    """The region's e-supervision gauge on /metrics counts what its list holds (when the hub
    exposes /metrics to the suite at all)."""
    metrics = hub_client.get("metrics")
    if metrics.status_code in (401, 403, 404):
        return
    assert metrics.status_code == 200, f"GET metrics: {metrics.status_code}"
    rows = hub_client.get(path, params={"region": region}, headers=supervise).json()
    values = [
        sample.value
        for family in text_string_to_metric_families(metrics.text)
        if family.name == gauge
        for sample in family.samples
        if sample.labels.get("region_code") == region
    ]
    assert sum(values) == len(rows), f"{gauge}{{region_code={region}}} {values}, {len(rows)} listed"


@pytest.mark.requirement("IC-CHAN-005", catches=("receipt-wrong",))
@pytest.mark.requirement("IC-CHAN-006", catches=("member-not-kept",))
def test_the_hub_holds_the_case_as_reported(
    province: Province,
    credential: Callable[[str], str],
    target: TargetProfile,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    today = hub_today(hub_client)
    report = accepted_case_report(target, today + timedelta(days=7))
    key = fresh_key()
    taken = province.send(CASES, report, credential("hub_report_token"), idempotency_key=key)
    assert taken.status_code == 201, taken.text[:300]
    receipt = taken.json()
    assert {k: receipt.get(k) for k in ("idempotency_key", "kind", "subject", "version")} == {
        "idempotency_key": key, "kind": "case", "subject": report["case_number"], "version": 1
    }, receipt  # fmt: skip
    assert (receipt["outcome"], receipt["duplicate"]) == ("stored", False), receipt
    assert _instant(receipt["received_at"]).tzinfo is not None, receipt  # type: ignore[union-attr]

    case = hub_client.get(f"cases/{report['case_number']}", headers=supervise)
    assert case.status_code == 200, case.text[:300]
    shown = case.json()
    for member in ("case_number", "region_code", "implementation_code", "item_name",
                   "dept_code", "dept_name", "state", "promised_days", "promise_date",
                   "result", "version"):  # fmt: skip
        assert shown[member] == report.get(member), (member, shown[member], report.get(member))
    for member in ("apply_time", "accept_time", "finish_time"):
        assert _instant(shown[member]) == _instant(report.get(member)), (member, shown[member])

    def steps(case: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(s["seq"], s["nodetype"], s["noderesult"], _instant(s["time"]))
                for s in case["steps"]]  # fmt: skip

    assert steps(shown) == steps(report), shown["steps"]
    assert shown["licence_materials"] == 1, shown
    # Due in a week: open and not late, so 0 days overdue.
    assert shown["overdue_days"] == 0, shown

    rows = hub_client.get(f"cases/{report['case_number']}/reports", headers=supervise).json()
    assert [(r["report_id"], r["kind"], r["sender"], r["idempotency_key"], r["version"],
             r["outcome"]) for r in rows] == [
        (receipt["report_id"], "case", target.region_code, key, 1, "stored")
    ], rows  # fmt: skip
    # Closed again, so that nothing of this run stays open at the hub.
    closed = province.send(
        CASES,
        finished_case_report(report, 2),
        credential("hub_report_token"),
        idempotency_key=fresh_key(),
    )
    assert closed.status_code == 201, closed.text[:300]


# The province-level divisions (GB/T 2260), for implementing bodies on either side of a code.
PROVINCES = ("110000", "120000", "130000", "140000", "150000", "210000", "220000", "230000",
             "310000", "320000", "330000", "340000", "350000", "360000", "370000", "410000",
             "420000", "430000", "440000", "450000", "460000", "500000", "510000", "520000",
             "530000", "540000", "610000", "620000", "630000", "640000", "650000")  # fmt: skip


def _other_regions(hub_client: httpx.Client, supervise: dict[str, str], region: str) -> list[str]:
    """Regions other than ``region`` to filter by: a registered one, and one below and one
    above it, so that a filter comparing codes other than by equality shows."""
    return sorted(
        {_other_region(hub_client, supervise, region)}
        | {_province_beside(region, side) for side in ("below", "above")}
    )


def _province_beside(region: str, side: str) -> str:
    """A province code below or above ``region`` (the farthest one on the other side when
    there is none on this one): a check that compares codes must hold on both sides."""
    below = [code for code in PROVINCES if code < region]
    above = [code for code in PROVINCES if code > region]
    if side == "below":
        return below[-1] if below else above[-1]
    return above[0] if above else below[0]


@pytest.mark.requirement("IC-CHAN-004", catches=("foreign-region-report",))
@pytest.mark.parametrize("claim", ["region", "implementing-body-below", "implementing-body-above"])
def test_a_report_for_another_province_is_refused(
    province: Province,
    credential: Callable[[str], str],
    target: TargetProfile,
    hub_client: httpx.Client,
    supervise: dict[str, str],
    claim: str,
) -> None:
    # Signed by this province, with its own token, about another province's business.
    report = case_report(target)
    if claim == "region":
        report["region_code"] = _other_region(hub_client, supervise, target.region_code)
    else:
        other = _province_beside(target.region_code, claim.rsplit("-", 1)[1])
        code = report["implementation_code"]
        credit = build_credit_code(code[:2] + other[:2] + "0100" + code[8:17])
        foreign = f"{credit}{code[18:]}"
        number = str(build_case_number(foreign, datetime.now(UTC).date(), 9999))
        report |= {"implementation_code": foreign, "case_number": number,
                   "dept_code": str(credit)}  # fmt: skip
    response = province.send(
        CASES, report, credential("hub_report_token"), idempotency_key=fresh_key()
    )
    assert response.status_code == 403, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json().get("status") == 403, response.json()
    held = hub_client.get(f"cases/{report['case_number']}", headers=supervise)
    assert held.status_code == 404, held.text[:300]


@pytest.mark.requirement(
    "IC-SUP-001",
    catches=("overdue-missing", "due-today-listed", "overdue-days-wrong", "region-filter-ignored",
             "finished-still-listed", "gauge-disagrees"),
)  # fmt: skip
def test_overdue_cases_are_exactly_the_open_cases_past_their_promised_date(
    province: Province,
    credential: Callable[[str], str],
    target: TargetProfile,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    token = credential("hub_report_token")
    others = _other_regions(hub_client, supervise, target.region_code)
    before = hub_today(hub_client)
    late = accepted_case_report(target, before - timedelta(days=3))
    due = accepted_case_report(target, before)
    for report in (late, due):
        taken = province.send(CASES, report, token, idempotency_key=fresh_key())
        assert taken.status_code == 201, taken.text[:300]
    try:
        listed = _listed(
            hub_client, supervise, "supervision/overdue-cases", target.region_code,
            late["case_number"],
        )  # fmt: skip
        detail = hub_client.get(f"cases/{late['case_number']}", headers=supervise).json()
        after = hub_today(hub_client)
        days = {(d - date.fromisoformat(late["promise_date"])).days for d in (before, after)}
        assert len(listed) == 1, f"case {late['case_number']}, 3 days late, is not listed"
        assert listed[0]["overdue_days"] in days, listed[0]
        assert detail["overdue_days"] == listed[0]["overdue_days"], (detail, listed[0])
        assert listed[0]["version"] == late["version"], listed[0]
        if before == after:  # due today is not late yet (and is from midnight on)
            assert not _listed(
                hub_client, supervise, "supervision/overdue-cases", target.region_code,
                due["case_number"],
            ), f"case {due['case_number']}, due today, is listed as overdue"  # fmt: skip
        for other in others:
            assert not _listed(
                hub_client, supervise, "supervision/overdue-cases", other, late["case_number"]
            ), f"overdue-cases?region={other} lists a case of {target.region_code}"
        _gauge_agrees(
            hub_client, supervise, "supervision/overdue-cases", "zwfw_hub_overdue_cases",
            target.region_code,
        )  # fmt: skip
    finally:
        for report in (late, due):
            closed = province.send(
                CASES, finished_case_report(report, 2), token, idempotency_key=fresh_key()
            )
            assert closed.status_code == 201, closed.text[:300]
    # Finished since: no longer overdue, in the list or in the case.
    assert not _listed(
        hub_client, supervise, "supervision/overdue-cases", target.region_code,
        late["case_number"],
    ), "a finished case is still listed as overdue"  # fmt: skip
    detail = hub_client.get(f"cases/{late['case_number']}", headers=supervise).json()
    assert (detail["state"], detail["overdue_days"]) == ("concluded", None), detail
    _gauge_agrees(
        hub_client, supervise, "supervision/overdue-cases", "zwfw_hub_overdue_cases",
        target.region_code,
    )  # fmt: skip


@pytest.mark.requirement("IC-CHAN-006", catches=("late-evaluation-overwrites",))
@pytest.mark.requirement(
    "IC-SUP-002",
    catches=("rectification-missing", "due-today-listed", "region-filter-ignored",
             "closed-still-listed", "evaluation-not-kept", "gauge-disagrees", "not-bad-listed"),
)  # fmt: skip
def test_overdue_rectifications_are_exactly_the_open_ones_past_their_deadline(
    province: Province,
    credential: Callable[[str], str],
    target: TargetProfile,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    token = credential("hub_report_token")
    others = _other_regions(hub_client, supervise, target.region_code)
    path = "supervision/overdue-rectifications"
    before = hub_today(hub_client)
    late_case, due_case = case_report(target)["case_number"], case_report(target)["case_number"]
    late = evaluation_report(target, late_case, before - timedelta(days=2))
    due = evaluation_report(target, due_case, before)
    for report in (late, due):
        taken = province.send(EVALUATIONS, report, token, idempotency_key=fresh_key())
        assert taken.status_code == 201, taken.text[:300]
        receipt = taken.json()
        assert (receipt["kind"], receipt["subject"]) == ("evaluation", report["case_number"])
    # 基本满意 (3) is no bad evaluation: a rectification its report carries, past its deadline,
    # is not supervised (a hub may also refuse such a report).
    fair_case = case_report(target)["case_number"]
    fair = evaluation_report(target, fair_case, before - timedelta(days=2), level=3)
    fair_taken = province.send(EVALUATIONS, fair, token, idempotency_key=fresh_key())
    assert fair_taken.status_code in (201, 422), fair_taken.text[:300]
    reported = [late, due] + ([fair] if fair_taken.status_code == 201 else [])
    closed_at = datetime.now(UTC).replace(microsecond=0)
    closing = {"state": "closed", "deadline": late["rectification"]["deadline"],
               "response": "已督促办结并回访", "closed_at": closed_at.isoformat()}  # fmt: skip
    try:
        shown = hub_client.get(f"evaluations/{late_case}", headers=supervise)
        assert shown.status_code == 200, shown.text[:300]
        held = shown.json()
        assert {k: held[k] for k in ("region_code", "implementation_code", "dept_code", "level",
                                     "followed_up", "rectification_state",
                                     "rectification_deadline", "version")} == {
            "region_code": target.region_code, "implementation_code": late["implementation_code"],
            "dept_code": late["dept_code"], "level": 1, "followed_up": True,
            "rectification_state": "open",
            "rectification_deadline": late["rectification"]["deadline"], "version": 1,
        }, held  # fmt: skip
        assert _instant(held["rated_at"]) == _instant(late["time"]), held
        listed = _listed(hub_client, supervise, path, target.region_code, late_case)
        assert len(listed) == 1, f"the rectification of {late_case}, 2 days late, is not listed"
        assert listed[0] == held, (listed[0], held)
        if before == hub_today(hub_client):
            assert not _listed(hub_client, supervise, path, target.region_code, due_case), (
                f"the rectification of {due_case}, due today, is listed as overdue"
            )
        assert not _listed(hub_client, supervise, path, target.region_code, fair_case), (
            f"the evaluation of {fair_case}, rated 3 (基本满意), is listed as a bad one overdue"
        )
        for other in others:
            assert not _listed(hub_client, supervise, path, other, late_case), (
                f"{path}?region={other} lists a rectification of {target.region_code}"
            )
        _gauge_agrees(
            hub_client, supervise, path, "zwfw_hub_overdue_rectifications", target.region_code
        )
    finally:
        for report in reported:
            closed = province.send(
                EVALUATIONS,
                report | {"version": 2, "rectification": closing},
                token,
                idempotency_key=fresh_key(),
            )
            assert closed.status_code == 201, closed.text[:300]
    assert not _listed(hub_client, supervise, path, target.region_code, late_case), (
        "a closed rectification is still listed as overdue"
    )
    _gauge_agrees(
        hub_client, supervise, path, "zwfw_hub_overdue_rectifications", target.region_code
    )
    # The open version 1 arriving late (a retry) takes nothing back.
    retried = province.send(EVALUATIONS, late, token, idempotency_key=fresh_key())
    assert retried.status_code in (200, 201), retried.text[:300]
    assert (retried.json()["version"], retried.json()["outcome"]) == (1, "superseded")
    held = hub_client.get(f"evaluations/{late_case}", headers=supervise).json()
    assert (held["version"], held["rectification_state"], held["rectification_response"]) == (
        2, "closed", closing["response"]
    ), held  # fmt: skip
    assert _instant(held["rectification_closed_at"]) == closed_at, held


def _guide(name: str) -> dict[str, Any]:
    """A complete 办事指南 of the fields the hub aggregates (STANDARDS.md)."""
    return {
        "accept_condition": "互联互通测试", "by_law": ["《互联互通测试办法》第一条"],
        "anticipate_day": 20, "promise_day": 5, "dept_code": "", "dept_name": "互联互通测试部门",
        "is_fee": False, "handle_flow": ["申请", "受理", "办结"], "handle_type": ["online"],
        "link_way": "12345", "supervise_way": "12345 热线", "project_type": 2,
        "server_type": ["person"], "transact_addr": "政务服务中心", "transact_time": "工作日",
        "materials": [{"name": name}],
    }  # fmt: skip


@pytest.mark.requirement(
    "IC-SUP-003",
    catches=("bad-item-aggregated", "verdict-unexplained", "region-filter-ignored",
             "cancelled-still-listed", "late-version-republished"),
)  # fmt: skip
def test_the_aggregated_catalog_takes_only_checked_items_of_the_province(
    province: Province,
    credential: Callable[[str], str],
    target: TargetProfile,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    token = credential("hub_report_token")
    other = _other_region(hub_client, supervise, target.region_code)
    declared = target.declared.implementation_codes[0]
    # A handling item of the province's first declared item no hall lists (suffix 98).
    code = f"{declared}98"
    guide = _guide("申请表") | {"dept_code": declared[:18]}
    # Versions only grow: a hub that holds this item from an earlier run (cancelled at a
    # higher version) takes this run's only when its versions are higher still.
    version = int(time.time())
    item = {"code": code, "name": "互联互通测试办理项", "version": version,
            "state": "published", "guide": guide}  # fmt: skip
    credit = build_credit_code(declared[:2] + other[:2] + "0100" + declared[8:17])
    rejected = [
        # The credit code's check character wrong.
        {**item, "code": declared[:17] + ("0" if declared[17] != "0" else "1") + code[18:]},
        {**item, "code": f"{credit}{declared[18:]}98"},  # another province's body
        {**item, "guide": {**guide, "by_law": [], "transact_addr": ""}},  # incomplete guide
        {**item, "name": " ", "version": 0, "state": "draft"},
        {"name": "无编码事项"},
    ]
    report = {"report": "catalog", "version": 1, "region_code": target.region_code,
              "items": [item, *rejected]}  # fmt: skip
    taken = province.send("/reports/catalog", report, token, idempotency_key=fresh_key())
    assert taken.status_code == 201, taken.text[:300]
    receipt = taken.json()
    assert (receipt["accepted"], receipt["rejected"]) == (1, len(rejected)), receipt
    verdicts = receipt["items"]
    assert [v["accepted"] for v in verdicts] == [True] + [False] * len(rejected), verdicts
    assert verdicts[0] == {"code": code, "accepted": True, "reasons": []}, verdicts[0]
    assert all(v["reasons"] for v in verdicts[1:]), verdicts
    assert verdicts[-1]["code"] is None, verdicts[-1]
    # Each refusal names what is wrong with the item.
    assert "transact_addr" in " ".join(verdicts[3]["reasons"]), verdicts[3]
    assert "by_law" in " ".join(verdicts[3]["reasons"]), verdicts[3]
    assert len(verdicts[4]["reasons"]) == 3, verdicts[4]

    def listed(region: str) -> list[dict[str, Any]]:
        answer = hub_client.get(
            "catalog/items", params={"region": region, "basic_code": declared[19:31]}
        )
        assert answer.status_code == 200, f"GET catalog/items: {answer.status_code}"
        rows = answer.json()
        assert all((r["region_code"], r["basic_code"]) == (region, declared[19:31])
                   for r in rows), rows[:3]  # fmt: skip
        return [r for r in rows if r["code"] in {i.get("code") for i in report["items"]}]

    try:
        shown = listed(target.region_code)
        assert [
            (r["code"], r["implementation_code"], r["name"], r["version"], r["state"])
            for r in shown
        ] == [(code, declared, item["name"], version, "published")], shown
        assert shown[0]["guide"] == guide, shown[0]
        for elsewhere in _other_regions(hub_client, supervise, target.region_code):
            assert listed(elsewhere) == [], (
                f"catalog/items?region={elsewhere} lists {target.region_code}'s"
            )
    finally:
        cancelled = {**item, "version": version + 1, "state": "cancelled"}
        cancelled = {**report, "version": 2, "items": [cancelled]}
        assert (
            province.send(
                "/reports/catalog", cancelled, token, idempotency_key=fresh_key()
            ).status_code
            == 201
        )
    assert listed(target.region_code) == [], "a cancelled item is still listed"
    # The published version arriving late publishes nothing again.
    late = province.send(
        "/reports/catalog", {**report, "items": [item]}, token, idempotency_key=fresh_key()
    )
    assert late.status_code == 201, late.text[:300]
    assert listed(target.region_code) == [], "a late older version published the item again"
