"""Harness overhead: a certification run against the example profile, beside bare pytest.

Both figures are wall times (median of a few runs); each baseline is measured in the same run:
- `zwfw certify` as a user starts it, vs a bare `pytest --collect-only` of the same suite
  (interpreter start, pytest start and suite import, without the harness);
- the in-process certification (what `certify` does after start-up), vs the in-process
  collection the harness does for `zwfw requirements coverage`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from figure import Figure

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "conformance" / "profiles" / "example.yaml"
ZWFW = Path(sys.executable).with_name("zwfw")
RUNS = 5


def _wall(fn: Callable[[], object], runs: int = RUNS) -> float:
    fn()  # warm caches (bytecode, file system)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _check(command: list[str], allowed: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode not in allowed:
        raise RuntimeError(f"{command[0]} exited {done.returncode}: {done.stderr.strip()}")


def figures() -> list[Figure]:
    from zwfw.harness.runner import certify, collect_checks

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        cli = [str(ZWFW), "certify", "--target", str(EXAMPLE), "--out", str(out), "-q"]
        bare = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:zwfw",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "--collect-only",
            "-q",
            str(REPO / "conformance"),
        ]
        cli_time = _wall(lambda: _check(cli))
        bare_time = _wall(lambda: _check(bare))

        def in_process_certify() -> None:
            if not certify(EXAMPLE, out, ["conformance"]).certified:
                raise RuntimeError("the example profile no longer certifies")

        certify_time = _wall(in_process_certify)
        collect_time = _wall(lambda: collect_checks(["conformance"]))

    return [
        Figure(
            name="zwfw certify example profile (wall)",
            value=cli_time,
            unit="s",
            baseline_name="bare pytest --collect-only conformance (wall)",
            baseline_value=bare_time,
            higher_is_better=False,
        ),
        Figure(
            name="certify in-process, example profile",
            value=certify_time,
            unit="s",
            baseline_name="collect conformance in-process (coverage)",
            baseline_value=collect_time,
            higher_is_better=False,
        ),
    ]
