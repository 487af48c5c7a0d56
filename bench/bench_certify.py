"""Certifying a live province: `zwfw certify` of province A (340000) of a reference platform
started for the benchmark in a temporary directory.

Figures (wall times, median of a few runs; baselines measured in the same run):
- the complete certification (every suite against the live services, report sealed), vs a
  partial run of only `conformance/codes` (interpreter, harness, collection, report and
  e-seal, but no live traffic): the ratio is what talking to the province costs;
- starting the whole reference platform (national IdP and hub, two provinces of four
  services, keys, seeds, profiles), vs restarting one of its services (A's IdP) to ready.

A's IdP is restarted before each certification: its login rate limit (per client address and
minute, in memory) would otherwise count the sign-ins of back-to-back runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figure import Figure

REPO = Path(__file__).resolve().parents[1]
ZWFW = str(Path(sys.executable).with_name("zwfw"))
REGION = "340000"
RUNS = 3


def figures() -> list[Figure]:
    from zwfw.reference import ReferencePlatform

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        started = time.perf_counter()
        with ReferencePlatform(work / "reference") as platform:
            platform_start = time.perf_counter() - started

            def restart_idp() -> float:
                begin = time.perf_counter()
                platform.stop_service(REGION, "identity")
                platform.start_service(REGION, "identity")
                return time.perf_counter() - begin

            def certify(name: str, *extra: str) -> float:
                env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_REF_")}
                env.update(platform.credentials(REGION))
                env["ZWFW_HARNESS_HOME"] = str(work / "harness-home")
                command = [ZWFW, "certify", "--target", str(platform.profile_path(REGION)),
                           "--out", str(work / name), "-q", *extra]  # fmt: skip
                begin = time.perf_counter()
                done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
                elapsed = time.perf_counter() - begin
                if done.returncode != 0:
                    raise RuntimeError(
                        f"certify {name} exited {done.returncode}: {done.stdout[-1500:]}"
                        f"{done.stderr[-500:]}"
                    )
                return elapsed

            certify("warm-up", "--suites", "conformance/codes")  # creates the harness e-seal
            restarts, complete, partial = [], [], []
            for run in range(RUNS):
                restarts.append(restart_idp())
                complete.append(certify(f"complete-{run}"))
                partial.append(certify(f"codes-{run}", "--suites", "conformance/codes"))
    return [
        Figure(
            "certify province A, complete suites against the live reference platform",
            statistics.median(complete),
            "s",
            "certify --suites conformance/codes (no live traffic)",
            statistics.median(partial),
            higher_is_better=False,
        ),
        Figure(
            "reference platform start (national side + 2 provinces, 10 processes)",
            platform_start,
            "s",
            "restart of one service process to ready (A's IdP)",
            statistics.median(restarts),
            higher_is_better=False,
        ),
    ]
