"""Fixtures for the deployment tests: the external tools they drive and the checkout's paths.

A test that needs a tool the machine lacks is skipped with the command that installs it, except
in CI (``CI=true``), where `.ci/run` installs every one of them and a missing tool is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
MONITORING = CHARTS / "monitoring"
PLAYBOOKS = ROOT / "playbooks"
VENV_BIN = Path(sys.executable).parent

# Where each tool comes from, for the skip message.
INSTALL_HINTS = {
    "promtool": "apt-get install -y --no-install-recommends prometheus",
    "nginx": "apt-get install -y --no-install-recommends nginx",
    "openssl": "apt-get install -y --no-install-recommends openssl",
    "ansible-playbook": ".venv/bin/pip install -e '.[dev]'",
    "ansible-lint": ".venv/bin/pip install -e '.[dev]'",
    "supervisord": ".venv/bin/pip install -e '.[dev]'",
    "prometheus": "apt-get install -y --no-install-recommends prometheus",
    "prometheus-alertmanager": "apt-get install -y --no-install-recommends prometheus-alertmanager",
    "prometheus-blackbox-exporter": (
        "apt-get install -y --no-install-recommends prometheus-blackbox-exporter"
    ),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """Absolute path of ``name`` (the project's venv first, then PATH and sbin directories)."""
    candidate = VENV_BIN / name
    found = str(candidate) if candidate.exists() else None
    found = found or shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found:
        return found
    message = f"{name} is not installed (install: {INSTALL_HINTS.get(name, name)})"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def nginx() -> str:
    return require_tool("nginx")


@pytest.fixture(scope="session")
def openssl() -> str:
    return require_tool("openssl")


@pytest.fixture(scope="session")
def ansible_playbook() -> str:
    return require_tool("ansible-playbook")


@pytest.fixture(scope="session")
def ansible_lint() -> str:
    return require_tool("ansible-lint")


@pytest.fixture(scope="session")
def prometheus() -> str:
    return require_tool("prometheus")


@pytest.fixture(scope="session")
def alertmanager() -> str:
    return require_tool("prometheus-alertmanager")


@pytest.fixture(scope="session")
def blackbox_exporter() -> str:
    return require_tool("prometheus-blackbox-exporter")


@pytest.fixture(scope="session")
def supervisord() -> str:
    return require_tool("supervisord")


def play_recap(output: str) -> dict[str, int]:
    """The localhost line of an ansible-playbook run's PLAY RECAP: ok, changed, failed, …"""
    match = re.search(r"localhost\s+:\s+((?:\w+=\d+\s*)+)", output.split("PLAY RECAP")[-1])
    assert match, f"no play recap in:\n{output[-3000:]}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture(scope="session")
def recap() -> Callable[[str], dict[str, int]]:
    return play_recap


def supervised_pids(conf: Path) -> dict[str, int]:
    """PID of every running program of the supervisord configured by ``conf``."""
    status = subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "--configuration", str(conf), "status"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    pids = {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^(\S+)\s+RUNNING\s+pid (\d+),", status.stdout, re.M)
    }
    assert pids, status.stdout + status.stderr
    return pids


@pytest.fixture(scope="session")
def supervised() -> Callable[[Path], dict[str, int]]:
    """``supervised(conf)``: program name → PID of what that supervisord runs now."""
    return supervised_pids
