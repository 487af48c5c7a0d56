"""The detection table, and sharding of the self-test.

Every certify run through a defect proxy adds a row; the table is written to
``out/selftest/detection.md`` when the test run ends. A certify run mostly waits on the
province (bounded propagation, sign-ins), so the variants can be split over several pytest
processes, each with its own reference platform: ``ZWFW_SELFTEST_SHARD=K/N`` keeps every N-th
variant starting with the K-th. Each shard keeps its rows in ``rows-KofN.json`` beside the
table, and the table is rendered from the rows of every shard of the same split.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict

import pytest

from .support import DETECTION_TABLE, Detection, detection_markdown

_ROWS = pytest.StashKey[list[Detection]]()
SHARD_VARIABLE = "ZWFW_SELFTEST_SHARD"
_SHARDED_MODULE = "tests/selftest/test_known_bad_variants.py::"


def shard() -> tuple[int, int]:
    value = os.environ.get(SHARD_VARIABLE, "1/1")
    match = re.fullmatch(r"([1-9][0-9]*)/([1-9][0-9]*)", value)
    if not match or int(match[1]) > int(match[2]):
        raise pytest.UsageError(f"{SHARD_VARIABLE}={value!r}: expected K/N with 1 <= K <= N")
    return int(match[1]), int(match[2])


def _rows_file(k: int, n: int) -> os.PathLike[str]:
    return DETECTION_TABLE.parent / f"rows-{k}of{n}.json"


@pytest.hookimpl(trylast=True)  # after -k and -m, so that the shards split what was selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    k, n = shard()
    if n == 1:
        return
    variants = [item for item in items if item.nodeid.startswith(_SHARDED_MODULE)]
    # The rest of the self-test (the proxy's own tests) runs in the first shard.
    others = {id(item) for item in items if not item.nodeid.startswith(_SHARDED_MODULE)}
    kept = {id(item) for i, item in enumerate(variants) if i % n == k - 1}
    if k == 1:
        kept |= others
    deselected = [item for item in items if id(item) not in kept]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if id(item) in kept]


@pytest.fixture(scope="session")
def detections(pytestconfig: pytest.Config) -> list[Detection]:
    return pytestconfig.stash.setdefault(_ROWS, [])


def pytest_sessionfinish(session: pytest.Session) -> None:
    rows = session.config.stash.get(_ROWS, [])
    if not rows:
        return
    k, n = shard()
    DETECTION_TABLE.parent.mkdir(parents=True, exist_ok=True)
    with open(_rows_file(k, n), "w", encoding="utf-8") as out:
        json.dump([asdict(row) for row in rows], out, default=sorted, ensure_ascii=False)
    every: list[Detection] = []
    for part in range(1, n + 1):
        try:
            with open(_rows_file(part, n), encoding="utf-8") as stored:
                saved = json.load(stored)
        except FileNotFoundError:
            continue
        every += [
            Detection(**(row | {"expected": frozenset(row["expected"]),
                                "failed": frozenset(row["failed"])}))
            for row in saved
        ]  # fmt: skip
    DETECTION_TABLE.write_text(detection_markdown(every), encoding="utf-8")
