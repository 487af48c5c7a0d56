"""cosmic-ray distributor ``zwfw-reference``: runs mutants against reference platforms.

``cosmic-ray exec CONFIG SESSION`` (or ``zwfw mutation run``) hands it the pending work items;
it starts the configured number of workers (`zwfw.harness.mutation.worker`), each with its own
source copy and reference platform, and

1. certifies once with the services under coverage (the attribution run, on worker 0): it
   must pass, and it says which tests reach which mutant (`attribution`);
2. records mutants no test executes as survived without running them;
3. deals the others out in batches of one service's mutants (services interleaved, the
   session's order kept); after each batch the worker makes a clean run over the batch's
   suites. Results reach the session only once that clean run passed: a failing one means the
   suites or the platform misbehaved, so the batch is run again on a reset platform (every
   database restored), and a second failure stops the run;
4. stops dealing batches once the time budget is spent (the rest stays pending: running the
   session again continues it).

Each result's ``output`` is a JSON document: the mutant, the tests and requirements that reach
it, the suites run, the outcome (killed, survived, timeout, incompetent, error, not-covered),
the requirements that failed and the worker's time.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmic_ray.distribution.distributor import Distributor
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkItem, WorkResult

from zwfw.harness.mutation.attribution import Attribution, Reach
from zwfw.harness.mutation.config import DistributorSettings
from zwfw.harness.mutation.mutants import Mutant, RawMutation, name_mutants
from zwfw.harness.mutation.worker import TrialResult, Worker, WorkerError

# Keys `zwfw mutation run` adds to the distributor's section for one run.
RUNTIME_KEYS = ("root", "session-dir", "plan", "suites")
_TEST_OUTCOME = {
    "killed": TestOutcome.KILLED,
    "timeout": TestOutcome.KILLED,
    "survived": TestOutcome.SURVIVED,
    "not-covered": TestOutcome.SURVIVED,
    "incompetent": TestOutcome.INCOMPETENT,
    "error": TestOutcome.INCOMPETENT,
}


def raw_mutation(item: WorkItem, root: Path) -> RawMutation:
    if len(item.mutations) != 1:
        raise WorkerError(f"work item {item.job_id}: only first-order mutants are supported")
    spec = item.mutations[0]
    path = Path(spec.module_path)
    if path.is_absolute():
        resolved = path.resolve()
        if resolved.is_relative_to(root):
            path = resolved.relative_to(root)
        elif "src" in path.parts:
            # A session made in another checkout (a copy): the same module under src/.
            path = Path(*path.parts[path.parts.index("src") :])
    return RawMutation(
        job_id=item.job_id,
        path=path.as_posix(),
        operator=spec.operator_name,
        occurrence=spec.occurrence,
        start=tuple(spec.start_pos),  # type: ignore[arg-type]
        end=tuple(spec.end_pos),  # type: ignore[arg-type]
    )


def work_result(mutant: Mutant, reach: Reach, trial: TrialResult, worker: int | None) -> WorkResult:
    document = {
        # Where, for cosmic-ray's own reports; the stable identity is the report's to compute
        # (its ordinal needs every mutant of the module, not only the pending ones).
        "mutant": {k: mutant.describe()[k] for k in ("path", "line", "function", "operator")},
        "tests": list(reach.tests),
        "requirements": list(reach.requirements),
        "suites": list(reach.suites),
        "worker": worker,
        **trial.as_dict(),
    }
    return WorkResult(
        worker_outcome=WorkerOutcome.NORMAL,
        test_outcome=_TEST_OUTCOME[trial.outcome],
        output=json.dumps(document, ensure_ascii=False),
    )


@dataclass
class _Batch:
    service: str
    mutants: list[tuple[Mutant, Reach]]
    attempt: int = 1

    @property
    def suites(self) -> list[str]:
        return sorted({suite for _, reach in self.mutants for suite in reach.suites})


def batches(planned: Iterable[tuple[Mutant, Reach]], size: int) -> list[_Batch]:
    """Consecutive mutants of one service, `size` at most; services interleaved."""
    per_service: dict[str, list[tuple[Mutant, Reach]]] = defaultdict(list)
    for mutant, reach in planned:
        per_service[mutant.service].append((mutant, reach))
    chunks = {
        service: [_Batch(service, items[i : i + size]) for i in range(0, len(items), size)]
        for service, items in per_service.items()
    }
    order: list[_Batch] = []
    while any(chunks.values()):
        for service in sorted(chunks):
            if chunks[service]:
                order.append(chunks[service].pop(0))
    return order


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ReferenceDistributor(Distributor):
    def __call__(
        self,
        pending_work: Iterable[WorkItem],
        test_command: str,
        timeout: float,
        distributor_config: Any,
        on_task_complete: Callable[[str, WorkResult], None],
    ) -> None:
        config = dict(distributor_config)
        root = Path(config.pop("root", Path.cwd())).resolve()
        session_dir = Path(config.pop("session-dir", root / "out" / "mutation"))
        plan_file = config.pop("plan", None)
        suites = list(config.pop("suites", None) or ["conformance"])
        settings = DistributorSettings.model_validate(config)
        items = list(pending_work)
        mutants = {m.job_id: m for m in name_mutants((raw_mutation(i, root) for i in items), root)}
        order = list(mutants)
        if plan_file is not None:
            planned = json.loads(Path(plan_file).read_text(encoding="utf-8"))
            order = [job for job in planned if job in mutants]
        if not order:
            return
        run = _Run(settings, root, session_dir, test_command, timeout, on_task_complete)
        run.execute([mutants[job] for job in order], suites)


class _Run:
    def __init__(
        self,
        settings: DistributorSettings,
        root: Path,
        session_dir: Path,
        test_command: str,
        timeout: float,
        on_task_complete: Callable[[str, WorkResult], None],
    ) -> None:
        self.settings = settings
        self.root = root
        self.session_dir = session_dir
        self.test_command = test_command
        self.timeout = timeout
        self.on_task_complete = on_task_complete
        self.results: queue.Queue[tuple[str, WorkResult] | None] = queue.Queue()
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.done = 0
        self.total = 0
        self._count = threading.Lock()

    def execute(self, order: list[Mutant], suites: list[str]) -> None:
        started = time.monotonic()
        deadline = (
            started + self.settings.budget_minutes * 60 if self.settings.budget_minutes else None
        )
        work_dir = (self.root / self.settings.work_dir).resolve()
        workers = [
            Worker(
                index,
                self.settings,
                root=self.root,
                work_dir=work_dir,
                test_command=self.test_command,
                timeout=self.timeout,
            )
            for index in range(min(self.settings.workers, max(1, len(order))))
        ]
        say(f"mutation: starting {len(workers)} worker(s), each with its own reference platform")
        attribution: list[Attribution] = []
        services = sorted({m.service for m in order})

        def attribute() -> None:
            say(
                f"mutation: attribution run ({', '.join(services)} under coverage; "
                f"{', '.join(suites)})"
            )
            attribution.append(workers[0].attribution_run(services, suites))

        def start_others() -> None:
            for worker in workers[1:]:
                worker.start()

        try:
            # Platforms start one after another (their IdPs are bootstrapped in this process,
            # and Alembic's migration context is process-wide); the first one's attribution
            # run overlaps the others' start.
            workers[0].start()
            self._parallel([attribute, start_others])
            self.session_dir.mkdir(parents=True, exist_ok=True)
            attribution[0].save(self.session_dir / "attribution.json")
            planned = self._plan(order, attribution[0])
            work = queue.Queue[_Batch]()
            for batch in batches(planned, self.settings.batch):
                work.put(batch)
            threads = [
                threading.Thread(target=self._work, args=(w, work, deadline), daemon=True)
                for w in workers
            ]
            for thread in threads:
                thread.start()
            self._drain(threads)
        finally:
            for worker in workers:
                worker.stop()
        if self.failure is not None:
            raise self.failure
        say(
            f"mutation: {self.done} of {self.total} mutants done "
            f"in {time.monotonic() - started:.0f}s"
        )

    def _parallel(self, calls: list[Callable[[], None]]) -> None:
        errors: list[BaseException] = []

        def call(fn: Callable[[], None]) -> None:
            try:
                fn()
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=call, args=(fn,)) for fn in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _plan(self, order: list[Mutant], attribution: Attribution) -> list[tuple[Mutant, Reach]]:
        self.total = len(order)
        planned = []
        for mutant in order:
            reach = attribution.reach(mutant, self.root)
            if reach.executed and reach.tests:
                planned.append((mutant, reach))
                continue
            why = "no conformance test executes this line"
            self._report(mutant, reach, TrialResult("not-covered", 0.0, detail=why), None)
            self._flush()
        return planned

    def _report(self, mutant: Mutant, reach: Reach, trial: TrialResult, worker: int | None) -> None:
        self.results.put((mutant.job_id, work_result(mutant, reach, trial, worker)))
        with self._count:
            self.done += 1
        failed = f" ({', '.join(trial.failed[:4])})" if trial.failed else ""
        say(
            f"[{self.done}/{self.total}] {trial.outcome:<11} {mutant.key} "
            f"line {mutant.line}{failed} {trial.duration:.1f}s"
        )

    def _flush(self) -> None:
        while True:
            try:
                entry = self.results.get_nowait()
            except queue.Empty:
                return
            if entry is not None:
                self.on_task_complete(*entry)

    def _drain(self, threads: list[threading.Thread]) -> None:
        # Session writes stay on this thread (the session database is not shared).
        while any(thread.is_alive() for thread in threads):
            try:
                entry = self.results.get(timeout=0.5)
            except queue.Empty:
                continue
            if entry is not None:
                self.on_task_complete(*entry)
        self._flush()

    def _work(self, worker: Worker, work: queue.Queue[_Batch], deadline: float | None) -> None:
        try:
            while not self.stop.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    say(f"mutation: worker {worker.index}: time budget spent")
                    return
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                self._batch(worker, batch, work)
        except BaseException as error:
            self.failure = self.failure or error
            self.stop.set()

    def _batch(self, worker: Worker, batch: _Batch, work: queue.Queue[_Batch]) -> None:
        trials = []
        for mutant, reach in batch.mutants:
            if self.stop.is_set():
                return
            trials.append((mutant, reach, worker.trial(mutant, list(reach.suites))))
        clean = worker.clean_run(batch.suites)
        if clean.returncode == 0:
            for mutant, reach, trial in trials:
                self._report(mutant, reach, trial, worker.index)
            return
        said = ", ".join(clean.not_passed) or (clean.output.strip().splitlines() or ["?"])[-1]
        if batch.attempt > 1:
            raise WorkerError(
                f"worker {worker.index}: the clean run after a {batch.service} batch failed twice "
                f"({said}): the suites are flaky or the platform does not recover"
            )
        say(
            f"mutation: worker {worker.index}: clean run failed after a {batch.service} batch "
            f"({said}); batch invalidated, platform reset, batch queued again"
        )
        worker.reset()
        batch.attempt += 1
        work.put(batch)
