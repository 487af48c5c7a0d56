"""The faults suite's pieces without a platform: the profile's `faults:` section (one-line
errors), fault commands, and the figures and verdicts of a scenario from recorded runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zwfw.harness.errors import ProfileError
from zwfw.harness.faults import (
    FaultRun,
    Scenario,
    Timeline,
    execute,
    figures,
    judge_clock_skew,
    judge_database_restart,
    judge_durability,
    judge_outbox,
    judge_service_during_fault,
    restart_figures,
    step_service,
    table_lock_fault,
)
from zwfw.harness.loadrun import CpuMeter, LocustRun
from zwfw.harness.profile import FaultCommand, Faults, load_profile
from zwfw.harness.workload import Workload

BASE = "name: P\nregion_code: '340000'\nservices: {hall: 'http://127.0.0.1:1'}\n"


def profile_with(tmp_path: Path, faults: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(BASE + faults, encoding="utf-8")
    return path


def test_the_faults_section_is_read_with_its_defaults(tmp_path: Path) -> None:
    profile = load_profile(
        profile_with(
            tmp_path,
            """
faults:
  replica:
    hall: {cause: {run: "kill -KILL 1"}, recovered: {ssh: ops@hall-2, run: "true"}}
  hub_outage:
    cause: {kubectl: [scale, deploy/hub, --replicas=0], context: sandbox}
    undo: {kubectl: [scale, deploy/hub, --replicas=1], context: sandbox}
""",
        )
    )
    faults = profile.faults
    assert faults is not None
    assert faults.success_threshold == 0.995
    assert faults.replica["hall"].cause.argv() == ["/bin/sh", "-c", "kill -KILL 1"]
    recovered = faults.replica["hall"].recovered
    assert recovered is not None
    assert recovered.argv()[:2] == ["ssh", "-o"]
    assert recovered.argv()[-2:] == ["--", "true"]
    assert faults.hub_outage is not None
    assert faults.hub_outage.cause.argv() == [
        "kubectl",
        "--context",
        "sandbox",
        "scale",
        "deploy/hub",
        "--replicas=0",
    ]
    assert faults.hub_outage.hold_seconds == 20
    # Declared faults are part of what is certified; a profile without keeps its fingerprint.
    assert profile.canonical()["faults"]["hub_outage"]["hold_seconds"] == 20
    assert "faults" not in load_profile(profile_with(tmp_path, "")).canonical()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "faults: {replica: {hall: {cause: {}}}}",
            "faults.replica.hall.cause: give either run (a shell command, with ssh for a remote "
            "host) or kubectl (its arguments)",
        ),
        ("faults: {replica: {hall: {cause: {run: x, kubectl: [get]}}}}", "give either run"),
        ("faults: {replica: {hall: {cause: {ssh: host}}}}", "give either run"),
        (
            "faults: {replica: {hall: {cause: {ssh: '-oProxyCommand=x', run: x}}}}",
            "ssh is a [user@]host, not options",
        ),
        ("faults: {replica: {gateway: {cause: {run: x}}}}", "faults.replica.gateway"),
        ("faults: {success_threshold: 1.5}", "faults.success_threshold"),
        ("faults: {hub_outage: {cause: {run: x}}}", "faults.hub_outage.undo: Field required"),
        (
            "faults: {clock_skew: {cause: {run: x}, undo: {run: y}}}",
            "faults.clock_skew.skew_seconds: Field required",
        ),
        (
            "faults: {database_restart: {cause: {run: x}, hold_seconds: 5}}",
            "faults.database_restart: hold_seconds needs undo",
        ),
        (
            "faults: {replica: {hall: {cause: {run: x}, restart: {run: y}}}}",
            "faults.replica.hall.restart: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_faults_section_is_refused_in_one_line(
    tmp_path: Path, section: str, message: str
) -> None:
    with pytest.raises(ProfileError) as raised:
        load_profile(profile_with(tmp_path, section))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_fault_command_reports_its_exit_and_last_line() -> None:
    done = execute(FaultCommand(run="echo first; echo 'gone wrong' >&2; exit 3"))
    assert (done.returncode, done.output) == (3, "gone wrong")
    slow = execute(FaultCommand(run="sleep 5", timeout_seconds=0.2))
    assert slow.returncode == -1
    assert "timed out" in slow.output


def test_steps_belong_to_their_services() -> None:
    assert [step_service(s) for s in ("catalog", "case.submit", "signin.token", "system.token",
                                      "system.licence", "system.seal", "system.hub-report")] == [
        "hall", "hall", "identity", "identity", "elicense", "eseal", "hub",
    ]  # fmt: skip


WORKLOAD = Workload.model_validate({
    "name": "w", "arrivals_per_second": 2, "ramp_seconds": 1, "duration_seconds": 20,
    "mix": {"browse": 1},
})  # fmt: skip


def recorded(failing: set[int], *, until: int = 20, writes: int = 3) -> FaultRun:
    """A run of one request per second from t=100 (the due time of the first arrival);
    the requests of the seconds in `failing` failed; the fault lasted seconds 5 to 10."""
    rows: list[list[Any]] = [["j", "browse", 100.0, 100.0, 100.2, "ok", None, None]]
    for second in range(until):
        error = "no answer: reset" if second in failing else None
        rows.append(["r", 100.0 + second + 0.1, "catalog", 12.0 + second, 0 if error else 200,
                     error])  # fmt: skip
    rows += [["w", 101.0, "case", f"N{i}", f"N{i}"] for i in range(writes)]
    run = LocustRun(WORKLOAD, Path("."), rows, CpuMeter(0), 99.0, 121.0, 0, 1, 4, "")
    timeline = Timeline(first_fault=105.0, last_recovery=110.0)
    timeline.events.append({"at": 105.0, "what": "caused: hall replica killed",
                            "command": "kill", "exit": 0})  # fmt: skip
    timeline.recovery["hall"] = 5.0
    scenario = Scenario("replica", "Replica", ("hall",), 10.0, lambda _: None)
    return FaultRun(scenario, run, timeline)


FAULTS = Faults(settle_seconds=2.0, success_threshold=0.9)


def test_the_fault_window_runs_from_the_fault_to_recovery_and_settling() -> None:
    measured = figures(recorded({6}), FAULTS)
    assert measured["window"] == {"start_seconds": 5.0, "end_seconds": 12.0}
    # Seconds 5..11 started inside the window: 7 requests, the one of second 6 failed.
    assert measured["during"]["requests"] == 7
    assert measured["during"]["failures"] == 1
    assert measured["during"]["by_service"]["hall"]["success_rate"] == round(6 / 7, 6)
    assert measured["series"]["success_pct"][6] == 0.0
    assert measured["series"]["success_pct"][7] == 100.0
    assert measured["events"][0]["at_seconds"] == 5.0
    assert measured["load_covered_window"] is True
    assert judge_service_during_fault(measured).status == "fail"
    assert judge_service_during_fault(figures(recorded(set()), FAULTS)).status == "pass"


def test_a_failure_outside_the_window_is_not_judged_but_no_recovery_is() -> None:
    assert judge_service_during_fault(figures(recorded({2, 15}), FAULTS)).status == "pass"
    never = recorded(set())
    never.timeline.recovery["hall"] = None
    never.timeline.last_recovery = None
    judged = judge_service_during_fault(figures(never, FAULTS))
    assert judged.status == "fail"
    assert judged.reason == "not recovered within 60 s: hall"


def test_load_that_ended_before_the_window_is_inconclusive() -> None:
    short = figures(recorded(set(), until=9), FAULTS)
    assert short["load_covered_window"] is False
    assert judge_service_during_fault(short).status == "inconclusive"


def test_a_fault_command_that_failed_makes_the_scenario_inconclusive() -> None:
    broken = recorded(set())
    broken.timeline.problem = "killing a hall replica failed (exit 1): kill: no such process"
    measured = figures(broken, FAULTS)
    for judge in (judge_service_during_fault, judge_durability):
        assert judge(measured).status == "inconclusive"


def durable(lost: int = 0, duplicated: int = 0, unreadable: int = 0) -> dict[str, Any]:
    return {
        "problem": None,
        "durability": {"acknowledged": 10, "found": 10 - lost - unreadable, "lost": lost,
                       "duplicated": duplicated, "unreadable": unreadable,
                       "lost_examples": [f"case N{i}" for i in range(lost)], "by_kind": {}},
    }  # fmt: skip


def test_durability_verdicts() -> None:
    assert judge_durability(durable()).status == "pass"
    lost = judge_durability(durable(lost=2))
    assert (lost.status, lost.reason) == (
        "fail",
        "2 of 10 acknowledged writes lost (e.g. case N0, case N1)",
    )
    assert judge_durability(durable(duplicated=1)).status == "fail"
    assert judge_durability(durable(unreadable=1)).status == "inconclusive"


def test_outbox_verdicts() -> None:
    delivered = {"cases": 4, "arrived_once": 4, "arrived_more_than_once": 0, "missing": 0,
                 "unreadable": 0, "seconds_to_drain": 3.0, "missing_examples": []}  # fmt: skip
    assert judge_outbox({**durable(), "outbox": delivered}).status == "pass"
    missing = {**delivered, "arrived_once": 3, "missing": 1, "missing_examples": ["N3"]}
    judged = judge_outbox({**durable(), "outbox": missing})
    assert judged.status == "fail"
    assert "1 of 4 acknowledged cases never reported" in str(judged.reason)
    twice = {**delivered, "arrived_once": 3, "arrived_more_than_once": 1}
    assert judge_outbox({**durable(), "outbox": twice}).status == "fail"


STALE = {"status": 401, "content_type": "application/problem+json",
         "type": "urn:zwfw:problem:channel:stale",
         "detail": "the message timestamp is outside the 300 s window"}  # fmt: skip
DELIVERED = {"cases": 4, "arrived_once": 4, "arrived_more_than_once": 0, "missing": 0,
             "unreadable": 0, "seconds_to_drain": 3.0, "missing_examples": []}  # fmt: skip


def skewed(probe: dict[str, Any] = STALE, *, early: int = 0,
           outbox: dict[str, Any] = DELIVERED) -> dict[str, Any]:  # fmt: skip
    examples = [f"N{i}" for i in range(early)]
    return {**durable(), "outbox": outbox, "skew": {
        "probe": probe, "skewed_cases": 3, "accepted_while_skewed": early,
        "accepted_examples": examples}}  # fmt: skip


def test_clock_skew_verdicts() -> None:
    assert judge_clock_skew(skewed()).status == "pass"
    taken = judge_clock_skew(skewed({"status": 201, "content_type": "application/json"}))
    assert (taken.status, taken.reason) == (
        "fail",
        "the hub took a message signed with the skewed clock (HTTP 201)",
    )
    unclear = judge_clock_skew(skewed({"status": 401, "content_type": "text/plain"}))
    assert unclear.status == "fail"
    assert "refused without a clear error: HTTP 401, text/plain" in str(unclear.reason)
    early = judge_clock_skew(skewed(early=1))
    assert early.status == "fail"
    assert "1 of 3 cases acknowledged while the clock was skewed were reported" in str(early.reason)
    dropped = {**DELIVERED, "arrived_once": 2, "missing": 2, "missing_examples": ["N2", "N3"]}
    judged = judge_clock_skew(skewed(outbox=dropped))
    assert judged.status == "fail"
    assert "2 of 4 acknowledged cases never reported" in str(judged.reason)
    silent = judge_clock_skew(skewed({"status": None, "error": "ConnectError: refused"}))
    assert silent.status == "inconclusive"
    none = skewed()
    none["skew"]["skewed_cases"] = 0
    assert judge_clock_skew(none).status == "inconclusive"


RESTART = Faults.model_validate({
    "settle_seconds": 3.0, "success_threshold": 0.9,
    "database_restart": {"cause": {"run": "pg_ctl restart"}, "answer_seconds": 2},
})  # fmt: skip


def restarted(answers: dict[int, tuple[int, float]], *, back: float | None = 108.0) -> FaultRun:
    """One request per second from t=100; the database restarted at 105 and every service
    was ready again at `back`; `answers` gives a second's (status, ms) instead of 200, 12 ms."""
    run = recorded(set())
    for row in run.run.records:
        if row[0] == "r":
            second = int(float(row[1]) - 100.0)
            status, took = answers.get(second, (200, 12.0))
            row[3], row[4] = took, status
            row[5] = None if status == 200 else f"HTTP {status}" if status else "no answer"
    run.timeline.observed["caused_at"] = 105.0
    if back is not None:
        run.timeline.observed["services_ready_at"] = back
    run.timeline.last_recovery = back
    run.timeline.recovery = {"database": 1.0, "services": None if back is None else 2.0}
    scenario = Scenario("database-restart", "Restart", ("hall",), 8.0, lambda _: None)
    return FaultRun(scenario, run.run, run.timeline)


def judged_restart(fault_run: FaultRun) -> tuple[dict[str, Any], Any]:
    measured = figures(fault_run, RESTART)
    measured["restart"] = restart_figures(fault_run, RESTART, 2.0)
    return measured, judge_database_restart(measured)


def test_a_database_restart_may_fail_requests_fast_with_503_while_it_lasts() -> None:
    measured, judged = judged_restart(restarted({5: (503, 30.0), 6: (503, 40.0)}))
    assert judged.status == "pass", judged.reason
    away = measured["restart"]["away"]
    # Seconds 5, 6 and 7 started while the database was away (105 to 108).
    assert (away["requests"], away["failures"], away["not_503"]) == (3, 2, 0)
    assert away["failures_by_answer"] == {"HTTP 503": 2}
    assert measured["restart"]["after"] == {"requests": 3, "failures": 0, "success_rate": 1.0,
                                            "covered": True}  # fmt: skip


def test_a_database_restart_answered_500_hanging_or_failing_afterwards_fails() -> None:
    _, internal = judged_restart(restarted({6: (500, 30.0), 7: (0, 30.0)}))
    assert internal.status == "fail"
    assert "2 requests failed otherwise than 503 while the database was away" in str(
        internal.reason)  # fmt: skip
    assert "HTTP 500 x1, no answer x1" in str(internal.reason)
    _, hung = judged_restart(restarted({6: (200, 9000.0)}))
    assert hung.status == "fail"
    assert "1 requests took longer than 2 s to be answered" in str(hung.reason)
    # Stale pooled connections: the services say ready, their requests still fail.
    _, stale = judged_restart(restarted({8: (503, 20.0), 9: (503, 20.0)}))
    assert stale.status == "fail"
    assert "after the services were ready again 2 of 3 requests failed" in str(stale.reason)
    _, never = judged_restart(restarted({}, back=None))
    assert (never.status, never.reason) == ("fail", "not recovered within 60 s: services")


def slowed(answers: dict[int, tuple[int, float]]) -> FaultRun:
    """As `restarted`, the database slow from 105 until every service was ready at 108."""
    fault_run = restarted(answers)
    scenario = Scenario("slow-database", "Slow", ("hall",), 8.0, lambda _: None)
    return FaultRun(scenario, fault_run.run, fault_run.timeline)


def test_a_slow_database_fails_fast_with_503_hangs_or_meets_nothing() -> None:
    measured, fast = judged_restart(slowed({5: (503, 1900.0), 6: (200, 1500.0)}))
    assert fast.status == "pass", fast.reason
    assert measured["restart"]["away"]["failures_by_answer"] == {"HTTP 503": 1}
    _, hung = judged_restart(slowed({5: (200, 15000.0)}))
    assert hung.status == "fail"
    assert "1 requests took longer than 2 s to be answered while the database was slow" in str(
        hung.reason)  # fmt: skip
    _, internal = judged_restart(slowed({6: (500, 1200.0)}))
    assert internal.status == "fail"
    assert "failed otherwise than 503 while the database was slow (HTTP 500 x1)" in str(
        internal.reason)  # fmt: skip
    # A slowness that no request met (nothing failed, nothing took a second) proves nothing.
    _, unmet = judged_restart(slowed({}))
    assert unmet.status == "inconclusive"
    assert "no request met the slow database" in str(unmet.reason)


def test_a_table_lock_fault_is_a_profile_slow_database() -> None:
    declared = table_lock_fault(
        "postgresql+psycopg://postgres@127.0.0.1:5432/zwfw_hall", "hall_case"
    )
    faults = Faults.model_validate({"slow_database": declared})
    assert faults.slow_database is not None
    cause = faults.slow_database.cause.run or ""
    assert "LOCK TABLE hall_case IN ACCESS EXCLUSIVE MODE" in cause
    assert "postgresql://postgres@127.0.0.1:5432/zwfw_hall" in cause
    assert "zwfw-fault-slow-hall_case" in (faults.slow_database.undo.run or "")
    assert faults.slow_database.answer_seconds == 5.0
