"""Locust entry point of the load suite; the harness runs it headless in its own processes
(``zwfw.harness.loadrun``), never inside the harness's or pytest's process.

The harness passes, in the environment:

- ``ZWFW_LOAD_TARGET``: the target profile (base URLs, TLS trust, credentials named by
  environment variables, which the generator processes inherit);
- ``ZWFW_LOAD_WORKLOAD``: the workload profile (``loadtests/profiles/*.yaml``);
- ``ZWFW_LOAD_RECORDS``: a directory where each generator process writes its records;
- ``ZWFW_LOAD_PROCESSES``: how many generator processes share the arrivals.

Open model: the profile's arrivals are laid out in advance (a linear ramp, then a constant
rate) and dealt round-robin to the generator processes; each arrival is taken by a free user
of the pool, which waits for the arrival's due time. A slow server makes journeys last longer,
not arrivals rarer; an arrival no user could start on time is recorded late. Closed model:
every user runs journeys back to back with the profile's think time.

Each generator process writes JSON lines: one per request (``r``), per journey (``j``), and
per second the generator's worst event-loop lag (``l``).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from journeys import JOURNEYS, Shared, SignInBudget, StepFailed
from locust import FastHttpUser, events, task
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from zwfw.harness.profile import SecretUnavailable, load_profile
from zwfw.harness.workload import load_workload, mix_cycle

TARGET = load_profile(os.environ["ZWFW_LOAD_TARGET"])
WORKLOAD = load_workload(os.environ["ZWFW_LOAD_WORKLOAD"])
RECORDS = Path(os.environ["ZWFW_LOAD_RECORDS"])
PROCESSES = max(1, int(os.environ.get("ZWFW_LOAD_PROCESSES", "1")))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


# Only the profile's own services are ever sent a request.
ALLOWED = frozenset(_origin(url) for url in TARGET.services.configured().values())


def _ssl_context(cafile: str | None = None, **_: Any) -> Any:
    """The profile's trust (CA bundle, client certificate), made after gevent patched `ssl`;
    the HTTP client's own CA file is ignored: the profile decides whom to trust."""
    return TARGET.tls.ssl_context()


def _secret(name: str) -> str:
    try:
        return TARGET.secret(name)
    except SecretUnavailable as error:
        raise StepFailed(str(error)) from None


class Recorder:
    """This process's records, written as JSON lines (opened after the fork)."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.file: Any = None

    def add(self, row: list[Any]) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        if not self.rows:
            return
        if self.file is None:
            RECORDS.mkdir(parents=True, exist_ok=True)
            self.file = open(RECORDS / f"records-{os.getpid()}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        rows, self.rows = self.rows, []
        self.file.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        self.file.flush()


class Arrivals:
    """The open model's schedule for this process: every `count`-th arrival from `index`."""

    def __init__(self, index: int, count: int) -> None:
        self.end = WORKLOAD.run_seconds
        self.cycle = mix_cycle(dict(WORKLOAD.mix))
        self.next = index
        self.count = count
        self.t0: float | None = None

    def claim(self) -> tuple[float, str] | None:
        if self.t0 is None:
            self.t0 = time.time()
        n = self.next
        offset = WORKLOAD.arrival_offset(n)
        if offset >= self.end:
            return None
        self.next += self.count
        return self.t0 + offset, self.cycle[n % len(self.cycle)]


class Generator:
    """State of one generator process."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.arrivals: Arrivals | None = None
        self.in_flight = 0
        self.closed_counter = 0
        self.shared = Shared(TARGET, _secret, SignInBudget(WORKLOAD.signins_per_minute / PROCESSES))
        self.monitor: Any = None
        self.runner: Any = None
        self.started_at: float | None = None
        self.done = False

    def start(self, runner: Any, index: int) -> None:
        self.runner = runner
        self.started_at = time.time()
        if self.arrivals is None:
            self.arrivals = Arrivals(index, PROCESSES)
        if self.monitor is None:
            self.monitor = gevent.spawn(self._monitor)

    def _finished(self) -> bool:
        """The schedule is over and no journey is running: nothing more to measure."""
        t0 = self.arrivals.t0 if self.arrivals is not None else None
        if WORKLOAD.model == "closed" or t0 is None:
            t0 = self.started_at
        return (
            t0 is not None
            and time.time() > t0 + WORKLOAD.run_seconds + 0.5
            and (WORKLOAD.model == "closed" or self.in_flight == 0)
        )

    def _report_done(self) -> None:
        # Locust's own stop would cut journeys still running (its stop timeout is not kept
        # on a distributed quit): the run ends once every process has drained.
        self.done = True
        self.recorder.flush()
        if isinstance(self.runner, WorkerRunner):
            # Locust's id of this worker process (host name and a UUID): process ids repeat
            # across generator hosts and pods.
            self.runner.send_message("zwfw_done", self.runner.client_id)
        elif isinstance(self.runner, LocalRunner):
            gevent.spawn(self.runner.quit)

    def _monitor(self) -> None:
        interval = 0.1
        worst = 0.0
        second = math.floor(time.time())
        while True:
            before = time.perf_counter()
            gevent.sleep(interval)
            worst = max(worst, (time.perf_counter() - before - interval) * 1000.0)
            now = time.time()
            if math.floor(now) != second:
                self.recorder.add(["l", second, round(worst, 3)])
                self.recorder.flush()
                worst, second = 0.0, math.floor(now)
            if not self.done and self._finished():
                self._report_done()


GENERATOR = Generator()


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: Any = None,
    exception: Any = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    status = int(getattr(response, "status_code", 0) or 0) if response is not None else 0
    started = start_time if start_time is not None else time.time() - response_time / 1000.0
    error = None if exception is None else " ".join(str(exception).split())[:200]
    GENERATOR.recorder.add(
        ["r", round(started, 6), name, round(float(response_time), 3), status, error]
    )


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    done: set[str] = set()

    def on_done(msg: Any, **_: Any) -> None:
        done.add(str(msg.data))
        if len(done) >= PROCESSES:
            gevent.spawn(runner.quit)

    runner.register_message("zwfw_done", on_done)


@events.test_start.add_listener
def _on_start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return
    index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
    GENERATOR.start(runner, max(0, index))


@events.test_stop.add_listener
def _on_stop(environment: Any, **_: Any) -> None:
    GENERATOR.recorder.flush()


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    GENERATOR.recorder.flush()


class Refused(Exception):
    """A request for a host the target profile does not list."""


class Visitor(FastHttpUser):
    """One user of the pool: takes arrivals (open model) or runs journeys (closed model)."""

    host = TARGET.base_url("hall") or next(iter(TARGET.services.configured().values()), None)
    network_timeout = TARGET.timeout_seconds
    connection_timeout = min(TARGET.timeout_seconds, 10.0)
    max_retries = 0
    insecure = False

    ssl_context_factory = staticmethod(_ssl_context)

    # --- what journeys.Visit asks for ---------------------------------------------------

    def call(
        self, method: str, url: str, step: str, expect: tuple[int, ...], **options: Any
    ) -> Any:
        if _origin(url) not in ALLOWED:
            error = Refused(f"{urlsplit(url).netloc} is not a service of the target profile")
            self.environment.events.request.fire(
                request_type=method, name=step, response_time=0.0, response_length=0,
                response=None, exception=error, context={}, start_time=time.time(), url=url,
            )  # fmt: skip
            raise StepFailed(str(error))
        with self.client.request(method, url, name=step, catch_response=True, **options) as answer:
            status = int(answer.status_code or 0)
            if status in expect:
                answer.success()
                problem = None
            else:
                error = getattr(answer, "error", None)
                problem = f"HTTP {status}" if status else f"no answer: {error}"
                answer.failure(problem)
        if problem is not None:
            raise StepFailed(f"{step}: {problem}")
        return answer

    def clear_cookies(self) -> None:
        self.client.cookiejar.clear()

    def acknowledged(self, kind: str, key: str, subject: str) -> None:
        # Read back after a fault run (zwfw.harness.faults): acknowledged, found, lost.
        GENERATOR.recorder.add(["w", round(time.time(), 6), kind, key, subject])

    # --- journeys ------------------------------------------------------------------------

    def _journey(self, kind: str, due: float) -> None:
        started = time.time()
        GENERATOR.in_flight += 1
        outcome, step, reason = "ok", None, None
        try:
            JOURNEYS[kind](self, GENERATOR.shared)
        except StepFailed as failure:
            reason = str(failure)
            head = reason.split(":", 1)[0]
            step = head if ":" in reason and " " not in head else None
            outcome = "broken" if "no answer" in reason else "failed"
        except Exception as error:  # a journey bug must show in the figures, not kill the user
            outcome, reason = "failed", f"{type(error).__name__}: {error}"[:200]
        finally:
            GENERATOR.in_flight -= 1
        GENERATOR.recorder.add(
            ["j", kind, round(due, 6), round(started, 6), round(time.time(), 6), outcome, step,
             reason]
        )  # fmt: skip

    @task
    def visit(self) -> None:
        if WORKLOAD.model == "closed":
            generator = GENERATOR
            cycle = mix_cycle(dict(WORKLOAD.mix))
            kind = cycle[generator.closed_counter % len(cycle)]
            generator.closed_counter += 1
            now = time.time()
            self._journey(kind, now)
            low, high = WORKLOAD.think_seconds
            gevent.sleep(random.uniform(low, high))
            return
        arrivals = GENERATOR.arrivals
        if arrivals is None:
            gevent.sleep(0.05)
            return
        claimed = arrivals.claim()
        if claimed is None:
            gevent.sleep(1.0)  # the schedule is over; the run ends soon
            return
        due, kind = claimed
        delay = due - time.time()
        if delay > 0:
            gevent.sleep(delay)
        self._journey(kind, due)
