"""The detection table: every certify run through a defect proxy adds a row; the table is
written to ``out/selftest/detection.md`` when the test run ends."""

from __future__ import annotations

import pytest

from .support import DETECTION_TABLE, Detection, detection_markdown

_ROWS = pytest.StashKey[list[Detection]]()


@pytest.fixture(scope="session")
def detections(pytestconfig: pytest.Config) -> list[Detection]:
    return pytestconfig.stash.setdefault(_ROWS, [])


def pytest_sessionfinish(session: pytest.Session) -> None:
    rows = session.config.stash.get(_ROWS, [])
    if not rows:
        return
    DETECTION_TABLE.parent.mkdir(parents=True, exist_ok=True)
    DETECTION_TABLE.write_text(detection_markdown(rows), encoding="utf-8")
