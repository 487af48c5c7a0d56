"""Fault tolerance under load (FT-*): the figures of each scenario's run (see conftest.py).
A scenario the profile does not declare, or one whose fault could not be caused, is
inconclusive, never a pass."""

from __future__ import annotations

from typing import Any

import pytest

from zwfw.harness.faults import (
    judge_clock_skew,
    judge_database_restart,
    judge_durability,
    judge_outbox,
    judge_service_during_fault,
)
from zwfw.harness.loadrun import Judgement
from zwfw.harness.results import Inconclusive


def settle(judgement: Judgement) -> None:
    if judgement.status == "inconclusive":
        raise Inconclusive(judgement.reason or "inconclusive")
    if judgement.status == "fail":
        pytest.fail(judgement.reason or "failed", pytrace=False)


@pytest.mark.requirement("FT-REP-001", catches=("single-replica", "never-restarted"))
def test_a_killed_replica_does_not_interrupt_the_service(replica_figures: dict[str, Any]) -> None:
    settle(judge_service_during_fault(replica_figures))


@pytest.mark.requirement("FT-REP-002", catches=("lost-acknowledged-write",))
def test_no_acknowledged_write_is_lost_when_a_replica_is_killed(
    replica_figures: dict[str, Any],
) -> None:
    settle(judge_durability(replica_figures))


@pytest.mark.requirement("FT-HUB-001", catches=("hall-waits-for-hub",))
def test_the_halls_keep_serving_while_the_hub_is_unreachable(
    hub_outage_figures: dict[str, Any],
) -> None:
    settle(judge_service_during_fault(hub_outage_figures))


@pytest.mark.requirement("FT-HUB-002", catches=("outbox-disabled", "redelivered-twice"))
def test_reports_queued_during_the_hub_outage_arrive_exactly_once(
    hub_outage_figures: dict[str, Any],
) -> None:
    settle(judge_outbox(hub_outage_figures))


@pytest.mark.requirement(
    "FT-CLK-001", catches=("skew-accepted", "unclear-refusal", "skew-reports-dropped")
)
def test_a_skewed_province_is_refused_clearly_and_taken_again_once_its_clock_is_right(
    clock_skew_figures: dict[str, Any],
) -> None:
    settle(judge_clock_skew(clock_skew_figures))


@pytest.mark.requirement(
    "FT-DB-001", catches=("stale-connections", "hangs-without-database", "unclear-failure")
)
def test_the_services_reconnect_by_themselves_after_a_database_restart(
    database_restart_figures: dict[str, Any],
) -> None:
    settle(judge_database_restart(database_restart_figures))


@pytest.mark.requirement("FT-DB-002", catches=("lost-acknowledged-write", "retry-duplicated"))
def test_no_acknowledged_write_is_lost_or_duplicated_across_a_database_restart(
    database_restart_figures: dict[str, Any],
) -> None:
    settle(judge_durability(database_restart_figures))


@pytest.mark.requirement(
    "FT-DB-003", catches=("hangs-on-slow-database", "unclear-slow-failure", "workers-stuck")
)
def test_a_slow_database_makes_requests_fail_fast_and_no_worker_hang(
    slow_database_figures: dict[str, Any],
) -> None:
    settle(judge_database_restart(slow_database_figures))
