"""Checks that must let time pass, split in two so that the time passes during the run.

A check of a window's far side (a seal's period ending, a copy's expiry, a status cache's
bound) begins with a state change and ends some seconds later. Its first half is a test marked
``@pytest.mark.head_start``, which the harness runs before every other test; the second half
is a later test, which finds the seconds already gone instead of sleeping through them. When
the second half runs without the first (a single test selected), it begins the check itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class HeadStart(Generic[T]):
    """What a head-start test began, kept for the one later test that ends it."""

    def __init__(self) -> None:
        self._begun: T | None = None

    def begin(self, start: Callable[[], T]) -> T:
        self._begun = start()
        return self._begun

    def take(self, start: Callable[[], T]) -> T:
        """What the head start began, once; or, without one, what ``start`` begins now."""
        begun, self._begun = self._begun, None
        return begun if begun is not None else start()
