"""Running the load suite's Locust journeys and turning what they recorded into figures and
verdicts.

Locust runs headless in its own processes (`locust --headless`, `--processes N` for one
generator per core): gevent patches everything it imports, so it never runs inside the
harness's or pytest's process. The run is bounded (ramp + duration + the stop timeout for
journeys still running, then the process group is killed) and talks only to the target
profile's services (the journeys refuse any other host).

Figures come from the generator's own records (every request, every journey with its due
time, per second the event-loop lag and the journeys in flight), over the steady window after
the ramp; Locust's CSV and HTML reports go to the evidence as Locust saw the whole run.

An honest generator: every generator process's CPU demand (the share of wall time it was
running or waiting for a CPU, from `/proc/<pid>/task/*/schedstat`) is recorded over the steady
window; when one reached the workload's limit the generator was saturated, and its latencies
include its own queueing. Arrivals that started late (no free user, or a starved generator)
were not offered at the profile's rate. Either way a verdict that would have passed is
"inconclusive" with that reason, never "pass".
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from zwfw.harness.errors import HarnessConfigError
from zwfw.harness.profile import TargetProfile
from zwfw.harness.redact import Redactor
from zwfw.harness.workload import LoadTargets, Workload

LOAD_EVIDENCE = "load"
LOCUST_FILES = ("stats.csv", "stats_history.csv", "failures.csv", "exceptions.csv")
# Steps of a journey's set-up (fetching a sealed licence once per process): not judged.
SETUP_PREFIX = "setup."
SECONDS_NS = 1_000_000_000

Verdict = Literal["pass", "fail", "inconclusive"]


class LoadRunError(HarnessConfigError):
    """Locust could not be started or produced nothing to judge."""


def locustfile() -> Path:
    from zwfw.harness.runner import suite_dir

    return suite_dir("loadtests") / "locustfile.py"


# --- the generator's own CPU -----------------------------------------------------------------


def _read_ints(path: Path) -> list[int]:
    try:
        return [int(part) for part in path.read_text().split()]
    except (OSError, ValueError):
        return []


def _tree(root: int) -> list[int]:
    """`root` and all its descendants (Locust's master and the workers it forked)."""
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            pending.extend(_read_ints(task / "children"))
    return found


def _schedstat(pid: int) -> tuple[int, int] | None:
    """Nanoseconds on a CPU and waiting for one, over every thread of `pid`."""
    running = waiting = 0
    tasks = list(Path(f"/proc/{pid}/task").glob("*"))
    if not tasks:
        return None
    for task in tasks:
        values = _read_ints(task / "schedstat")
        if len(values) >= 2:
            running += values[0]
            waiting += values[1]
    return running, waiting


@dataclass
class CpuMeter:
    """Samples the CPU demand of a process tree about once a second."""

    root: int
    samples: dict[int, list[tuple[float, int, int]]] = field(default_factory=dict)

    def sample(self) -> None:
        now = time.time()
        for pid in _tree(self.root):
            stat = _schedstat(pid)
            if stat is not None:
                self.samples.setdefault(pid, []).append((now, *stat))

    def demand(self, start: float, end: float) -> list[dict[str, Any]]:
        """Per process over [start, end]: CPU seconds, wait seconds, demand (share of wall)."""
        out = []
        for pid, rows in sorted(self.samples.items()):
            inside = [row for row in rows if start - 1.0 <= row[0] <= end + 1.0]
            if len(inside) < 2:
                continue
            (t0, run0, wait0), (t1, run1, wait1) = inside[0], inside[-1]
            wall = t1 - t0
            if wall <= 0:
                continue
            running, waiting = (run1 - run0) / SECONDS_NS, (wait1 - wait0) / SECONDS_NS
            out.append({
                "pid": pid,
                "role": "master" if pid == self.root else "worker",
                "cpu_seconds": round(running, 3),
                "wait_seconds": round(waiting, 3),
                "wall_seconds": round(wall, 3),
                "demand": round((running + waiting) / wall, 4),
                "wait_share": round(waiting / wall, 4),
            })  # fmt: skip
        return out


# --- running Locust --------------------------------------------------------------------------


@dataclass
class LocustRun:
    """What one Locust run left: its records, CSV/HTML files and the generator's CPU."""

    workload: Workload
    work_dir: Path
    records: list[list[Any]]
    meter: CpuMeter
    started_at: float
    ended_at: float
    returncode: int
    processes: int
    pool: int
    log: str

    @property
    def prefix(self) -> Path:
        return self.work_dir / "locust"


def _host(profile: TargetProfile) -> str:
    configured = profile.services.configured()
    host = profile.base_url("hall") or next(iter(configured.values()), None)
    if host is None:
        raise LoadRunError("the target profile lists no service to load")
    return host


def run_locust(
    target: Path,
    profile: TargetProfile,
    workload: Workload,
    work_dir: Path,
    *,
    env: dict[str, str] | None = None,
    command_prefix: Sequence[str] = (),
) -> LocustRun:
    """Run the journeys headless against `profile` at `workload`'s load; bounded in time.

    `command_prefix` goes before the Locust command (e.g. `taskset -c 0`).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    records_dir = work_dir / "records"
    workload_file = work_dir / "workload.yaml"
    workload_file.write_text(yaml.safe_dump(workload.as_dict(), sort_keys=False), "utf-8")
    processes = workload.generator_processes()
    pool = workload.pool()
    # The generator ends the run itself once its journeys drained; this is the hard bound.
    run_time = math.ceil(workload.run_seconds + workload.stop_timeout_seconds) + 2
    spawn_rate = workload.spawn_rate(pool)
    command = [
        *command_prefix,
        sys.executable, "-m", "locust",
        "-f", str(locustfile()),
        "--headless", "--only-summary",
        "--users", str(pool), "--spawn-rate", f"{spawn_rate:g}",
        "--run-time", f"{run_time}s",
        "--stop-timeout", f"{workload.stop_timeout_seconds:g}",
        "--host", _host(profile),
        "--csv", str(work_dir / "locust"), "--csv-full-history",
        "--html", str(work_dir / "locust.html"),
        "--exit-code-on-error", "0",
        "--loglevel", "WARNING",
        *(["--processes", str(processes)] if processes > 1 else []),
    ]  # fmt: skip
    environment = {
        **os.environ,
        **(env or {}),
        "ZWFW_LOAD_TARGET": str(target.resolve()),
        "ZWFW_LOAD_WORKLOAD": str(workload_file),
        "ZWFW_LOAD_RECORDS": str(records_dir),
        "ZWFW_LOAD_PROCESSES": str(processes),
        # No update checks, no telemetry: the generator talks to the target only.
        "LOCUST_SKIP_MONKEY_PATCH_CHECK": "1",
    }
    log_path = work_dir / "locust.log"
    bound = run_time + workload.stop_timeout_seconds + 120.0
    started = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            process = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            raise LoadRunError(f"cannot start Locust: {error}") from None
        meter = CpuMeter(process.pid)
        try:
            while process.poll() is None:
                meter.sample()
                if time.time() - started > bound:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    raise LoadRunError(f"Locust did not stop within {bound:.0f} s; killed")
                time.sleep(1.0)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    ended = time.time()
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    records = _read_records(records_dir)
    if not records:
        last = [line for line in log_text.splitlines() if line.strip()][-3:]
        raise LoadRunError(
            f"Locust recorded nothing (exit {process.returncode}): {' | '.join(last)}"
        )
    return LocustRun(workload, work_dir, records, meter, started, ended, process.returncode,
                     processes, pool, log_text)  # fmt: skip


def _read_records(directory: Path) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for path in sorted(directory.glob("records-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a killed process
    return rows


# --- figures ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of unsorted `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _is_5xx(status: int) -> bool:
    return 500 <= status <= 599


def _step_figures(rows: list[list[Any]]) -> dict[str, Any]:
    times = [float(row[3]) for row in rows]
    return {
        "count": len(rows),
        "failures": sum(1 for row in rows if row[5] is not None),
        "status_5xx": sum(1 for row in rows if _is_5xx(int(row[4]))),
        "mean_ms": _ms(sum(times) / len(times)) if times else None,
        "p50_ms": _ms(percentile(times, 0.50)),
        "p95_ms": _ms(percentile(times, 0.95)),
        "p99_ms": _ms(percentile(times, 0.99)),
        "max_ms": _ms(max(times) if times else None),
    }


def load_origin(run: LocustRun, journeys: list[list[Any]]) -> float:
    """When the load started: the open schedule's origin, or the first journey (closed)."""
    workload = run.workload
    if not journeys:
        return run.started_at
    if workload.model == "open":
        return min(float(j[2]) for j in journeys) - workload.arrival_offset(0)
    return min(float(j[3]) for j in journeys)


# How the reason starts when the generator could not offer the profile's arrival rate.
NOT_OFFERED = "the generator offered"


def figures(run: LocustRun, targets: LoadTargets) -> dict[str, Any]:
    """The measurements of one run (the report's `measurements.load`)."""
    workload = run.workload
    requests = [row for row in run.records if row[0] == "r"]
    journeys = [row for row in run.records if row[0] == "j"]
    t0 = load_origin(run, journeys)
    window_start, window_end = t0 + workload.ramp_seconds, t0 + workload.run_seconds
    duration = workload.duration_seconds

    def in_window(moment: float) -> bool:
        return window_start <= moment < window_end

    judged = [r for r in requests if not str(r[2]).startswith(SETUP_PREFIX)]
    window = [r for r in judged if in_window(float(r[1]))]
    by_step: dict[str, list[list[Any]]] = defaultdict(list)
    for row in window:
        by_step[str(row[2])].append(row)
    failures = sum(1 for r in window if r[5] is not None)

    limits = workload.generator
    due_in_window = [j for j in journeys if in_window(float(j[2]))]
    on_time = [j for j in due_in_window if float(j[3]) - float(j[2]) <= limits.late_arrival_seconds]
    expected = workload.arrivals_per_second * duration
    if workload.model == "closed":
        # No schedule: what was offered is what started.
        on_time = due_in_window
    answered = [j for j in due_in_window if j[5] in ("ok", "failed")]
    cpu = run.meter.demand(window_start, window_end)
    lags = [float(row[2]) for row in run.records if row[0] == "l" and in_window(float(row[1]))]

    journey_figures = {}
    for kind in sorted({str(j[1]) for j in journeys} | {k for k, w in workload.mix.items() if w}):
        mine = [j for j in due_in_window if j[1] == kind]
        journey_figures[kind] = {
            "expected": round(workload.rate_of(kind) * duration, 1),
            "started": len(mine),
            "ok": sum(1 for j in mine if j[5] == "ok"),
            "failed": sum(1 for j in mine if j[5] == "failed"),
            "broken": sum(1 for j in mine if j[5] == "broken"),
            "p95_seconds": _ms(percentile([float(j[4]) - float(j[3]) for j in mine], 0.95)),
        }

    max_demand = max((p["demand"] for p in cpu), default=0.0)
    busy = [p for p in cpu if p["demand"] >= limits.max_cpu_demand]
    starved = [p for p in cpu if p["wait_share"] >= limits.max_cpu_wait_share]
    # Most seconds, not the worst few: a busy host delays any process now and then.
    lag = percentile(lags, 0.50)
    on_time_share = len(on_time) / expected if expected else 1.0
    inconclusive: list[str] = []
    if busy:
        worst = max(busy, key=lambda p: p["demand"])
        inconclusive.append(
            f"the load generator saturated: {worst['role']} process {worst['pid']} demanded "
            f"{worst['demand']:.0%} of a CPU (limit {limits.max_cpu_demand:.0%})"
        )
    if starved:
        worst = max(starved, key=lambda p: p["wait_share"])
        inconclusive.append(
            f"the load generator saturated: {worst['role']} process {worst['pid']} waited for "
            f"a CPU {worst['wait_share']:.0%} of the time (limit "
            f"{limits.max_cpu_wait_share:.0%}), so its timings include its own queueing"
        )
    if lag is not None and lag > limits.max_loop_lag_ms:
        inconclusive.append(
            f"the load generator saturated: its event loop ran {lag:.0f} ms late in most "
            f"seconds (median of the per-second worst; limit {limits.max_loop_lag_ms:g} ms)"
        )
    saturated = bool(busy or starved or (lag is not None and lag > limits.max_loop_lag_ms))
    if on_time_share < limits.min_arrivals_on_time:
        inconclusive.append(
            f"{NOT_OFFERED} {len(on_time)} of {expected:g} arrivals on time "
            f"({on_time_share:.0%}, at least {limits.min_arrivals_on_time:.0%} needed): "
            f"{workload.arrivals_per_second:g}/s was not reached"
        )
    return {
        "workload": {**workload.as_dict(), "fingerprint": workload.fingerprint()},
        "targets": targets.as_dict(),
        "run": {
            "started_at": _iso(t0),
            "window_start": _iso(window_start),
            "window_end": _iso(window_end),
            "window_seconds": duration,
            "ended_at": _iso(run.ended_at),
        },
        "generator": {
            "processes": run.processes,
            "pool": run.pool,
            "cpu": cpu,
            "max_cpu_demand": round(max_demand, 4),
            "max_loop_lag_ms": _ms(max(lags) if lags else None),
            "median_loop_lag_ms": _ms(lag),
            "saturated": saturated,
            "inconclusive": inconclusive,
        },
        "arrivals": {
            "rate_expected": workload.arrivals_per_second,
            "expected": round(expected, 1),
            "started": len(due_in_window),
            "on_time": len(on_time),
            "on_time_share": round(on_time_share, 4),
            "late": len(due_in_window) - len(on_time) if workload.model == "open" else 0,
        },
        "throughput": {
            "offered_per_second": round(len(on_time) / duration, 3),
            "answered_per_second": round(len(answered) / duration, 3),
            "required_per_second": round(
                workload.arrivals_per_second * (1 - targets.throughput_tolerance), 3
            ),
            "requests_per_second": round(len(window) / duration, 3),
        },
        "journeys": journey_figures,
        "steps": {step: _step_figures(rows) for step, rows in sorted(by_step.items())},
        "totals": {
            "requests": len(window),
            "failures": failures,
            "error_rate": round(failures / len(window), 6) if window else None,
            "status_5xx": sum(1 for r in window if _is_5xx(int(r[4]))),
            "status_5xx_run": sum(1 for r in judged if _is_5xx(int(r[4]))),
            "requests_run": len(judged),
        },
        "series": _series(run, t0, judged, journeys),
    }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def _series(
    run: LocustRun, t0: float, requests: list[list[Any]], journeys: list[list[Any]]
) -> dict[str, list[Any]]:
    """Per second from the start: requests, failures, journeys started, journeys in flight
    (mean over the second), and latency percentiles (ms) of the requests started in it."""
    end = max([float(r[1]) for r in requests] + [t0 + run.workload.run_seconds])
    seconds = max(1, math.ceil(end - t0))
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    failures = [0] * seconds
    started = [0] * seconds
    for row in requests:
        index = int(float(row[1]) - t0)
        if 0 <= index < seconds:
            latencies[index].append(float(row[3]))
            failures[index] += row[5] is not None
    for row in journeys:
        index = int(float(row[3]) - t0)
        if 0 <= index < seconds:
            started[index] += 1
    busy = [0.0] * seconds
    for row in journeys:
        # Mean journeys in flight per second: the time each journey spent in that second.
        begin, end = float(row[3]) - t0, float(row[4]) - t0
        for index in range(max(0, int(begin)), min(seconds, math.ceil(end))):
            busy[index] += max(0.0, min(end, index + 1) - max(begin, index))
    return {
        "second": list(range(seconds)),
        "requests": [len(values) for values in latencies],
        "failures": failures,
        "journeys_started": started,
        "in_flight": [round(value, 3) for value in busy],
        "p50_ms": [_ms(percentile(values, 0.50)) for values in latencies],
        "p95_ms": [_ms(percentile(values, 0.95)) for values in latencies],
        "p99_ms": [_ms(percentile(values, 0.99)) for values in latencies],
    }


# --- verdicts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    status: Verdict
    reason: str | None


def _undecided(measured: dict[str, Any], failed: bool, measured_reason: str | None,
               *, trust_failure: bool) -> Judgement:  # fmt: skip
    """Apply the honest-generator rule to a verdict the figures gave."""
    doubts = list(measured["generator"]["inconclusive"])
    saturated = bool(measured["generator"]["saturated"])
    if failed and (not saturated or trust_failure):
        return Judgement("fail", measured_reason)
    if doubts:
        why = "; ".join(doubts)
        if failed:
            why += f" (measured: {measured_reason})"
        return Judgement("inconclusive", why)
    if failed:
        return Judgement("fail", measured_reason)
    return Judgement("pass", None)


def judge_latency(measured: dict[str, Any], steps: Iterable[str]) -> Judgement:
    """p95 and p99 of each step within the targets over the steady window."""
    targets = measured["targets"]
    p95_limit, p99_limit = targets["p95_seconds"] * 1000, targets["p99_seconds"] * 1000
    broken: list[str] = []
    missing: list[str] = []
    for step in steps:
        figures_ = measured["steps"].get(step)
        if not figures_ or not figures_["count"]:
            missing.append(step)
            continue
        if figures_["p95_ms"] > p95_limit:
            broken.append(f"{step} p95 {figures_['p95_ms']:.0f} ms > {p95_limit:.0f} ms")
        if figures_["p99_ms"] > p99_limit:
            broken.append(f"{step} p99 {figures_['p99_ms']:.0f} ms > {p99_limit:.0f} ms")
    reason = "; ".join(broken) if broken else None
    judgement = _undecided(measured, bool(broken), reason, trust_failure=False)
    if judgement.status == "pass" and missing:
        return Judgement("inconclusive", f"no request of {', '.join(missing)} in the steady window")
    return judgement


def judge_error_rate(measured: dict[str, Any]) -> Judgement:
    totals, budget = measured["totals"], measured["targets"]["error_budget"]
    if not totals["requests"]:
        return Judgement("inconclusive", "no request in the steady window")
    rate = totals["error_rate"]
    failed = rate > budget
    steps = measured["steps"]
    worst = sorted(((f["failures"], s) for s, f in steps.items() if f["failures"]), reverse=True)
    where = ", ".join(f"{s} {n}" for n, s in worst[:4])
    reason = (
        f"{totals['failures']} of {totals['requests']} requests failed ({rate:.2%} > "
        f"budget {budget:.2%}): {where}"
        if failed
        else None
    )
    return _undecided(measured, failed, reason, trust_failure=False)


def judge_no_5xx(measured: dict[str, Any]) -> Judgement:
    totals = measured["totals"]
    count = totals["status_5xx_run"]
    steps = measured["steps"]
    where = ", ".join(f"{s} {f['status_5xx']}" for s, f in steps.items() if f["status_5xx"])
    reason = (
        f"{count} of {totals['requests_run']} requests were answered 5xx ({where or 'ramp'})"
        if count
        else None
    )
    # A 5xx is the server's answer whatever the generator's state.
    return _undecided(measured, bool(count), reason, trust_failure=True)


def judge_throughput(measured: dict[str, Any]) -> Judgement:
    throughput = measured["throughput"]
    answered, required = throughput["answered_per_second"], throughput["required_per_second"]
    failed = answered < required
    reason = (
        f"{answered:g} journeys/s answered to their end < {required:g}/s required "
        f"({measured['workload']['arrivals_per_second']:g}/s offered by the profile)"
        if failed
        else None
    )
    doubts = list(measured["generator"]["inconclusive"])
    if failed and any(why.startswith(NOT_OFFERED) for why in doubts):
        # Journeys the generator did not start on time were never the server's to answer:
        # a shortfall then measures the generator as much as the server.
        return Judgement("inconclusive", f"{'; '.join(doubts)} (measured: {reason})")
    return _undecided(measured, failed, reason, trust_failure=False)


# --- evidence --------------------------------------------------------------------------------


def write_evidence(run: LocustRun, directory: Path, redactor: Redactor) -> list[str]:
    """Locust's CSV and HTML reports and the request records into `directory` (redacted);
    the names written, relative to the evidence directory."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    sources = [(run.work_dir / f"locust_{name}", f"locust_{name}") for name in LOCUST_FILES]
    sources.append((run.work_dir / "locust.html", "locust.html"))
    for source, name in sources:
        if source.is_file():
            text = source.read_text(encoding="utf-8", errors="replace")
            # CSV rows get the full redaction (credential fields in URLs, JWTs, ID numbers);
            # Locust's HTML page is a script bundle that pattern redaction would corrupt, so
            # it gets the credential values removed, and holds no request URL beyond the host.
            text = redactor.literal_secrets(text) if name.endswith(".html") else redactor.text(text)
            (directory / name).write_text(text, encoding="utf-8")
            written.append(f"{directory.name}/{name}")
    lines = ["started_at,step,response_ms,status,error"]
    for row in sorted((r for r in run.records if r[0] == "r"), key=lambda r: float(r[1])):
        error = "" if row[5] is None else '"' + str(row[5]).replace('"', "'") + '"'
        lines.append(f"{_iso(float(row[1]))},{row[2]},{row[3]},{row[4]},{error}")
    (directory / "requests.csv").write_text(redactor.text("\n".join(lines) + "\n"))
    written.append(f"{directory.name}/requests.csv")
    return written


def measure(
    target: Path,
    profile: TargetProfile,
    workload: Workload,
    targets: LoadTargets,
    *,
    evidence_dir: Path | None,
    redactor: Redactor,
    work_dir: Path | None = None,
    env: dict[str, str] | None = None,
    command_prefix: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One load run against the target: its figures, with Locust's files in the evidence."""
    with tempfile.TemporaryDirectory(prefix="zwfw-load-") as scratch:
        work = work_dir or Path(scratch)
        if progress is not None:
            progress(f"load: {workload.name} at {workload.arrivals_per_second:g}/s")
        run = run_locust(target, profile, workload, work, env=env, command_prefix=command_prefix)
        measured = figures(run, targets)
        measured["evidence"] = (
            write_evidence(run, evidence_dir / LOAD_EVIDENCE, redactor)
            if evidence_dir is not None
            else []
        )
    return measured
