"""IC-CHAN-005: a report delivered twice is stored once, and a key is never reused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import Province, case_report, fresh_key


@pytest.mark.requirement("IC-CHAN-005", catches=("retry-stored-again",))
def test_a_retried_report_is_stored_once(
    province: Province,
    credential: Callable[[str], str],
    target: Any,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    token = credential("hub_report_token")
    report = case_report(target)
    key = fresh_key()
    first = province.send("/reports/cases", report, token, idempotency_key=key)
    assert first.status_code == 201, first.text[:300]
    # The retry is a new message (fresh nonce and time) with the same key and content.
    again = province.send("/reports/cases", report, token, idempotency_key=key)
    assert again.status_code in (200, 201), again.text[:300]
    receipt, repeated = first.json(), again.json()
    assert (receipt["duplicate"], repeated["duplicate"]) == (False, True)
    # The first receipt, member for member, except that it now says it is a duplicate.
    assert {**repeated, "duplicate": False} == receipt
    stored = hub_client.get(f"cases/{report['case_number']}", headers=supervise)
    assert stored.status_code == 200, stored.text[:300]
    assert stored.json()["version"] == 1
    reports = hub_client.get(f"cases/{report['case_number']}/reports", headers=supervise)
    assert reports.status_code == 200, reports.text[:300]
    assert [r["report_id"] for r in reports.json()] == [receipt["report_id"]], reports.json()


@pytest.mark.requirement("IC-CHAN-005", catches=("key-reused-body",))
def test_a_key_reused_for_another_report_is_refused(
    province: Province,
    credential: Callable[[str], str],
    target: Any,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    token = credential("hub_report_token")
    report = case_report(target)
    key = fresh_key()
    assert province.send("/reports/cases", report, token, idempotency_key=key).status_code == 201
    changed = {**report, "version": 2, "state": "accepted_pending"}
    reused = province.send("/reports/cases", changed, token, idempotency_key=key)
    assert reused.status_code == 409, reused.text[:300]
    assert reused.headers["content-type"].startswith("application/problem+json")
    stored = hub_client.get(f"cases/{report['case_number']}", headers=supervise)
    assert (stored.json()["version"], stored.json()["state"]) == (1, "submitted")


@pytest.mark.requirement("IC-CHAN-005", catches=("key-reused-kind",))
def test_a_key_reused_for_another_kind_of_report_is_refused(
    province: Province,
    credential: Callable[[str], str],
    target: Any,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    # Keys are the sender's, not the endpoint's: an intake that scopes them per kind of report
    # would take the evaluation below as new.
    token = credential("hub_report_token")
    report = case_report(target)
    key = fresh_key()
    assert province.send("/reports/cases", report, token, idempotency_key=key).status_code == 201
    evaluation = {
        "report": "evaluation",
        "version": 1,
        "region_code": target.region_code,
        "case_number": report["case_number"],
        "implementation_code": report["implementation_code"],
        "dept_code": report["dept_code"],
        "level": 5,
        "time": report["apply_time"],
    }
    reused = province.send("/reports/evaluations", evaluation, token, idempotency_key=key)
    assert reused.status_code == 409, reused.text[:300]
    assert reused.headers["content-type"].startswith("application/problem+json")
    taken = hub_client.get(f"evaluations/{report['case_number']}", headers=supervise)
    assert taken.status_code == 404, taken.text[:300]


@pytest.mark.requirement("IC-CHAN-005", catches=("key-missing",))
def test_a_report_without_a_key_is_refused(
    province: Province,
    credential: Callable[[str], str],
    target: Any,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    report = case_report(target)
    response = province.send("/reports/cases", report, credential("hub_report_token"))
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Idempotency-Key" in response.json()["detail"]
    stored = hub_client.get(f"cases/{report['case_number']}", headers=supervise)
    assert stored.status_code == 404, stored.text[:300]
