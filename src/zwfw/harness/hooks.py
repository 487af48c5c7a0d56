"""Hooks the `zwfw` pytest plugin adds, for whoever drives a run (the CLI, a report writer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from zwfw.harness.results import TestRecord


@pytest.hookspec
def pytest_zwfw_test_recorded(record: TestRecord) -> None:
    """A conformance test finished (setup, call and teardown); `record` is its final outcome."""
