"""Fault scenarios under load (the faults suite, FT-*): the load suite's Locust journeys run
while the harness causes a fault the target profile declares (`faults:`), undoes it and waits
for the deployment to recover; then every write the platform acknowledged during the run is
read back through the APIs.

A scenario's figures:

- per second from the start of the load: requests, failed requests, success rate and p95
  latency of the requests the scenario judges (those of the services meant to keep serving);
- the fault window, from the first fault caused to the last recovery plus the profile's
  `settle_seconds`: requests, failures and success rate, per service too;
- each fault's events (caused, undone, recovered: seconds from the start, exit status) and
  recovery time, from the fault caused (or undone) until the `recovered` command exits 0 or,
  without one, the service's `/readyz` answers 200;
- durability: the writes acknowledged (2xx) by the journeys (case submissions by their case
  number, hub reports by their Idempotency-Key), read back afterwards: found, lost,
  duplicated (the same Idempotency-Key stored more than once), and for the hub outage and the
  clock skew the halls' reports of those cases (queued in their outbox) that reached the hub
  exactly once;
- for the clock skew: the hub's answer to a message the harness signs as the province with
  the skewed clock (status, problem type and detail), and the cases acknowledged while the
  clock was skewed whose report the hub took before the clock was set right (it must not).

The load must cover the fault window; when it ended first, the figures say so and the
verdicts are inconclusive. Fault commands run with a timeout; one that fails stops the
scenario with its exit status and last output line.
"""

from __future__ import annotations

import math
import shlex
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from zwfw.harness import http
from zwfw.harness.errors import HarnessConfigError
from zwfw.harness.loadrun import (
    SETUP_PREFIX,
    Judgement,
    LoadRunError,
    LocustRun,
    load_origin,
    percentile,
    run_locust,
    write_evidence,
)
from zwfw.harness.profile import SERVICE_NAMES, FaultCommand, Faults, ServiceName, TargetProfile
from zwfw.harness.redact import Redactor
from zwfw.harness.workload import Workload

# Seconds of load before the first fault: past the ramp, so the fault meets the full rate.
LEAD_SECONDS = 4.0
POLL_SECONDS = 0.5
# Seconds the clock-skew scenario leaves out at either end of the skew: the harness's and the
# hub's clocks may disagree that much, and a case acknowledged just after the clock was skewed
# may have been reported just before.
CLOCK_TOLERANCE = 2.0
# The problem type of a channel message refused as stale (zwfw.formats.channel).
STALE_PROBLEM = "urn:zwfw:problem:channel:stale"
# How long Locust may take to start its generator processes.
STARTUP_SECONDS = 60.0
# Enough load after the last expected recovery for its settle window, with room to spare.
TAIL_SECONDS = 8.0


class FaultError(HarnessConfigError):
    """A fault command could not be run or failed; the scenario cannot be judged."""


def step_service(step: str) -> ServiceName:
    """The service a journey step talks to (loadtests/journeys.py)."""
    if step.startswith("signin.") or step == "system.token":
        return "identity"
    if step == "system.licence" or step.startswith(SETUP_PREFIX):
        return "elicense"
    if step == "system.seal":
        return "eseal"
    if step == "system.hub-report":
        return "hub"
    return "hall"


# --- fault commands --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    returncode: int
    seconds: float
    output: str


def execute(command: FaultCommand) -> Outcome:
    """Run a fault command on this host (or through ssh/kubectl), bounded by its timeout."""
    started = time.monotonic()
    argv = command.argv()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=command.timeout_seconds,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise FaultError(f"cannot run {argv[0]!r}: not found on this host") from None
    except subprocess.TimeoutExpired:
        return Outcome(
            -1, time.monotonic() - started, f"timed out after {command.timeout_seconds:g} s"
        )
    said = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return Outcome(done.returncode, time.monotonic() - started, said[-1][:200] if said else "")


def must(command: FaultCommand, what: str) -> Outcome:
    outcome = execute(command)
    if outcome.returncode != 0:
        raise FaultError(
            f"{what} failed (exit {outcome.returncode}): {command.describe()}: {outcome.output}"
        )
    return outcome


def ready(profile: TargetProfile, service: ServiceName) -> bool:
    base = profile.base_url(service)
    if base is None:
        return False
    try:
        with http.client(profile, timeout=2.0) as client:
            return client.get(f"{base}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Callable[[], bool], bound: float) -> float | None:
    """Seconds until `check()` held, or None when it did not within `bound`."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started >= bound:
            return None
        time.sleep(POLL_SECONDS)


# A request slower than this met the slow database (requests otherwise take milliseconds).
SLOW_MET_MS = 1000.0

# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Timeline:
    """What the harness did, in wall-clock seconds."""

    events: list[dict[str, Any]] = field(default_factory=list)
    recovery: dict[str, float | None] = field(default_factory=dict)
    first_fault: float | None = None
    last_recovery: float | None = None
    problem: str | None = None
    # What a scenario observed beyond its events (the clock skew's probe of the hub).
    observed: dict[str, Any] = field(default_factory=dict)

    def add(self, what: str, command: FaultCommand | None = None,
            outcome: Outcome | None = None) -> float:  # fmt: skip
        moment = time.time()
        self.events.append({
            "at": moment,
            "what": what,
            "command": command.describe() if command is not None else None,
            "exit": outcome.returncode if outcome is not None else None,
        })  # fmt: skip
        if what.startswith("caused") and self.first_fault is None:
            self.first_fault = moment
        return moment


def _recovered(profile: TargetProfile, service: ServiceName,
               command: FaultCommand | None) -> Callable[[], bool]:  # fmt: skip
    if command is None:
        return lambda: ready(profile, service)
    return lambda: execute(command).returncode == 0


@dataclass(frozen=True)
class Scenario:
    """A fault scenario: what it does while the load runs, and what it judges."""

    name: str
    title: str
    judged: tuple[ServiceName, ...]
    planned_seconds: float
    act: Callable[[Timeline], None]


def replica_scenario(profile: TargetProfile, faults: Faults) -> Scenario:
    """One replica of each declared service killed in turn; each must come back."""
    services = tuple(name for name in SERVICE_NAMES if name in faults.replica)

    def act(timeline: Timeline) -> None:
        for service in services:
            fault = faults.replica[service]
            caused = time.monotonic()
            timeline.add(f"caused: {service} replica killed", fault.cause,
                         must(fault.cause, f"killing a {service} replica"))  # fmt: skip
            took = wait_until(_recovered(profile, service, fault.recovered),
                              faults.recovery_seconds)  # fmt: skip
            timeline.recovery[service] = None if took is None else round(took, 2)
            if took is None:
                timeline.add(f"not recovered: {service} within {faults.recovery_seconds:g} s")
            else:
                timeline.last_recovery = timeline.add(f"recovered: {service}")
            rest = faults.spacing_seconds - (time.monotonic() - caused)
            if rest > 0 and service != services[-1]:
                time.sleep(rest)

    # A restarted replica imports and builds its app: allow it some seconds per service.
    planned = len(services) * max(faults.spacing_seconds, 10.0)
    return Scenario("replica", "One replica of each service killed (SIGKILL) and restarted",
                    services, planned, act)  # fmt: skip


def hub_outage_scenario(profile: TargetProfile, faults: Faults) -> Scenario:
    """The hub unreachable for `hold_seconds`; the province's services keep serving."""
    outage = faults.hub_outage
    assert outage is not None
    province = tuple(s for s in profile.services.configured() if s != "hub")

    def act(timeline: Timeline) -> None:
        timeline.add("caused: hub unreachable", outage.cause,
                     must(outage.cause, "making the hub unreachable"))  # fmt: skip
        time.sleep(outage.hold_seconds)
        timeline.add("undone: hub reachable again", outage.undo,
                     must(outage.undo, "restoring the hub"))  # fmt: skip
        took = wait_until(_recovered(profile, "hub", outage.recovered), faults.recovery_seconds)
        timeline.recovery["hub"] = None if took is None else round(took, 2)
        if took is None:
            timeline.add(f"not recovered: hub within {faults.recovery_seconds:g} s")
        else:
            timeline.last_recovery = timeline.add("recovered: hub")

    return Scenario("hub-outage", "The hub unreachable for a bounded time", province,
                    outage.hold_seconds + 6.0, act)  # fmt: skip


def skewed_probe(profile: TargetProfile, skew_seconds: float) -> dict[str, Any]:
    """The hub's answer to a case report the harness signs as the province with a clock
    `skew_seconds` ahead: the refusal a province with that clock gets."""
    from zwfw.crypto.sm2 import load_private_key
    from zwfw.formats.channel import ChannelSigner

    base = profile.base_url("hub")
    if base is None:
        return {"status": None, "error": "the profile names no hub"}
    signer = ChannelSigner(
        profile.region_code,
        load_private_key(profile.secret("channel_signing_key").encode()),
        key_id=profile.secret("channel_key_id"),
    )
    body = b"{}"
    headers = signer.headers("POST", "/reports/cases", body, recipient="hub",
                             now=time.time() + skew_seconds)  # fmt: skip
    headers["Authorization"] = f"Bearer {profile.secret('hub_report_token')}"
    headers["Content-Type"] = "application/json"
    try:
        with http.client(profile, timeout=10.0) as client:
            answer = client.post(f"{base}/reports/cases", content=body, headers=headers)
    except httpx.HTTPError as error:
        return {"status": None, "error": f"{type(error).__name__}: {error}"[:200]}
    content_type = answer.headers.get("content-type", "").split(";")[0].strip()
    problem: dict[str, Any] = {}
    if content_type == "application/problem+json":
        try:
            parsed = answer.json()
        except ValueError:
            parsed = None
        problem = parsed if isinstance(parsed, dict) else {}
    return {
        "status": answer.status_code,
        "content_type": content_type,
        "type": problem.get("type"),
        "detail": str(problem.get("detail", ""))[:200] or None,
    }


def clock_skew_scenario(profile: TargetProfile, faults: Faults) -> Scenario:
    """The province's clock skewed beyond the channel's freshness window for
    `hold_seconds`, then set right; its citizens keep being served meanwhile."""
    skew = faults.clock_skew
    assert skew is not None
    province = tuple(s for s in profile.services.configured() if s != "hub")

    def act(timeline: Timeline) -> None:
        caused = time.monotonic()
        timeline.add(f"caused: province clock {skew.skew_seconds:+g} s", skew.cause,
                     must(skew.cause, "skewing the province's clock"))  # fmt: skip
        timeline.observed["probe"] = skewed_probe(profile, skew.skew_seconds)
        rest = skew.hold_seconds - (time.monotonic() - caused)
        if rest > 0:
            time.sleep(rest)
        timeline.observed["undone_at"] = timeline.add(
            "undone: province clock set right", skew.undo,
            must(skew.undo, "setting the province's clock right"),
        )  # fmt: skip
        # Nothing to wait for: what shows the province is taken again is its reports arriving.
        timeline.recovery["clock"] = 0.0
        timeline.last_recovery = timeline.observed["undone_at"]

    return Scenario("clock-skew", "The province's clock skewed beyond the channel's freshness "
                    "window", province, skew.hold_seconds + 2.0, act)  # fmt: skip


def _services_ready_again(
    profile: TargetProfile, services: tuple[ServiceName, ...], faults: Faults, timeline: Timeline
) -> None:
    """Wait for every service's /readyz within the recovery bound; the moment is the end of
    the database fault's window (`services_ready_at`)."""
    took = wait_until(lambda: all(ready(profile, s) for s in services), faults.recovery_seconds)
    timeline.recovery["services"] = None if took is None else round(took, 2)
    if took is None:
        timeline.add(f"not recovered: services within {faults.recovery_seconds:g} s")
        return
    timeline.last_recovery = timeline.observed["services_ready_at"] = timeline.add(
        "recovered: every service ready"
    )


def database_restart_scenario(profile: TargetProfile, faults: Faults) -> Scenario:
    """The services' database restarted (or stopped for `hold_seconds` and started again);
    every service reconnects by itself."""
    restart = faults.database_restart
    assert restart is not None
    services = tuple(profile.services.configured())

    def act(timeline: Timeline) -> None:
        # The fault starts when the command does: `pg_ctl restart` returns once it is over.
        started = time.time()
        timeline.add("caused: database restarted", restart.cause,
                     must(restart.cause, "restarting the database"))  # fmt: skip
        timeline.first_fault = timeline.observed["caused_at"] = started
        clock = time.monotonic()
        if restart.undo is not None:
            rest = restart.hold_seconds - (time.monotonic() - clock)
            if rest > 0:
                time.sleep(rest)
            timeline.add("undone: database started", restart.undo,
                         must(restart.undo, "starting the database again"))  # fmt: skip
            clock = time.monotonic()
        if restart.recovered is not None:
            check = restart.recovered
            took = wait_until(lambda: execute(check).returncode == 0, faults.recovery_seconds)
            timeline.recovery["database"] = None if took is None else round(took, 2)
            if took is None:
                timeline.add(f"not recovered: database within {faults.recovery_seconds:g} s")
                return
            timeline.add("recovered: database")
            clock = time.monotonic()
        # Then the services, by themselves: each answers /readyz from its database again.
        _services_ready_again(profile, services, faults, timeline)

    return Scenario("database-restart", "The services' database restarted under load",
                    services, restart.hold_seconds + 8.0, act)  # fmt: skip


def table_lock_fault(database: str, table: str, hold_seconds: float = 15.0) -> dict[str, Any]:
    """A profile's `slow_database:` for a PostgreSQL database the harness's host reaches with
    psql: `cause` takes an ACCESS EXCLUSIVE lock on `table` in a session of its own (as a long
    migration does) and returns once it is granted; `undo` ends that session. `database` is a
    libpq or SQLAlchemy URL without a password (give it in ~/.pgpass)."""
    dsn = "postgresql://" + database.split("://", 1)[1]
    app = f"zwfw-fault-slow-{table}"
    # Should the undo never come, the lock ends by itself a minute after the hold.
    hold = f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; " \
           f"SELECT pg_sleep({int(hold_seconds) + 60}); COMMIT"  # fmt: skip
    granted = (
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        f"WHERE a.application_name = '{app}' AND l.granted AND l.mode = 'AccessExclusiveLock'"
    )
    psql = f"psql -X -q -d {shlex.quote(dsn)}"
    cause = (
        f"(PGAPPNAME={app} nohup {psql} -c {shlex.quote(hold)} >/dev/null 2>&1 &); "
        f"for i in $(seq 100); do "
        f'[ "$({psql} -tA -c {shlex.quote(granted)})" -ge 1 ] && exit 0; sleep 0.1; done; exit 1'
    )
    ended = (
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
    )
    undo = f"{psql} -tA -c {shlex.quote(ended)} >/dev/null"
    return {"cause": {"run": cause}, "undo": {"run": undo}, "hold_seconds": hold_seconds}


def slow_database_scenario(profile: TargetProfile, faults: Faults) -> Scenario:
    """The services' database slow for `hold_seconds`: requests fail fast (503) rather than
    pile up, and every service carries the load again once it is fast."""
    slow = faults.slow_database
    assert slow is not None
    services = tuple(profile.services.configured())

    def act(timeline: Timeline) -> None:
        started = time.time()
        timeline.add("caused: database slow", slow.cause,
                     must(slow.cause, "making the database slow"))  # fmt: skip
        timeline.first_fault = timeline.observed["caused_at"] = started
        rest = slow.hold_seconds - (time.time() - started)
        if rest > 0:
            time.sleep(rest)
        timeline.add("undone: database fast again", slow.undo,
                     must(slow.undo, "making the database fast again"))  # fmt: skip
        # No worker may be left hanging: every service answers /readyz again in time.
        _services_ready_again(profile, services, faults, timeline)

    return Scenario("slow-database", "The services' database answering slowly under load",
                    services, slow.hold_seconds + 6.0, act)  # fmt: skip


# --- running a scenario under load -----------------------------------------------------------


def scenario_workload(base: Workload, scenario: Scenario, faults: Faults) -> Workload:
    """The base workload's rate and mix, long enough to carry the fault and its settling."""
    duration = LEAD_SECONDS + scenario.planned_seconds + faults.settle_seconds + TAIL_SECONDS
    return base.model_copy(update={
        "name": f"{base.name}.{scenario.name}", "duration_seconds": math.ceil(duration),
    })  # fmt: skip


@dataclass
class FaultRun:
    scenario: Scenario
    run: LocustRun
    timeline: Timeline


def run_scenario(
    target: Path,
    profile: TargetProfile,
    scenario: Scenario,
    workload: Workload,
    work_dir: Path,
    *,
    env: dict[str, str] | None = None,
) -> FaultRun:
    """The load runs in its own processes; the fault is caused once it reached its rate."""
    result: dict[str, Any] = {}

    def load() -> None:
        try:
            result["run"] = run_locust(target, profile, workload, work_dir, env=env)
        except LoadRunError as error:
            result["error"] = error

    loader = threading.Thread(target=load, name=f"load-{scenario.name}", daemon=True)
    loader.start()
    timeline = Timeline()
    # The generator's first records mark its start; then its ramp and a few seconds at full
    # rate, so that the fault meets the workload's rate.
    records = work_dir / "records"
    wait_until(lambda: any(records.glob("records-*.jsonl")) or not loader.is_alive(),
               STARTUP_SECONDS)  # fmt: skip
    time.sleep(workload.ramp_seconds + LEAD_SECONDS)
    try:
        if loader.is_alive():
            scenario.act(timeline)
        else:
            timeline.problem = "the load ended before the fault could be caused"
    except FaultError as error:
        timeline.problem = str(error)
    loader.join()
    if "error" in result:
        raise result["error"]
    return FaultRun(scenario, result["run"], timeline)


# --- figures ---------------------------------------------------------------------------------


def _rate(ok: int, total: int) -> float | None:
    return round(ok / total, 6) if total else None


def _counts(rows: Iterable[list[Any]]) -> dict[str, Any]:
    rows = list(rows)
    failures = sum(1 for row in rows if row[5] is not None)
    return {"requests": len(rows), "failures": failures,
            "success_rate": _rate(len(rows) - failures, len(rows))}  # fmt: skip


def figures(fault_run: FaultRun, faults: Faults) -> dict[str, Any]:
    run, timeline, scenario = fault_run.run, fault_run.timeline, fault_run.scenario
    journeys = [row for row in run.records if row[0] == "j"]
    t0 = load_origin(run, journeys)
    judged = [
        row for row in run.records
        if row[0] == "r" and not str(row[2]).startswith(SETUP_PREFIX)
        and step_service(str(row[2])) in scenario.judged
    ]  # fmt: skip
    last_request = max((float(row[1]) for row in judged), default=t0)
    window: dict[str, Any] | None = None
    during: dict[str, Any] = _counts([])
    covered = False
    if timeline.first_fault is not None:
        end = (timeline.last_recovery or time.time()) + faults.settle_seconds
        # A fault that never recovered is judged until the load ended.
        if timeline.last_recovery is None or None in timeline.recovery.values():
            end = last_request
        start = timeline.first_fault
        inside = [row for row in judged if start <= float(row[1]) < end]
        during = _counts(inside)
        during["p95_ms"] = percentile([float(row[3]) for row in inside], 0.95)
        during["by_service"] = {
            service: _counts(row for row in inside if step_service(str(row[2])) == service)
            for service in scenario.judged
        }
        covered = last_request >= end - 1.0
        window = {"start_seconds": round(start - t0, 2), "end_seconds": round(end - t0, 2)}
    seconds = max(1, math.ceil(last_request - t0) + 1)
    per_second: list[list[list[Any]]] = [[] for _ in range(seconds)]
    for row in judged:
        index = int(float(row[1]) - t0)
        if 0 <= index < seconds:
            per_second[index].append(row)
    success = []
    for rows in per_second:
        ok = sum(1 for row in rows if row[5] is None)
        success.append(round(100.0 * ok / len(rows), 2) if rows else None)
    return {
        "scenario": scenario.name,
        "title": scenario.title,
        "judged_services": list(scenario.judged),
        "success_threshold": faults.success_threshold,
        "recovery_bound_seconds": faults.recovery_seconds,
        "workload": {
            "name": run.workload.name,
            "arrivals_per_second": run.workload.arrivals_per_second,
            "ramp_seconds": run.workload.ramp_seconds,
            "duration_seconds": run.workload.duration_seconds,
            "mix": dict(run.workload.mix),
        },
        "events": [
            {
                "at_seconds": round(float(event["at"]) - t0, 2),
                **{k: v for k, v in event.items() if k != "at"},
            }
            for event in timeline.events
        ],
        "problem": timeline.problem,
        "window": window,
        "load_covered_window": covered,
        "during": during,
        "recovery_seconds": dict(timeline.recovery),
        "series": {
            "second": list(range(seconds)),
            "requests": [len(rows) for rows in per_second],
            "failures": [sum(1 for row in rows if row[5] is not None) for rows in per_second],
            "success_pct": success,
            "p95_ms": [percentile([float(row[3]) for row in rows], 0.95) for rows in per_second],
        },
    }


def restart_figures(fault_run: FaultRun, faults: Faults, answer_seconds: float) -> dict[str, Any]:
    """The database restart (or slowness) seen by the judged requests: while the database was
    away or slow (from the fault until every service was ready again), how the failures were
    answered and the slowest answer; then, for `settle_seconds`, whether the services carried
    the load again."""
    timeline = fault_run.timeline
    caused, back = timeline.observed.get("caused_at"), timeline.observed.get("services_ready_at")
    figures: dict[str, Any] = {"answer_bound_seconds": answer_seconds,
                               "away": None, "after": None}  # fmt: skip
    if caused is None:
        return figures
    judged = [
        row for row in fault_run.run.records
        if row[0] == "r" and not str(row[2]).startswith(SETUP_PREFIX)
        and step_service(str(row[2])) in fault_run.scenario.judged
    ]  # fmt: skip
    end_away = back if back is not None else max((float(r[1]) for r in judged), default=caused)
    away = [row for row in judged if caused <= float(row[1]) < end_away]
    failed = [row for row in away if row[5] is not None]
    answers = Counter(f"HTTP {row[4]}" if row[4] else "no answer" for row in failed)
    bound_ms = answer_seconds * 1000.0
    figures["away"] = {
        **_counts(away),
        "seconds": round(end_away - caused, 2),
        "failures_by_answer": dict(sorted(answers.items())),
        "not_503": sum(1 for row in failed if row[4] != 503),
        "slowest_ms": max((float(row[3]) for row in away), default=None),
        "over_answer_bound": sum(1 for row in away if float(row[3]) > bound_ms),
    }
    if back is not None:
        after = [row for row in judged if back <= float(row[1]) < back + faults.settle_seconds]
        last = max((float(row[1]) for row in judged), default=back)
        figures["after"] = {**_counts(after), "covered": last >= back + faults.settle_seconds - 1}
    return figures


# --- durability: reading acknowledged writes back --------------------------------------------


def acknowledged(run: LocustRun) -> list[tuple[str, str, str]]:
    """(kind, key, subject) of every write the platform answered 2xx during the run."""
    return [(str(row[2]), str(row[3]), str(row[4])) for row in run.records if row[0] == "w"]


@dataclass
class Reader:
    """Reads acknowledged writes back through the target's APIs."""

    profile: TargetProfile
    client: httpx.Client

    def _get(self, service: ServiceName, path: str, token: str) -> httpx.Response:
        base = self.profile.base_url(service)
        return self.client.get(f"{base}/{path}", headers={"Authorization": f"Bearer {token}"})

    def case(self, number: str) -> bool | None:
        """Whether the hall holds the case (None: the answer said neither)."""
        answer = self._get("hall", f"cases/{number}", self.profile.secret("hall_staff_token"))
        return True if answer.status_code == 200 else False if answer.status_code == 404 else None

    def hub_keys(self, case_number: str) -> Counter[str] | None:
        """How often the hub stored each Idempotency-Key of reports about the case."""
        answer = self._get("hub", f"cases/{case_number}/reports",
                           self.profile.secret("hub_supervise_token"))  # fmt: skip
        if answer.status_code == 404:
            return Counter()
        if answer.status_code != 200:
            return None
        return Counter(str(item["idempotency_key"]) for item in answer.json())


def durability(profile: TargetProfile, writes: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """Acknowledged writes read back: found, lost, duplicated, unreadable (per kind too)."""
    by_kind: dict[str, dict[str, Any]] = {}
    lost: list[str] = []
    with http.client(profile) as client:
        reader = Reader(profile, client)
        for kind, key, subject in writes:
            tally = by_kind.setdefault(kind, dict.fromkeys(
                ("acknowledged", "found", "lost", "duplicated", "unreadable"), 0))  # fmt: skip
            tally["acknowledged"] += 1
            copies: int | None
            if kind == "case":
                held = reader.case(key)
                copies = None if held is None else int(held)
            else:
                keys = reader.hub_keys(subject)
                copies = None if keys is None else keys[key]
            if copies is None:
                tally["unreadable"] += 1
            elif copies == 0:
                tally["lost"] += 1
                lost.append(f"{kind} {key}")
            else:
                tally["found"] += 1
                tally["duplicated"] += copies > 1
    totals = {
        name: sum(t[name] for t in by_kind.values())
        for name in ("acknowledged", "found", "lost", "duplicated", "unreadable")
    }
    return {**totals, "by_kind": by_kind, "lost_examples": lost[:10]}


def first_received(profile: TargetProfile, cases: Sequence[str]) -> dict[str, float | None]:
    """When the hub took the halls' first report of each case (Unix seconds; None: not
    taken, or not readable)."""
    taken: dict[str, float | None] = {}
    with http.client(profile) as client:
        reader = Reader(profile, client)
        for number in cases:
            answer = reader._get("hub", f"cases/{number}/reports",
                                 profile.secret("hub_supervise_token"))  # fmt: skip
            key = case_report_key(profile.region_code, number)
            found = []
            if answer.status_code == 200:
                found = [item for item in answer.json() if item["idempotency_key"] == key]
            taken[number] = (
                datetime.fromisoformat(found[0]["received_at"]).timestamp() if found else None
            )
    return taken


def skew_figures(profile: TargetProfile, fault_run: FaultRun) -> dict[str, Any]:
    """The probe's answer and the cases acknowledged while the clock was skewed whose report
    the hub took before it was set right (`CLOCK_TOLERANCE` off either end: the clocks of
    the harness and the hub, and reports made just before the clock was skewed)."""
    timeline = fault_run.timeline
    figures: dict[str, Any] = {"probe": timeline.observed.get("probe"), "skewed_cases": 0,
                               "accepted_while_skewed": 0, "accepted_examples": []}  # fmt: skip
    start, undone = timeline.first_fault, timeline.observed.get("undone_at")
    if start is None or undone is None:
        return figures
    acked = {str(row[3]): float(row[1]) for row in fault_run.run.records
             if row[0] == "w" and row[2] == "case"}  # fmt: skip
    # A case acknowledged just after the clock was skewed may have been reported just before.
    skewed = sorted(n for n, at in acked.items()
                    if start + CLOCK_TOLERANCE <= at < undone - CLOCK_TOLERANCE)  # fmt: skip
    taken = first_received(profile, skewed)
    early = [n for n in skewed if (t := taken[n]) is not None and t < undone - CLOCK_TOLERANCE]
    figures.update(skewed_cases=len(skewed), accepted_while_skewed=len(early),
                   accepted_examples=early[:10])  # fmt: skip
    return figures


def case_report_key(region_code: str, case_number: str) -> str:
    """The Idempotency-Key of a hall's first report of a case (zwfw.services.hall.reports)."""
    return f"{region_code}:case:{case_number}:v1"


def outbox_deliveries(profile: TargetProfile, cases: Sequence[str], bound: float) -> dict[str, Any]:
    """Whether the halls' first report of each acknowledged case reached the hub exactly
    once, polling up to `bound` seconds for the outbox to drain."""
    started = time.monotonic()
    pending = set(cases)
    once: set[str] = set()
    repeated: set[str] = set()
    unreadable: set[str] = set()
    with http.client(profile) as client:
        reader = Reader(profile, client)
        while True:
            for number in sorted(pending):
                keys = reader.hub_keys(number)
                if keys is None:
                    unreadable.add(number)
                    continue
                unreadable.discard(number)
                seen = keys[case_report_key(profile.region_code, number)]
                if seen:
                    pending.discard(number)
                    (once if seen == 1 else repeated).add(number)
            if not pending or time.monotonic() - started >= bound:
                break
            time.sleep(1.0)
    return {
        "cases": len(cases),
        "arrived_once": len(once),
        "arrived_more_than_once": len(repeated),
        "missing": len(pending - unreadable),
        "unreadable": len(unreadable),
        "seconds_to_drain": round(time.monotonic() - started, 2) if not pending else None,
        "missing_examples": sorted(pending)[:10],
    }


def measure_scenario(
    target: Path,
    profile: TargetProfile,
    scenario: Scenario,
    base: Workload,
    faults: Faults,
    *,
    work_dir: Path,
    evidence_dir: Path | None,
    redactor: Redactor,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one scenario under load and read its acknowledged writes back."""
    workload = scenario_workload(base, scenario, faults)
    fault_run = run_scenario(target, profile, scenario, workload, work_dir, env=env)
    measured = figures(fault_run, faults)
    writes = acknowledged(fault_run.run)
    measured["durability"] = durability(profile, writes)
    if scenario.name in ("hub-outage", "clock-skew"):
        cases = [key for kind, key, _ in writes if kind == "case"]
        measured["outbox"] = outbox_deliveries(profile, cases, faults.delivery_seconds)
    if scenario.name == "clock-skew":
        measured["skew"] = skew_figures(profile, fault_run)
    if scenario.name == "database-restart" and faults.database_restart is not None:
        measured["restart"] = restart_figures(
            fault_run, faults, faults.database_restart.answer_seconds
        )
    if scenario.name == "slow-database" and faults.slow_database is not None:
        slow = faults.slow_database.answer_seconds
        measured["restart"] = restart_figures(fault_run, faults, slow)
    measured["evidence"] = (
        write_evidence(fault_run.run, evidence_dir / f"faults-{scenario.name}", redactor)
        if evidence_dir is not None
        else []
    )
    return measured


# --- verdicts --------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _scenario_doubt(measured: dict[str, Any]) -> Judgement | None:
    """A scenario the figures cannot judge: the fault was not caused, or no load covered it."""
    if measured["problem"] is not None:
        return Judgement("inconclusive", str(measured["problem"]))
    if measured["window"] is None:
        return Judgement("inconclusive", "no fault was caused")
    if not measured["during"]["requests"]:
        return Judgement("inconclusive", "no request of the judged services during the fault")
    return None


def judge_service_during_fault(measured: dict[str, Any]) -> Judgement:
    """Success during the fault window at the threshold; every fault recovered in time."""
    doubt = _scenario_doubt(measured)
    if doubt is not None:
        return doubt
    during, threshold = measured["during"], measured["success_threshold"]
    broken = []
    if during["success_rate"] < threshold:
        worst = sorted(
            ((f["failures"], name) for name, f in during["by_service"].items() if f["failures"]),
            reverse=True,
        )
        where = ", ".join(f"{name} {count}" for count, name in worst)
        broken.append(
            f"{during['failures']} of {during['requests']} requests failed during the fault: "
            f"success {_pct(during['success_rate'])} < {threshold:.2%} ({where})"
        )
    missing = [name for name, took in measured["recovery_seconds"].items() if took is None]
    if missing:
        broken.append(
            f"not recovered within {measured['recovery_bound_seconds']:g} s: {', '.join(missing)}"
        )
    if broken:
        return Judgement("fail", "; ".join(broken))
    if not measured["load_covered_window"]:
        return Judgement("inconclusive", "the load ended before the fault window did")
    return Judgement("pass", None)


def judge_durability(measured: dict[str, Any]) -> Judgement:
    """Every acknowledged write found afterwards, none stored twice."""
    if measured["problem"] is not None:
        return Judgement("inconclusive", str(measured["problem"]))
    found = measured["durability"]
    if not found["acknowledged"]:
        return Judgement("inconclusive", "the platform acknowledged no write during the scenario")
    broken = []
    if found["lost"]:
        broken.append(f"{found['lost']} of {found['acknowledged']} acknowledged writes lost "
                      f"(e.g. {', '.join(found['lost_examples'][:3])})")  # fmt: skip
    if found["duplicated"]:
        broken.append(f"{found['duplicated']} acknowledged writes stored more than once")
    if broken:
        return Judgement("fail", "; ".join(broken))
    if found["unreadable"]:
        return Judgement("inconclusive", f"{found['unreadable']} acknowledged writes could not "
                                         "be read back")  # fmt: skip
    return Judgement("pass", None)


def judge_clock_skew(measured: dict[str, Any]) -> Judgement:
    """While the clock was skewed the hub refused the province with a clear problem (the
    probe) and took none of its reports; afterwards every acknowledged case's report arrived
    exactly once."""
    if measured["problem"] is not None:
        return Judgement("inconclusive", str(measured["problem"]))
    skew = measured.get("skew") or {}
    probe = skew.get("probe") or {}
    status = probe.get("status")
    if status is None:
        return Judgement("inconclusive", "the hub did not answer a message signed with the "
                                         f"skewed clock: {probe.get('error')}")  # fmt: skip
    broken = []
    if 200 <= status < 300:
        broken.append(f"the hub took a message signed with the skewed clock (HTTP {status})")
    elif (status, probe.get("content_type"), probe.get("type")) != (
        401,
        "application/problem+json",
        STALE_PROBLEM,
    ):
        broken.append(
            f"a message signed with the skewed clock was refused without a clear error: HTTP "
            f"{status}, {probe.get('content_type') or 'no content type'}, problem type "
            f"{probe.get('type')} (expected 401 application/problem+json {STALE_PROBLEM})"
        )
    if skew.get("accepted_while_skewed"):
        broken.append(
            f"{skew['accepted_while_skewed']} of {skew['skewed_cases']} cases acknowledged "
            "while the clock was skewed were reported to the hub before it was set right "
            f"(e.g. {', '.join(skew['accepted_examples'][:3])})"
        )
    delivered = judge_outbox(measured)
    if delivered.status == "fail" and delivered.reason:
        broken.append(delivered.reason)
    if broken:
        return Judgement("fail", "; ".join(broken))
    if not skew.get("skewed_cases"):
        return Judgement("inconclusive", "no case was acknowledged while the clock was skewed")
    return delivered


def judge_database_restart(measured: dict[str, Any]) -> Judgement:
    """The services were ready again within the recovery bound and carried the load at the
    threshold afterwards; while the database was away (or slow), every request was answered
    within the answer bound and every failure was a 503."""
    state = "slow" if measured["scenario"] == "slow-database" else "away"
    doubt = _scenario_doubt(measured)
    if doubt is not None:
        return doubt
    restart = measured.get("restart") or {}
    away, after = restart.get("away"), restart.get("after")
    broken = []
    missing = [name for name, took in measured["recovery_seconds"].items() if took is None]
    if missing:
        broken.append(
            f"not recovered within {measured['recovery_bound_seconds']:g} s: {', '.join(missing)}"
        )
    if away is not None:
        if away["over_answer_bound"]:
            broken.append(
                f"{away['over_answer_bound']} requests took longer than "
                f"{restart['answer_bound_seconds']:g} s to be answered while the database was "
                f"{state} (slowest {away['slowest_ms'] / 1000:.1f} s)"
            )
        if away["not_503"]:
            answers = ", ".join(f"{k} x{v}" for k, v in away["failures_by_answer"].items())
            broken.append(
                f"{away['not_503']} requests failed otherwise than 503 while the database was "
                f"{state} ({answers})"
            )
    threshold = measured["success_threshold"]
    if after is not None and after["requests"] and after["success_rate"] < threshold:
        broken.append(
            f"after the services were ready again {after['failures']} of {after['requests']} "
            f"requests failed: success {_pct(after['success_rate'])} < {threshold:.2%}"
        )
    if broken:
        return Judgement("fail", "; ".join(broken))
    if after is None or not after["requests"] or not after["covered"]:
        return Judgement("inconclusive", "the load did not cover the settle time after recovery")
    if (
        state == "slow"
        and away is not None
        and not away["failures"]
        and (away["slowest_ms"] or 0) < SLOW_MET_MS
    ):
        # A fault no request met says nothing about how the services meet one.
        return Judgement("inconclusive", "no request met the slow database (none failed, "
                                         f"none took {SLOW_MET_MS / 1000:g} s)")  # fmt: skip
    return Judgement("pass", None)


def judge_outbox(measured: dict[str, Any]) -> Judgement:
    """The hall's first report of every acknowledged case at the hub exactly once."""
    durable = judge_durability(measured)
    outbox = measured.get("outbox")
    if outbox is None or measured["problem"] is not None:
        return durable
    broken = [durable.reason] if durable.status == "fail" and durable.reason else []
    if outbox["missing"]:
        broken.append(
            f"{outbox['missing']} of {outbox['cases']} acknowledged cases never reported to the "
            f"hub within the delivery bound (e.g. {', '.join(outbox['missing_examples'][:3])})"
        )
    if outbox["arrived_more_than_once"]:
        broken.append(f"{outbox['arrived_more_than_once']} case reports stored more than once")
    if broken:
        return Judgement("fail", "; ".join(broken))
    if not outbox["cases"]:
        return Judgement("inconclusive", "no case was acknowledged during the hub outage")
    if outbox["unreadable"]:
        return Judgement("inconclusive", f"{outbox['unreadable']} cases' reports could not be "
                                         "read at the hub")  # fmt: skip
    return durable
