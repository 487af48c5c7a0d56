"""Harness: a certification run against the example profile, and sealing/verifying its report.

All figures are wall times (median of a few runs); each baseline is measured in the same run:
- `zwfw certify` over every suite as a user starts it (report, junit, html, evidence, e-seal),
  vs a bare `pytest --collect-only` of the same suites (interpreter, pytest and suite import,
  without the harness);
- the in-process certification (what `certify` does after start-up), vs the in-process
  collection the harness does for `zwfw requirements coverage`;
- sealing a finished report (SM3 manifest + SES_Signature), vs only hashing its files with SM3;
- `verify-report`'s offline check, vs the same SM3 hashing.

The example profile lists no live service, so the run is "not certified" (exit 1); its time is
the harness's own cost over the suites. Certifying a running province adds the target's
response times on top.
"""

from __future__ import annotations

import os
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
    fn()  # warm caches (bytecode, file system, harness home)
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
    from zwfw.crypto.hashing import sm3_file
    from zwfw.harness.runner import certify, collect_checks
    from zwfw.harness.seal import HOME_ENV, load_seal
    from zwfw.harness.signing import seal_report, verify_report

    with tempfile.TemporaryDirectory() as scratch:
        # A throw-away harness e-seal: benchmarks never touch the user's own.
        previous_home = os.environ.get(HOME_ENV)
        os.environ[HOME_ENV] = str(Path(scratch) / "harness-home")
        try:
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
                "--import-mode=importlib",
                "-o",
                "addopts=",
                "--collect-only",
                "-q",
                str(REPO / "conformance"),
            ]
            cli_time = _wall(lambda: _check(cli, allowed=(0, 1)))
            bare_time = _wall(lambda: _check(bare))

            def in_process_certify() -> None:
                outcome = certify(EXAMPLE, out)
                if not (out / "report.sig").is_file() or not outcome.document["requirements"]:
                    raise RuntimeError("certify wrote no sealed report")

            certify_time = _wall(in_process_certify)
            collect_time = _wall(lambda: collect_checks(["conformance"]))

            seal = load_seal()
            files = [p for p in out.rglob("*") if p.is_file()]

            def hash_files() -> None:
                for path in files:
                    sm3_file(path)

            hash_time = _wall(hash_files, runs=20)
            seal_time = _wall(lambda: seal_report(out, seal), runs=20)
            verify_time = _wall(lambda: verify_report(out, [seal.root]), runs=20)
        finally:
            if previous_home is None:
                os.environ.pop(HOME_ENV, None)
            else:
                os.environ[HOME_ENV] = previous_home

    return [
        Figure(
            name="zwfw certify example profile, all suites (wall)",
            value=cli_time,
            unit="s",
            baseline_name="bare pytest --collect-only conformance (wall)",
            baseline_value=bare_time,
            higher_is_better=False,
        ),
        Figure(
            name="certify in-process, example profile, sealed report",
            value=certify_time,
            unit="s",
            baseline_name="collect conformance in-process (coverage)",
            baseline_value=collect_time,
            higher_is_better=False,
        ),
        Figure(
            name="seal a report (SM3 manifest + SES_Signature)",
            value=seal_time * 1000,
            unit="ms",
            baseline_name="SM3 of the report's files",
            baseline_value=hash_time * 1000,
            higher_is_better=False,
        ),
        Figure(
            name="verify-report (five seal steps + manifest digests)",
            value=verify_time * 1000,
            unit="ms",
            baseline_name="SM3 of the report's files",
            baseline_value=hash_time * 1000,
            higher_is_better=False,
        ),
    ]
