"""IC-CHAN-006: the hub keeps the newest version of a case whatever the order in which the
outbox's deliveries arrive, and its case and its list of reports agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import Province, case_report, fresh_key


@pytest.mark.requirement(
    "IC-CHAN-006",
    catches=("late-version-overwrites", "late-version-unmarked", "detail-list-disagree"),
)
def test_a_late_older_version_does_not_roll_the_case_back(
    province: Province,
    credential: Callable[[str], str],
    target: Any,
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    token = credential("hub_report_token")
    first = case_report(target)
    newer = {
        **first,
        "version": 2,
        "state": "accepted_pending",
        "item_name": "互联互通测试事项（变更）",
    }
    # Version 2 overtakes version 1 (a retry of 1 arrives after 2 was delivered).
    taken = province.send("/reports/cases", newer, token, idempotency_key=fresh_key())
    assert taken.status_code == 201, taken.text[:300]
    assert (taken.json()["version"], taken.json()["outcome"]) == (2, "stored")
    late = province.send("/reports/cases", first, token, idempotency_key=fresh_key())
    assert late.status_code in (200, 201), late.text[:300]
    assert (late.json()["version"], late.json()["outcome"]) == (1, "superseded"), late.json()

    number = first["case_number"]
    case = hub_client.get(f"cases/{number}", headers=supervise)
    assert case.status_code == 200, case.text[:300]
    shown = case.json()
    assert (shown["version"], shown["state"], shown["item_name"]) == (
        2, newer["state"], newer["item_name"]
    ), shown  # fmt: skip
    reports = hub_client.get(f"cases/{number}/reports", headers=supervise)
    assert reports.status_code == 200, reports.text[:300]
    rows = {r["report_id"]: r for r in reports.json() if r["kind"] == "case"}
    assert set(rows) == {taken.json()["report_id"], late.json()["report_id"]}, rows
    assert (
        rows[taken.json()["report_id"]]["version"],
        rows[taken.json()["report_id"]]["outcome"],
    ) == (2, "stored")
    assert (
        rows[late.json()["report_id"]]["version"],
        rows[late.json()["report_id"]]["outcome"],
    ) == (1, "superseded")
    # The case is the newest stored report of its list, nothing else.
    newest = max(r["version"] for r in rows.values() if r["outcome"] == "stored")
    assert shown["version"] == newest
