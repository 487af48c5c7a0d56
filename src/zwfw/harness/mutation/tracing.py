"""Pytest plugin of the attribution run: tells the traced service processes which conformance
test is running, so that coverage there knows which test executed which line.

Loaded into ``zwfw certify`` with ``PYTEST_PLUGINS=zwfw.harness.mutation.tracing`` and
``ZWFW_MUTATION_TRACE_DIR`` naming a directory whose ``pids`` file lists the traced processes.
Before each test (setup included) it writes the test's node id to ``current``, signals every
process (SIGUSR1) and waits until each has acknowledged that id, so no request of the test is
counted under the previous one. Tests run one after another, so a process-wide context is
exact for the requests a test makes; work a service does in the background afterwards (an
outbox delivery) counts for whichever test is running then.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from zwfw.harness.mutation.launcher import CURRENT_FILE, TRACE_DIR_ENV

PIDS_FILE = "pids"
ACK_TIMEOUT = 5.0
# After the last test: what the processes do from then on is nobody's.
NO_TEST = ""


def _announce(trace_dir: Path, nodeid: str) -> None:
    pids = [int(p) for p in (trace_dir / PIDS_FILE).read_text().split()]
    current = trace_dir / CURRENT_FILE
    current.with_suffix(".partial").write_text(nodeid, encoding="utf-8")
    os.replace(current.with_suffix(".partial"), current)
    waiting = set()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGUSR1)
            waiting.add(pid)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + ACK_TIMEOUT
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            ack = trace_dir / f"ack-{pid}"
            try:
                if ack.read_text(encoding="utf-8") == nodeid:
                    waiting.discard(pid)
            except FileNotFoundError:
                pass
        if waiting:
            time.sleep(0.005)
    if waiting:
        raise RuntimeError(f"traced services {sorted(waiting)} did not switch to {nodeid}")


def _trace_dir() -> Path | None:
    value = os.environ.get(TRACE_DIR_ENV)
    return Path(value) if value else None


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    trace_dir = _trace_dir()
    if trace_dir is not None:
        _announce(trace_dir, nodeid)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    trace_dir = _trace_dir()
    if trace_dir is not None:
        _announce(trace_dir, NO_TEST)
