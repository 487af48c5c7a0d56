"""What a benchmark reports: one figure and the baseline measured beside it in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    # True when bigger is better (throughput); False for durations.
    higher_is_better: bool = True

    def as_dict(self) -> dict[str, object]:
        ratio = self.value / self.baseline_value if self.baseline_value else None
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "baseline": {"name": self.baseline_name, "value": round(self.baseline_value, 3)},
            "ratio": round(ratio, 4) if ratio is not None else None,
        }


def rate(fn: Callable[[], object], *, seconds: float = 1.0, min_calls: int = 20) -> float:
    """Calls per second of `fn`, run for about `seconds` after one warm-up call."""
    fn()
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= min_calls:
            return calls / elapsed
