"""Fixtures: the `zwfw` CLI in-process, and throw-away suite checkouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from zwfw.cli import app

from .support import Checkout, Invoke


@pytest.fixture
def zwfw() -> Invoke:
    """Run `zwfw ARGS...` in-process; the result has exit_code, stdout and stderr."""
    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def harness_home_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One harness e-seal for the session, never the user's own home."""
    return tmp_path_factory.mktemp("harness-home") / "home"


@pytest.fixture(autouse=True)
def _harness_home(harness_home_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZWFW_HARNESS_HOME", str(harness_home_dir))
    return harness_home_dir


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Checkout:
    """An empty scratch checkout the harness is pointed at through ZWFW_CONFORMANCE_DIR."""
    scratch = Checkout(tmp_path / "checkout")
    scratch.conformance.mkdir(parents=True)
    monkeypatch.setenv("ZWFW_CONFORMANCE_DIR", str(scratch.conformance))
    return scratch
