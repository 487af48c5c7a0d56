"""Driving pytest in-process over the suites: a certification run, or a collection for coverage."""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from zwfw.harness.errors import HarnessConfigError, SuiteError, TargetUnreachable
from zwfw.harness.evidence import BROWSER_EVIDENCE, EVIDENCE_DIR, latencies
from zwfw.harness.htmlreport import write_html
from zwfw.harness.junit import write_junit
from zwfw.harness.profile import TargetProfile, load_profile
from zwfw.harness.pytest_plugin import (
    OPT_IN_SUITES,
    SUITE_ALIASES,
    SUITE_NAMES,
    HarnessRun,
    harness_run,
)
from zwfw.harness.requirements import Catalog, conformance_dir, load_catalog
from zwfw.harness.results import TestRecord
from zwfw.harness.seal import HarnessSeal, load_seal
from zwfw.harness.signing import CHAIN, MANIFEST, SIGNATURE, seal_report
from zwfw.harness.waivers import load_waivers


def suites_root() -> Path:
    """The directory holding the suites (the checkout root)."""
    return conformance_dir().parent


def suite_dir(name: str) -> Path:
    return conformance_dir() if name == "conformance" else suites_root() / name


def resolve_suites(names: Sequence[str] = ()) -> list[Path]:
    """Paths of the named suites (`conformance`, `security`, `loadtests` alias `load`, or
    `suite/sub/dir`).

    With no names, every suite that exists but the opt-in ones (the load suite).
    """
    if not names:
        found = [
            suite_dir(name)
            for name in SUITE_NAMES
            if name not in OPT_IN_SUITES and suite_dir(name).is_dir()
        ]
        if not found:
            raise SuiteError(f"no suite found under {suites_root()}")
        return found
    paths: list[Path] = []
    for name in names:
        head, _, rest = name.strip("/").partition("/")
        head = SUITE_ALIASES.get(head, head)
        if head not in SUITE_NAMES:
            known = ", ".join([*SUITE_NAMES, *(f"{a} (= {n})" for a, n in SUITE_ALIASES.items())])
            raise SuiteError(f"unknown suite {name!r}; suites are {known}")
        base = suite_dir(head)
        path = (base / rest).resolve() if rest else base
        if not path.is_relative_to(base):
            raise SuiteError(f"suite {name!r} points outside {base}")
        if not path.exists():
            raise SuiteError(f"suite {name!r}: {path} does not exist")
        paths.append(path)
    return paths


def _every_suite() -> list[Path]:
    return [*resolve_suites(), *(suite_dir(n) for n in OPT_IN_SUITES if suite_dir(n).is_dir())]


def run_scope(paths: Sequence[Path]) -> tuple[bool, list[str]]:
    """Whether a run over `paths` is partial, and the opt-in suites a complete one leaves out.

    Complete: every default suite, whole, and nothing but whole suites.
    """
    selected = set(paths)
    whole = {suite_dir(name) for name in SUITE_NAMES}
    partial = not set(resolve_suites()) <= selected or not selected <= whole
    without = [] if partial else [n for n in OPT_IN_SUITES if suite_dir(n) not in selected]
    return partial, without


class _Driver:
    """Plugin object of the driving code: finds the session's state, relays progress."""

    def __init__(
        self,
        progress: Callable[[TestRecord], None] | None,
        collected: Callable[[int], None] | None = None,
    ) -> None:
        self.progress = progress
        self.collected = collected
        self.config: pytest.Config | None = None
        self.stderr = io.StringIO()

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        run = self.run
        if self.collected is not None and run is not None:
            self.collected(len(run.checks))

    def pytest_zwfw_test_recorded(self, record: TestRecord) -> None:
        if self.progress is not None:
            self.progress(record)

    @property
    def run(self) -> HarnessRun | None:
        return harness_run(self.config) if self.config is not None else None


def _pytest_args(root: Path) -> list[str]:
    return [
        # Only the harness's own plugin, by its entry point name. Other installed pytest plugins
        # (hypothesis, schemathesis, anyio, ...) are nothing the suites use as plugins; loading
        # them, and rewriting the assertions of their packages, took a few seconds per run.
        "--disable-plugin-autoload",
        "-p",
        "zwfw",
        "-p",
        "no:cacheprovider",
        # The harness prints its own progress and verdicts.
        "-p",
        "no:terminal",
        "--rootdir",
        str(root),
        # The project's own pytest settings are for tests/, not for suites.
        "-o",
        "addopts=",
        "--strict-markers",
        "--import-mode=importlib",
    ]


def _run_pytest(args: list[str], driver: _Driver, root: Path) -> int:
    before = set(sys.modules)
    # pytest prints usage and internal errors itself; the harness reports them in one line.
    driver.stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(driver.stderr):
            return int(pytest.main(args, plugins=[driver]))
    finally:
        # Suite modules must be imported afresh by the next run in this process; libraries
        # and the project's own package stay (a virtualenv inside the checkout is under root
        # too), or modules imported before would hold classes their new copies do not know.
        kept = (Path(sys.prefix).resolve(), (root / "src").resolve())
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None)
            if not module_file:
                continue
            where = Path(module_file).resolve()
            if where.is_relative_to(root) and not any(where.is_relative_to(k) for k in kept):
                del sys.modules[name]


def _stop_on_problems(driver: _Driver, exit_code: int) -> HarnessRun:
    run = driver.run
    if run is None:
        raise SuiteError(f"pytest could not start (exit code {exit_code})")
    if run.problems:
        more = f" (and {len(run.problems) - 1} more)" if len(run.problems) > 1 else ""
        raise SuiteError(run.problems[0] + more)
    if exit_code in (
        pytest.ExitCode.INTERRUPTED,
        pytest.ExitCode.INTERNAL_ERROR,
        pytest.ExitCode.USAGE_ERROR,
    ):
        said = [line.strip() for line in driver.stderr.getvalue().splitlines() if line.strip()]
        detail = f": {said[-1]}" if said else ""
        raise SuiteError(f"the suites did not run ({pytest.ExitCode(exit_code).name}){detail}")
    return run


# Everything a report directory may hold; anything else there stops a run (exit 2) rather
# than being deleted or sealed into someone's report.
REPORT_FILES = (
    "report.json",
    "results.json",
    "junit.xml",
    "report.html",
    MANIFEST,
    SIGNATURE,
    CHAIN,
)


@dataclass(frozen=True)
class Certification:
    profile: TargetProfile
    document: dict[str, Any]
    out_dir: Path
    seal: HarnessSeal | None

    @property
    def certified(self) -> bool:
        return bool(self.document["certified"])

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.json"

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.json"


def check_reachable(profile: TargetProfile) -> None:
    """Refuse a run whose listed services do not accept connections (a configuration error).

    Only the TCP connection is tried: TLS and HTTP problems are the target's to answer for in
    the checks themselves.
    """
    for service, url in profile.services.configured().items():
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection(
                (parts.hostname, port), timeout=min(profile.timeout_seconds, 10.0)
            ):
                pass
        except OSError as error:
            why = error.strerror or type(error).__name__
            raise TargetUnreachable(f"target unreachable: {service} at {url}: {why}") from None


def prepare_out_dir(out_dir: Path) -> None:
    """Make `out_dir` ready for a new report: create it, or clear the previous report in it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise HarnessConfigError(f"--out {out_dir}: exists and is not a directory")
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        return
    strangers = []
    for entry in out_dir.iterdir():
        if entry.name == EVIDENCE_DIR and entry.is_dir() and not entry.is_symlink():
            strangers += [
                f"{EVIDENCE_DIR}/{item.name}"
                for item in entry.iterdir()
                if not (item.is_file() and item.suffix == ".json")
                and not _load_evidence(item)
                and not _browser_evidence(item)
            ]
        elif entry.name not in REPORT_FILES or not entry.is_file() or entry.is_symlink():
            strangers.append(entry.name)
    if strangers:
        raise HarnessConfigError(
            f"--out {out_dir}: holds files that are not part of a report ({strangers[0]}); "
            "use an empty or a previous report directory"
        )
    for name in REPORT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    if (out_dir / EVIDENCE_DIR).is_dir():
        shutil.rmtree(out_dir / EVIDENCE_DIR)


def _browser_evidence(entry: Path) -> bool:
    """The security suite's screenshots of the sign-in pages (PNG files only)."""
    return (
        entry.name == BROWSER_EVIDENCE
        and entry.is_dir()
        and not entry.is_symlink()
        and all(
            item.is_file() and not item.is_symlink() and item.suffix == ".png"
            for item in entry.iterdir()
        )
    )


def _load_evidence(entry: Path) -> bool:
    """The load suite's evidence directory (Locust's CSV and HTML, the request records)."""
    from zwfw.harness.loadrun import LOAD_EVIDENCE

    return (
        entry.name == LOAD_EVIDENCE
        and entry.is_dir()
        and not entry.is_symlink()
        and all(item.is_file() and not item.is_symlink() for item in entry.iterdir())
    )


def _latencies(document: dict[str, Any], evidence_dir: Path) -> dict[str, list[float]]:
    return {
        requirement["id"]: [
            value for name in requirement["evidence"] for value in latencies(evidence_dir, name)
        ]
        for requirement in document["requirements"]
    }


def certify(
    target: Path,
    out_dir: Path,
    suites: Sequence[str] = (),
    *,
    waivers: Path | None = None,
    progress: Callable[[TestRecord], None] | None = None,
    collected: Callable[[int], None] | None = None,
    sign: bool = True,
    workload: Path | None = None,
) -> Certification:
    """Run the suites against `target` and write the sealed report into `out_dir`.

    `out_dir` gets report.json (and its copy results.json), junit.xml, report.html, evidence/,
    then harness-chain.pem, manifest.json and report.sig (`sign=False` leaves the last three
    out). Raises `HarnessConfigError` (bad profile, catalog, suite, waiver file or harness
    home; unreachable target) before any verdict.
    """
    profile = load_profile(target)
    load_catalog()
    if waivers is not None:
        load_waivers(waivers)
    paths = resolve_suites(suites)
    partial, without = run_scope(paths)
    if workload is not None:
        from zwfw.harness.workload import load_workload

        load_workload(workload)
    seal = load_seal() if sign else None
    check_reachable(profile)
    prepare_out_dir(out_dir)
    report_path = out_dir / "report.json"
    evidence_dir = out_dir / EVIDENCE_DIR
    root = suites_root()
    driver = _Driver(progress, collected)
    args = [
        *_pytest_args(root),
        "--target",
        str(target),
        "--zwfw-results",
        str(report_path),
        "--zwfw-evidence",
        str(evidence_dir),
        *(["--zwfw-waivers", str(waivers)] if waivers is not None else []),
        *(["--zwfw-partial"] if partial else []),
        *(arg for suite in without for arg in ("--zwfw-without", suite)),
        *(["--zwfw-workload", str(workload)] if workload is not None else []),
        *map(str, paths),
    ]
    exit_code = _run_pytest(args, driver, root)
    run = _stop_on_problems(driver, exit_code)
    if run.document is None:
        raise SuiteError(f"the run produced no results (pytest exit code {exit_code})")
    document = run.document
    # Kept for readers of the first schema's file name; same document.
    shutil.copyfile(report_path, out_dir / "results.json")
    write_junit(document, out_dir / "junit.xml")
    write_html(document, out_dir / "report.html", _latencies(document, evidence_dir))
    if seal is not None:
        seal_report(out_dir, seal)
    return Certification(profile=profile, document=document, out_dir=out_dir, seal=seal)


@dataclass(frozen=True)
class Collected:
    """The catalog and the conformance tests of some suites, as collection found them."""

    catalog: Catalog
    # nodeid -> requirement IDs it names
    checks: dict[str, tuple[str, ...]]
    # nodeid -> failure modes it declares it catches ("ID:mode")
    catches: dict[str, tuple[str, ...]]


def collect(suites: Sequence[str] = ()) -> Collected:
    """Collect the suites (no test runs; no names: every suite present, the opt-in ones
    included); bad markers raise `SuiteError`."""
    catalog = load_catalog()
    paths = resolve_suites(suites) if suites else _every_suite()
    root = suites_root()
    driver = _Driver(None)
    exit_code = _run_pytest([*_pytest_args(root), "--collect-only", *map(str, paths)], driver, root)
    if exit_code == pytest.ExitCode.NO_TESTS_COLLECTED:
        return Collected(catalog, {}, {})
    run = _stop_on_problems(driver, exit_code)
    return Collected(catalog, dict(run.checks), dict(run.catches))


def collect_checks(suites: Sequence[str] = ()) -> tuple[Catalog, dict[str, tuple[str, ...]]]:
    """The catalog and every conformance test of the suites, with the requirements it names."""
    collected = collect(suites)
    return collected.catalog, collected.checks


def coverage(catalog: Catalog, checks: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """Requirement ID -> the test functions (parameters folded) that verify it."""
    tests: dict[str, list[str]] = {requirement.id: [] for requirement in catalog.requirements}
    for nodeid, ids in checks.items():
        function = nodeid.split("[", 1)[0]
        for requirement_id in ids:
            if function not in tests[requirement_id]:
                tests[requirement_id].append(function)
    return tests


def failure_mode_coverage(
    catalog: Catalog, catches: dict[str, tuple[str, ...]]
) -> dict[str, dict[str, list[str]]]:
    """Requirement ID -> failure mode -> the test functions (parameters folded) catching it."""
    tests: dict[str, dict[str, list[str]]] = {
        requirement.id: {mode.id: [] for mode in requirement.failure_modes}
        for requirement in catalog.requirements
    }
    for nodeid, declared in catches.items():
        function = nodeid.split("[", 1)[0]
        for entry in declared:
            requirement_id, _, mode = entry.rpartition(":")
            catching = tests[requirement_id][mode]
            if function not in catching:
                catching.append(function)
    return tests
