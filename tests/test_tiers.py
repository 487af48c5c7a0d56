"""The slow tiers: every test of tests/deploy, e2e, sandbox and selftest carries the marker of
its directory and no other tier's, the rest carry none, and pyproject registers exactly these
markers (so `make test-fast` leaves out the tiers and nothing else)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SLOW_TIERS = {"deploy", "e2e", "faults", "sandbox", "selftest"}

# Prints each collected test with the tier markers it carries, after tests/conftest.py ran.
PROBE = """
def pytest_collection_finish(session):
    tiers = {"deploy", "e2e", "faults", "sandbox", "selftest"}
    for item in session.items:
        marks = sorted({m.name for m in item.iter_markers()} & tiers)
        print("TIER", item.nodeid, ",".join(marks), sep="\\t", flush=True)
"""


def _collected_tiers(tmp_path: Path, *directories: str) -> dict[str, str]:
    (tmp_path / "tier_probe.py").write_text(PROBE, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "tier_probe", *directories],
        cwd=TESTS.parent, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line.split("\t") for line in result.stdout.splitlines() if line.startswith("TIER\t")]
    return {nodeid: marks for _, nodeid, marks in rows}


def test_every_test_of_a_slow_directory_carries_its_tier(tmp_path: Path) -> None:
    directories = sorted(f"tests/{tier}" for tier in SLOW_TIERS)
    tiers = _collected_tiers(tmp_path, *directories, "tests/codes")
    for tier in SLOW_TIERS:
        in_tier = {nodeid: marks for nodeid, marks in tiers.items() if nodeid.split("/")[1] == tier}
        assert in_tier, f"no test collected in tests/{tier}"
        assert set(in_tier.values()) == {tier}, tier
    fast = {nodeid: marks for nodeid, marks in tiers.items() if nodeid.startswith("tests/codes/")}
    assert fast
    assert set(fast.values()) == {""}


def test_pyproject_registers_exactly_the_tiers() -> None:
    pyproject = tomllib.loads((TESTS.parent / "pyproject.toml").read_text(encoding="utf-8"))
    markers = pyproject["tool"]["pytest"]["ini_options"]["markers"]
    assert {line.split(":", 1)[0] for line in markers} == SLOW_TIERS
