"""One mutation worker: its own source copy and reference platform, running one mutant at a time.

A trial of a mutant, in order:

1. cosmic-ray applies the mutation to the worker's copy of ``src/zwfw`` (never the checkout:
   the harness and the other services keep importing the pristine code);
2. the mutated service of the province (the hub: the national one) is stopped, its SQLite
   database restored from the snapshot taken once the platform had started, and it starts
   again from the copy (``PYTHONPATH``, no bytecode written, so no stale ``.pyc`` is used);
   a service that does not answer ``/readyz`` makes the mutant *incompetent*;
3. ``zwfw certify`` (the configured ``test-command``) runs over the suite files of the tests
   that reach the mutated code: exit 1 *killed* (with the requirements that did not pass),
   exit 0 *survived*, past the timeout *timed out*;
4. the mutation is undone, the process stopped and its database restored again; the original
   starts before anything needs it (another service's mutant or a clean run).

A clean run is a certification over the same suites with every original running; the
distributor makes one after every batch, and one that fails invalidates the batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from zwfw.harness.mutation.attribution import Attribution, read_coverage, tests_of_report
from zwfw.harness.mutation.config import DistributorSettings
from zwfw.harness.mutation.launcher import TRACE_DIR_ENV, write_launcher
from zwfw.harness.mutation.mutants import Mutant
from zwfw.harness.mutation.tracing import PIDS_FILE

Outcome = Literal["killed", "survived", "timeout", "incompetent", "error", "not-covered"]
ZWFW = str(Path(sys.executable).with_name("zwfw"))
# Tokens the certification runs use outlive the longest run.
TOKEN_TTL = 3 * 3600


class WorkerError(RuntimeError):
    """The worker's platform cannot give a verdict (start-up failed, a clean run failed)."""


# Services whose stored state refers to another's: restoring the first restores the second.
_RESTORED_WITH: dict[str, tuple[str, ...]] = {"hall": ("hub",)}
# Tables a restore never rolls back. The IdP's signing keys: a trial's certification rotates
# the key (IC-ID-002), and the other services and the harness keep tokens signed by it (cached
# for hours), which a key store restored to before the rotation could no longer verify.
_KEPT_TABLES: dict[str, tuple[str, ...]] = {"identity": ("idn_signing_key",)}


def restore_sqlite(snapshot: Path, database: Path, kept: tuple[str, ...] = ()) -> None:
    """``database`` (its service stopped) back to ``snapshot``, but for the ``kept`` tables,
    whose rows stay as they are now."""
    saved = database.with_name(database.name + ".kept")
    if kept and database.exists():
        source, target = sqlite3.connect(database), sqlite3.connect(saved)
        try:
            source.backup(target)  # the write-ahead log's content included
        finally:
            source.close()
            target.close()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(snapshot, database)
    if not saved.exists():
        return
    connection = sqlite3.connect(database)
    try:
        connection.execute("ATTACH DATABASE ? AS kept", (str(saved),))
        with connection:
            for table in kept:
                connection.execute(f'DELETE FROM main."{table}"')
                connection.execute(f'INSERT INTO main."{table}" SELECT * FROM kept."{table}"')
        connection.execute("DETACH DATABASE kept")
    finally:
        connection.close()
        saved.unlink()


@dataclass
class CertifyRun:
    returncode: int | None  # None: timed out
    report: dict[str, Any] | None
    duration: float
    output: str

    @property
    def not_passed(self) -> list[str]:
        if self.report is None:
            return []
        return [
            r["id"] for r in self.report["requirements"] if r["in_scope"] and r["status"] != "pass"
        ]


@dataclass
class TrialResult:
    outcome: Outcome
    duration: float
    failed: list[str] = field(default_factory=list)
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "duration": round(self.duration, 2),
            "failed": self.failed,
            "detail": self.detail,
        }


def _tail(text: str, limit: int = 600) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-6:])[-limit:]


class Worker:
    """Use as a context manager; `trial`, `clean_run` and `attribution_run` from one thread."""

    def __init__(
        self,
        index: int,
        settings: DistributorSettings,
        *,
        root: Path,
        work_dir: Path,
        test_command: str,
        timeout: float,
    ) -> None:
        self.index = index
        self.settings = settings
        self.root = root
        self.dir = work_dir / f"worker-{index}"
        self.copy = self.dir / "src"
        self.test_command = test_command
        self.timeout = timeout
        self.platform: Any = None
        self._credentials: dict[str, str] = {}
        self._snapshots: dict[str, Path] = {}
        self._stopped: set[str] = set()  # services whose original is not running
        self._runs = 0

    # --- life cycle ----------------------------------------------------------------------

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from zwfw.reference import DEFAULT_PROVINCES, ReferencePlatform

        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        shutil.copytree(
            self.root / "src" / "zwfw",
            self.copy / "zwfw",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        self.mutant_launcher = write_launcher(self.dir / "serve-mutant", "mutant_main")
        self.traced_launcher = write_launcher(self.dir / "serve-traced", "traced_main")
        region = self.settings.region
        ordered = sorted(DEFAULT_PROVINCES, key=lambda spec: spec.region_code != region)
        if ordered[0].region_code != region:
            raise WorkerError(f"region {region} is not a province of the reference platform")
        self.platform = ReferencePlatform(
            self.dir / "platform",
            ordered[: self.settings.provinces],
            ready_timeout=self.settings.ready_timeout,
            token_ttl=TOKEN_TTL,
        )
        try:
            self.platform.start()
        except Exception as error:
            raise WorkerError(
                f"worker {self.index}: the reference platform did not start: {error}"
            ) from None
        for service in ("identity", "hall", "elicense", "eseal", "hub"):
            self._snapshots[service] = self._snapshot(service)
        self._credentials = self.platform.credentials(region)

    def stop(self) -> None:
        if self.platform is not None:
            self.platform.stop()
            self.platform = None

    # --- processes and databases ---------------------------------------------------------

    def process(self, service: str) -> Any:
        region = "national" if service == "hub" else self.settings.region
        return self.platform.process(region, service)

    def _database(self, service: str) -> Path:
        values = yaml.safe_load(self.process(service).config.read_text(encoding="utf-8"))
        url = str(values["database_url"])
        if not url.startswith("sqlite:///"):
            raise WorkerError(f"{service}: the reference platform's database is not SQLite")
        return Path(url.removeprefix("sqlite:///"))

    def _snapshot(self, service: str) -> Path:
        database = self._database(service)
        snapshot = self.dir / "snapshots" / database.name
        snapshot.parent.mkdir(exist_ok=True)
        # SQLite's online backup: consistent while the service runs.
        source, target = sqlite3.connect(database), sqlite3.connect(snapshot)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return snapshot

    def _restore(self, service: str) -> None:
        self._restore_database(service)
        # A hall restored to its snapshot numbers its cases from there again: the hub must
        # forget their earlier reports too, or the hall's next case meets an old one there.
        for partner in _RESTORED_WITH.get(service, ()):
            if partner in self._stopped:
                self._restore_database(partner)
                continue
            self.process(partner).stop()
            self._restore_database(partner)
            self._start_original(partner)

    def _restore_database(self, service: str) -> None:
        restore_sqlite(
            self._snapshots[service], self._database(service), _KEPT_TABLES.get(service, ())
        )

    def _start_original(self, service: str) -> None:
        process = self.process(service)
        process.start(self.platform.zwfw, self.settings.ready_timeout)
        self._stopped.discard(service)

    def originals(self) -> None:
        """Every service of the province runs its original code."""
        for service in sorted(self._stopped):
            self._start_original(service)

    def reset(self) -> None:
        """Every service of the province back to its state after start-up (snapshots)."""
        for service in self._snapshots:
            self.process(service).stop()
            self._restore(service)
            self._stopped.add(service)
        self.originals()

    def refresh_credentials(self) -> None:
        self._credentials = self.platform.credentials(self.settings.region)

    # --- certification -------------------------------------------------------------------

    def certify(self, suites: list[str], *, env: dict[str, str] | None = None) -> CertifyRun:
        self._runs += 1
        out = self.dir / "reports" / f"run-{self._runs:05d}"
        out.parent.mkdir(exist_ok=True)
        fields = {
            "zwfw": ZWFW,
            "profile": str(self.platform.profile_path(self.settings.region)),
            "out": str(out),
            "suites": ",".join(suites),
        }
        command = [part.format(**fields) for part in shlex.split(self.test_command)]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_REF_")}
        environment.update(self._credentials)
        environment["ZWFW_HARNESS_HOME"] = str(self.dir / "harness")
        environment.update(env or {})
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=self.root,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=self.timeout)
            returncode: int | None = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            returncode = None
        duration = time.monotonic() - started
        report_file = out / "report.json"
        report = (
            json.loads(report_file.read_text(encoding="utf-8")) if report_file.is_file() else None
        )
        shutil.rmtree(out, ignore_errors=True)
        return CertifyRun(returncode, report, duration, output or "")

    def clean_run(self, suites: list[str]) -> CertifyRun:
        self.originals()
        self.refresh_credentials()
        return self.certify(suites)

    def trial(self, mutant: Mutant, suites: list[str]) -> TrialResult:
        from cosmic_ray.mutating import use_mutation
        from cosmic_ray.plugins import get_operator

        started = time.monotonic()
        service = mutant.service
        for other in sorted(self._stopped - {service}):
            self._start_original(other)
        process = self.process(service)
        module = self.copy / Path(mutant.path).relative_to("src")
        operator = get_operator(mutant.operator)()
        with contextlib.ExitStack() as applied:
            try:
                _, mutated = applied.enter_context(
                    use_mutation(module, operator, mutant.occurrence)
                )
            except Exception as error:
                # cosmic-ray's operator fails on some forms (an except clause's tuple): the
                # file is restored and there is no mutant to run.
                detail = f"cosmic-ray cannot apply it: {type(error).__name__}: {error}"
                return TrialResult("error", 0.0, detail=_tail(detail))
            if mutated is None:
                return TrialResult("error", 0.0, detail="cosmic-ray made no mutation here")
            shutil.rmtree(module.parent / "__pycache__", ignore_errors=True)
            process.stop()
            self._stopped.add(service)
            self._restore(service)
            original_env = dict(process.env)
            process.env = {
                **original_env,
                "PYTHONPATH": str(self.copy),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            try:
                try:
                    process.start(str(self.mutant_launcher), self.settings.ready_timeout)
                except Exception as error:
                    return TrialResult(
                        "incompetent", time.monotonic() - started, detail=_tail(str(error))
                    )
                run = self.certify(suites)
                alive = process.running
            finally:
                process.stop()
                process.env = original_env
                self._restore(service)
        elapsed = time.monotonic() - started
        if run.returncode is None:
            return TrialResult("timeout", elapsed, detail=f"no verdict within {self.timeout:.0f}s")
        if run.returncode == 0:
            return TrialResult("survived", elapsed)
        if run.returncode == 1 and run.report is not None:
            return TrialResult("killed", elapsed, failed=run.not_passed)
        if not alive:
            return TrialResult(
                "incompetent",
                elapsed,
                detail=f"the service exited during the run: {_tail(run.output)}",
            )
        return TrialResult(
            "error", elapsed, detail=f"certify exit {run.returncode}: {_tail(run.output)}"
        )

    # --- attribution ---------------------------------------------------------------------

    def attribution_run(self, services: list[str], suites: list[str]) -> Attribution:
        """Certify with `services` under coverage, each line labelled with its tests."""
        trace_dir = self.dir / "trace"
        shutil.rmtree(trace_dir, ignore_errors=True)
        trace_dir.mkdir()
        self.originals()
        processes = [self.process(service) for service in services]
        saved = {id(p): dict(p.env) for p in processes}
        try:
            for process in processes:
                process.stop()
                process.env = {**process.env, TRACE_DIR_ENV: str(trace_dir)}
                process.start(str(self.traced_launcher), self.settings.ready_timeout)
            pids = [str(p.process.pid) for p in processes if p.process is not None]
            (trace_dir / PIDS_FILE).write_text("\n".join(pids) + "\n", encoding="utf-8")
            self.refresh_credentials()
            run = self.certify(
                suites,
                env={
                    "PYTEST_PLUGINS": "zwfw.harness.mutation.tracing",
                    TRACE_DIR_ENV: str(trace_dir),
                },
            )
        finally:
            for process in processes:
                process.stop()  # coverage data is written as the process exits
                process.env = saved[id(process)]
        # Every traced process is stopped: their databases go back together.
        for service in services:
            self._restore_database(service)
        for service in services:
            self._start_original(service)
        if run.returncode != 0 or run.report is None:
            raise WorkerError(
                "the suites do not pass on the reference platform (attribution run, exit "
                f"{run.returncode}): {', '.join(run.not_passed) or _tail(run.output)}"
            )
        return Attribution(read_coverage(trace_dir, self.root), tests_of_report(run.report))
