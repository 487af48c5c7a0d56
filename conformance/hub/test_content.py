"""IC-CHAN-007: the hub takes only reports whose content holds together.

Each defect is sent twice: as the first version of a case or evaluation the hub has never
seen, and as a later version of one it holds. A hub that checks only what it inserts, and not
what it updates, is caught by the second. After each refusal the case (or evaluation) and its
list of reports are as they were, and the refused report's Idempotency-Key still takes the
corrected report: a province that fixes its data retries under the same key.

Every case and evaluation this suite leaves at the hub is concluded or closed before the test
ends, so the e-supervision lists are left as they were.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from zwfw.codes import build_case_number
from zwfw.harness.profile import TargetProfile

from .conftest import (
    BEIJING,
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

Report = dict[str, Any]


def _another_item(implementation_code: str) -> str:
    """Another item of the same implementing body: the basic code's last digit changed."""
    last = int(implementation_code[-1])
    return implementation_code[:-1] + str((last + 1) % 10)


def _case_number_of_another_item(report: Report) -> Report:
    number = report["case_number"]
    day = datetime.strptime(number[31:39], "%Y%m%d").date()
    other = build_case_number(_another_item(report["implementation_code"]), day, int(number[39:]))
    return report | {"case_number": str(other)}


def _handling_item_of_another_item(report: Report) -> Report:
    return report | {"handling_item_code": _another_item(report["implementation_code"]) + "01"}


def _without_promise_date(report: Report) -> Report:
    return {k: v for k, v in report.items() if k != "promise_date"}


def _steps(report: Report, *steps: tuple[int, int, int]) -> Report:
    at = report["accept_time"]
    return report | {
        "steps": [{"seq": s, "nodetype": t, "noderesult": r, "time": at} for s, t, r in steps]
    }


def _material(report: Report, gettype: int) -> Report:
    return report | {"materials": [*report["materials"], {"name": "其他材料", "gettype": gettype}]}


def _shifted(moment: str, **delta: float) -> str:
    return (datetime.fromisoformat(moment) + timedelta(**delta)).isoformat()


def _implementation_truncated(report: Report) -> Report:
    """An implementation code cut short: still the start of the case number (and of the
    handling-item code), so only a check of the code itself refuses it."""
    return report | {"implementation_code": report["implementation_code"][:-1]}


def _promised_before_acceptance(report: Report) -> Report:
    accepted = datetime.fromisoformat(report["accept_time"]).astimezone(BEIJING).date()
    return report | {"promise_date": (accepted - timedelta(days=1)).isoformat()}


# name -> (failure mode, how the defect is made from a valid accepted case)
CASE_DEFECTS: dict[str, tuple[str, Callable[[Report], Report]]] = {
    "case-number-of-another-item": ("case-codes-disagree", _case_number_of_another_item),
    "handling-item-of-another-item": ("case-codes-disagree", _handling_item_of_another_item),
    "accepted-without-promise-date": ("accepted-without-promise", _without_promise_date),
    "step-seq-repeated": ("steps-disordered", lambda r: _steps(r, (1, 1, 4), (1, 2, 1))),
    "step-seq-descending": ("steps-disordered", lambda r: _steps(r, (2, 1, 4), (1, 2, 1))),
    # A start step (1) is 受理, 补齐补正 or 特别程序, never 同意 (1).
    "step-result-not-allowed": ("step-result-illegal", lambda r: _steps(r, (1, 1, 1))),
    "step-type-unknown": ("step-result-illegal", lambda r: _steps(r, (1, 1, 4), (2, 5, 1))),
    "material-kind-unknown": ("material-kind-unknown", lambda r: _material(r, 5)),
    "implementation-code-truncated": ("codes-malformed", _implementation_truncated),
    "handling-item-code-unsuffixed": (
        "codes-malformed",
        lambda r: r | {"handling_item_code": r["implementation_code"] + "0"},
    ),
    "user-type-unknown": ("field-outside-data-set", lambda r: r | {"user_type": "2"}),
    "step-seq-zero": ("field-outside-data-set", lambda r: _steps(r, (0, 1, 4))),
    "promised-days-negative": ("field-outside-data-set", lambda r: r | {"promised_days": -1}),
    "accepted-before-applied": (
        "times-disordered",
        lambda r: r | {"accept_time": _shifted(r["apply_time"], hours=-1)},
    ),
    # Between the application and the acceptance: only the acceptance is later.
    "finished-before-accepted": (
        "times-disordered",
        lambda r: r | {"finish_time": _shifted(r["accept_time"], minutes=-1)},
    ),
    "promised-before-accepted": ("times-disordered", _promised_before_acceptance),
}


def _rectification(report: Report, **changes: Any) -> Report:
    return report | {"rectification": report["rectification"] | changes}


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


EVALUATION_DEFECTS: dict[str, tuple[str, Callable[[Report], Report]]] = {
    "level-zero": ("evaluation-level-range", lambda r: r | {"level": 0}),
    "level-six": ("evaluation-level-range", lambda r: r | {"level": 6, "rectification": None}),
    "follow-up-level-six": (
        "evaluation-level-range",
        lambda r: r | {"follow_up": r["follow_up"] | {"level": 6}},
    ),
    "bad-without-rectification": (
        "bad-without-rectification",
        lambda r: r | {"level": 2, "rectification": None},
    ),
    "closed-without-response": (
        "closed-without-response",
        lambda r: _rectification(r, state="closed", closed_at=_now()),
    ),
    "closed-without-time": (
        "closed-without-response",
        lambda r: _rectification(r, state="closed", response="已回访整改"),
    ),
    "evaluation-of-another-item": ("evaluation-of-another-item", _case_number_of_another_item),
    "implementation-code-truncated": ("codes-malformed", _implementation_truncated),
    "follow-up-before-rating": (
        "times-disordered",
        lambda r: r | {"follow_up": r["follow_up"] | {"time": _shifted(r["time"], days=-1)}},
    ),
}


def _refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 422, (
        f"the hub took {what}: HTTP {response.status_code} {response.text[:300]}"
    )
    kind = response.headers.get("content-type", "")
    assert kind.startswith("application/problem+json"), (
        f"the hub refused {what} without problem+json (Content-Type {kind!r})"
    )


def _stored_reports(
    hub_client: httpx.Client, supervise: dict[str, str], number: str
) -> list[tuple[Any, ...]]:
    rows = hub_client.get(f"cases/{number}/reports", headers=supervise)
    if rows.status_code == 404:
        return []
    assert rows.status_code == 200, f"GET cases/{number}/reports: {rows.status_code}"
    return [
        (r["kind"], r["version"], r["outcome"])
        for r in rows.json()
        if r.get("outcome") in ("stored", "superseded")
    ]


def _nothing_of(
    hub_client: httpx.Client, supervise: dict[str, str], number: str, detail: str, what: str
) -> None:
    shown = hub_client.get(f"{detail}/{number}", headers=supervise)
    assert shown.status_code == 404, f"after refusing {what} the hub shows {detail}/{number}"
    assert _stored_reports(hub_client, supervise, number) == [], (
        f"after refusing {what} the hub lists a report stored for {number}"
    )


@pytest.mark.requirement(
    "IC-CHAN-007",
    catches=("case-codes-disagree", "accepted-without-promise", "steps-disordered",
             "step-result-illegal", "material-kind-unknown", "codes-malformed",
             "field-outside-data-set", "times-disordered", "checked-only-first-version",
             "key-spent-by-refusal", "refusal-not-problem"),
)  # fmt: skip
@pytest.mark.parametrize("defect", list(CASE_DEFECTS))
def test_an_inconsistent_case_report_is_refused_first_and_later(
    province: Province,
    credential: Callable[[str], str],
    target: TargetProfile,
    hub_client: httpx.Client,
    supervise: dict[str, str],
    defect: str,
) -> None:
    token = credential("hub_report_token")
    mode, make = CASE_DEFECTS[defect]
    report = accepted_case_report(target, hub_today(hub_client) + timedelta(days=7))
    number = report["case_number"]
    first = make(copy.deepcopy(report))
    key = fresh_key()
    what = f"a new case with {defect} ({mode})"
    _refused(province.send(CASES, first, token, idempotency_key=key), what)
    for shown in {number, first["case_number"]}:
        _nothing_of(hub_client, supervise, shown, "cases", what)
    # The corrected report, under the key of the refused one.
    taken = province.send(CASES, report, token, idempotency_key=key)
    assert taken.status_code == 201, (
        f"after refusing a report, its Idempotency-Key did not take the corrected one: "
        f"HTTP {taken.status_code} {taken.text[:300]}"
    )
    assert taken.json().get("duplicate") is False, taken.json()
    try:
        later = make(copy.deepcopy(report) | {"version": 2})
        _refused(
            province.send(CASES, later, token, idempotency_key=fresh_key()),
            f"version 2 of a case with {defect} ({mode})",
        )
        shown = hub_client.get(f"cases/{number}", headers=supervise)
        assert shown.status_code == 200, shown.text[:300]
        case = shown.json()
        kept = {
            "version": case.get("version"),
            "promise_date": case.get("promise_date"),
            "steps": [(s["seq"], s["nodetype"], s["noderesult"]) for s in case.get("steps", [])],
        }
        assert kept == {
            "version": 1,
            "promise_date": report["promise_date"],
            "steps": [(s["seq"], s["nodetype"], s["noderesult"]) for s in report["steps"]],
        }, f"the refused version 2 ({defect}) changed the case at the hub: {kept}"
        assert _stored_reports(hub_client, supervise, number) == [("case", 1, "stored")], (
            f"the refused version 2 ({defect}) is listed among the case's reports"
        )
        if later["case_number"] != number:
            _nothing_of(
                hub_client, supervise, later["case_number"], "cases", f"version 2 with {defect}"
            )
    finally:
        closed = province.send(
            CASES, finished_case_report(report, 3), token, idempotency_key=fresh_key()
        )
        assert closed.status_code == 201, closed.text[:300]


@pytest.mark.requirement(
    "IC-CHAN-007",
    catches=("evaluation-level-range", "bad-without-rectification", "closed-without-response",
             "evaluation-of-another-item", "codes-malformed", "times-disordered",
             "checked-only-first-version", "key-spent-by-refusal", "refusal-not-problem"),
)  # fmt: skip
@pytest.mark.parametrize("defect", list(EVALUATION_DEFECTS))
def test_an_inconsistent_evaluation_report_is_refused_first_and_later(
    province: Province,
    credential: Callable[[str], str],
    target: TargetProfile,
    hub_client: httpx.Client,
    supervise: dict[str, str],
    defect: str,
) -> None:
    token = credential("hub_report_token")
    mode, make = EVALUATION_DEFECTS[defect]
    # A bad evaluation with an open rectification due in a week: not overdue meanwhile.
    number = case_report(target)["case_number"]
    report = evaluation_report(target, number, hub_today(hub_client) + timedelta(days=7))
    first = make(copy.deepcopy(report))
    key = fresh_key()
    _refused(
        province.send(EVALUATIONS, first, token, idempotency_key=key),
        f"a new evaluation with {defect} ({mode})",
    )
    for shown in {number, first["case_number"]}:
        _nothing_of(hub_client, supervise, shown, "evaluations", f"an evaluation with {defect}")
    taken = province.send(EVALUATIONS, report, token, idempotency_key=key)
    assert taken.status_code == 201, (
        f"after refusing a report, its Idempotency-Key did not take the corrected one: "
        f"HTTP {taken.status_code} {taken.text[:300]}"
    )
    try:
        later = make(copy.deepcopy(report) | {"version": 2})
        _refused(
            province.send(EVALUATIONS, later, token, idempotency_key=fresh_key()),
            f"version 2 of an evaluation with {defect} ({mode})",
        )
        shown = hub_client.get(f"evaluations/{number}", headers=supervise)
        assert shown.status_code == 200, shown.text[:300]
        evaluation = shown.json()
        kept = (evaluation.get("version"), evaluation.get("level"))
        assert kept == (1, 1), (
            f"the refused version 2 ({defect}) changed the evaluation at the hub: "
            f"version and level {kept}"
        )
        if later["case_number"] != number:
            _nothing_of(
                hub_client, supervise, later["case_number"], "evaluations", f"version 2, {defect}"
            )
    finally:
        closing = {
            "state": "closed",
            "deadline": report["rectification"]["deadline"],
            "response": "已回访整改",
            "closed_at": _now(),
        }
        closed = province.send(
            EVALUATIONS,
            report | {"version": 3, "rectification": closing},
            token,
            idempotency_key=fresh_key(),
        )
        assert closed.status_code == 201, closed.text[:300]


# Every step result the data set allows, in cases as a hall makes them: accepted and handled
# to an approval or a refusal, and decided in one step (start = end) with each of its results.
ACCEPTED_ROUTES: dict[str, tuple[tuple[int, int], ...]] = {
    "accepted-supplemented-approved": ((1, 4), (2, 5), (2, 6), (2, 7), (2, 1), (3, 1)),
    "supplemented-refused": ((1, 5), (2, 0), (3, 0)),
    "special-procedure-approved": ((1, 6), (2, 1), (3, 1)),
    "decided-at-once-approved": ((4, 1),),
    "decided-at-once-accepted": ((4, 4),),
}
UNACCEPTED_ROUTES: dict[str, tuple[tuple[int, int], ...]] = {
    "decided-at-once-not-accepted": ((4, 2),),
    "decided-at-once-refused-acceptance": ((4, 3),),
}


@pytest.mark.requirement("IC-CHAN-007", catches=("legal-report-refused",))
@pytest.mark.parametrize("route", [*ACCEPTED_ROUTES, *UNACCEPTED_ROUTES])
def test_every_step_result_the_data_set_allows_is_taken(
    province: Province,
    credential: Callable[[str], str],
    target: TargetProfile,
    hub_client: httpx.Client,
    supervise: dict[str, str],
    route: str,
) -> None:
    # The other side of the refusals: a hub that refuses what the data set allows (an end
    # step 不同意, a refusal of acceptance) loses the reports of real cases.
    if route in ACCEPTED_ROUTES:
        report = accepted_case_report(target, hub_today(hub_client) + timedelta(days=7))
        pairs, at = ACCEPTED_ROUTES[route], report["accept_time"]
    else:
        report = case_report(target)
        pairs, at = UNACCEPTED_ROUTES[route], report["apply_time"]
    finished = max(datetime.fromisoformat(_now()), datetime.fromisoformat(at)).isoformat()
    steps = [
        {"seq": seq, "nodetype": nodetype, "noderesult": result, "time": at}
        for seq, (nodetype, result) in enumerate(pairs, start=1)
    ]
    steps[-1]["time"] = finished
    approved = pairs[-1][1] in (1, 4)
    # And a material of every kind the data set lists besides paper and licence references
    # (2 electronic, 4 data sharing, 9 other), which real cases carry too.
    others = [{"name": f"材料{kind}", "gettype": kind} for kind in (2, 4, 9)]
    report |= {
        "state": "concluded" if approved else "rejected",
        "finish_time": finished,
        "result": "1" if approved else "0",
        "steps": steps,
        "materials": [*report["materials"], *others],
    }
    taken = province.send(
        CASES, report, credential("hub_report_token"), idempotency_key=fresh_key()
    )
    assert taken.status_code == 201, (
        f"the hub refused a case whose steps and materials the data set allows ({route}: "
        f"{pairs}, material kinds {[m['gettype'] for m in report['materials']]}): "
        f"HTTP {taken.status_code} {taken.text[:300]}"
    )
    shown = hub_client.get(f"cases/{report['case_number']}", headers=supervise)
    assert shown.status_code == 200, shown.text[:300]
    kept = [(s["seq"], s["nodetype"], s["noderesult"]) for s in shown.json().get("steps", [])]
    assert kept == [(s["seq"], s["nodetype"], s["noderesult"]) for s in steps], (
        f"the hub keeps the steps of {route} otherwise than reported: {kept}"
    )
