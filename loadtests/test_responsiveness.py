"""Responsiveness under load (RESP-*): the figures of the session's Locust run against the
targets of charts/monitoring/slo-profile.yaml. A figure the generator cannot stand behind
(saturated, or the workload's rate not offered) makes the check inconclusive, never a pass.
"""

from __future__ import annotations

from typing import Any

import pytest

from zwfw.harness.loadrun import (
    Judgement,
    judge_error_rate,
    judge_latency,
    judge_no_5xx,
    judge_throughput,
)
from zwfw.harness.results import Inconclusive
from zwfw.harness.workload import Workload

# Requirement: (journeys that measure it, steps that must be measured, steps judged when
# they occur). The IdP may remember consent, and a rating needs a case staff concluded first.
LATENCY: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "RESP-LAT-001": (("browse", "citizen"), ("discovery",), ()),
    "RESP-LAT-002": (("browse", "citizen"), ("catalog", "guide"), ()),
    "RESP-LAT-003": (("citizen",), ("signin.page", "signin.login", "signin.token"),
                     ("signin.consent",)),
    "RESP-LAT-004": (("citizen",), ("case.submit", "case.track"), ("case.rate",)),
    "RESP-LAT-005": (("staff",), ("staff.queue",), ("staff.accept", "staff.review",
                                                    "staff.conclude")),
    "RESP-LAT-006": (("system",), ("system.token", "system.licence", "system.seal"), ()),
    "RESP-LAT-007": (("system",), ("system.hub-report",), ()),
}  # fmt: skip


def settle(judgement: Judgement) -> None:
    if judgement.status == "inconclusive":
        raise Inconclusive(judgement.reason or "inconclusive")
    if judgement.status == "fail":
        pytest.fail(judgement.reason or "failed", pytrace=False)


@pytest.mark.parametrize(
    "requirement",
    [
        pytest.param(
            rid, marks=pytest.mark.requirement(rid, catches=("p95-over", "p99-tail")), id=rid
        )
        for rid in LATENCY
    ],
)
def test_step_latency_within_the_slo(
    requirement: str, workload: Workload, load_figures: dict[str, Any]
) -> None:
    journeys, required, optional = LATENCY[requirement]
    if not any(workload.mix.get(journey) for journey in journeys):  # type: ignore[call-overload]
        pytest.skip(f"the workload profile {workload.name} runs no {' or '.join(journeys)} journey")
    measured = [step for step in optional if load_figures["steps"].get(step, {}).get("count")]
    settle(judge_latency(load_figures, (*required, *measured)))


@pytest.mark.requirement("RESP-ERR-001", catches=("errors-over-budget",))
def test_failed_requests_within_the_error_budget(load_figures: dict[str, Any]) -> None:
    settle(judge_error_rate(load_figures))


@pytest.mark.requirement("RESP-ERR-002", catches=("server-error-under-load",))
def test_no_server_error_under_load(load_figures: dict[str, Any]) -> None:
    settle(judge_no_5xx(load_figures))


@pytest.mark.requirement("RESP-THR-001", catches=("rate-not-sustained",))
def test_the_workload_rate_is_sustained(load_figures: dict[str, Any]) -> None:
    settle(judge_throughput(load_figures))
