"""Driving pytest in-process over the suites: a certification run, or a collection for coverage."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zwfw.harness.errors import HarnessConfigError, SuiteError
from zwfw.harness.profile import TargetProfile, load_profile
from zwfw.harness.pytest_plugin import SUITE_NAMES, HarnessRun, harness_run
from zwfw.harness.requirements import Catalog, conformance_dir, load_catalog
from zwfw.harness.results import TestRecord


def suites_root() -> Path:
    """The directory holding the suites (the checkout root)."""
    return conformance_dir().parent


def suite_dir(name: str) -> Path:
    return conformance_dir() if name == "conformance" else suites_root() / name


def resolve_suites(names: Sequence[str] = ()) -> list[Path]:
    """Paths of the named suites (`conformance`, `security`, `loadtests`, or `suite/sub/dir`).

    With no names, every suite that exists.
    """
    if not names:
        found = [suite_dir(name) for name in SUITE_NAMES if suite_dir(name).is_dir()]
        if not found:
            raise SuiteError(f"no suite found under {suites_root()}")
        return found
    paths: list[Path] = []
    for name in names:
        head, _, rest = name.strip("/").partition("/")
        if head not in SUITE_NAMES:
            raise SuiteError(f"unknown suite {name!r}; suites are {', '.join(SUITE_NAMES)}")
        base = suite_dir(head)
        path = (base / rest).resolve() if rest else base
        if not path.is_relative_to(base):
            raise SuiteError(f"suite {name!r} points outside {base}")
        if not path.exists():
            raise SuiteError(f"suite {name!r}: {path} does not exist")
        paths.append(path)
    return paths


class _Driver:
    """Plugin object of the driving code: finds the session's state, relays progress."""

    def __init__(self, progress: Callable[[TestRecord], None] | None) -> None:
        self.progress = progress
        self.config: pytest.Config | None = None
        self.stderr = io.StringIO()

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_zwfw_test_recorded(self, record: TestRecord) -> None:
        if self.progress is not None:
            self.progress(record)

    @property
    def run(self) -> HarnessRun | None:
        return harness_run(self.config) if self.config is not None else None


def _pytest_args(root: Path) -> list[str]:
    return [
        # The entry point by name: loaded once whether or not plugin autoload is enabled.
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
        # Suite modules must be imported afresh by the next run in this process.
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None)
            if module_file and Path(module_file).resolve().is_relative_to(root):
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


@dataclass(frozen=True)
class Certification:
    profile: TargetProfile
    document: dict[str, Any]
    results_path: Path

    @property
    def certified(self) -> bool:
        return bool(self.document["certified"])


def certify(
    target: Path,
    out_dir: Path,
    suites: Sequence[str] = (),
    *,
    progress: Callable[[TestRecord], None] | None = None,
) -> Certification:
    """Run the suites against `target`, writing `out_dir/results.json`.

    Raises `HarnessConfigError` (bad profile, catalog or suite) before any verdict.
    """
    profile = load_profile(target)
    load_catalog()
    paths = resolve_suites(suites)
    if out_dir.exists() and not out_dir.is_dir():
        raise HarnessConfigError(f"--out {out_dir}: exists and is not a directory")
    results_path = out_dir / "results.json"
    root = suites_root()
    driver = _Driver(progress)
    args = [
        *_pytest_args(root),
        "--target",
        str(target),
        "--zwfw-results",
        str(results_path),
        *(["--zwfw-partial"] if set(paths) != set(resolve_suites()) else []),
        *map(str, paths),
    ]
    exit_code = _run_pytest(args, driver, root)
    run = _stop_on_problems(driver, exit_code)
    if run.document is None:
        raise SuiteError(f"the run produced no results (pytest exit code {exit_code})")
    return Certification(profile=profile, document=run.document, results_path=results_path)


def collect_checks(suites: Sequence[str] = ()) -> tuple[Catalog, dict[str, tuple[str, ...]]]:
    """The catalog and every conformance test of the suites, with the requirements it names."""
    catalog = load_catalog()
    paths = resolve_suites(suites)
    root = suites_root()
    driver = _Driver(None)
    exit_code = _run_pytest([*_pytest_args(root), "--collect-only", *map(str, paths)], driver, root)
    if exit_code == pytest.ExitCode.NO_TESTS_COLLECTED:
        return catalog, {}
    run = _stop_on_problems(driver, exit_code)
    return catalog, dict(run.checks)


def coverage(catalog: Catalog, checks: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """Requirement ID -> the test functions (parameters folded) that verify it."""
    tests: dict[str, list[str]] = {requirement.id: [] for requirement in catalog.requirements}
    for nodeid, ids in checks.items():
        function = nodeid.split("[", 1)[0]
        for requirement_id in ids:
            if function not in tests[requirement_id]:
                tests[requirement_id].append(function)
    return tests
