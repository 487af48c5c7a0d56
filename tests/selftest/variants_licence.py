"""Known-bad variants of the reference province's licence side: one seeded defect each, in the
shape of ``defects.py`` (a proxy coroutine and the requirements it must fail, exactly)."""

from __future__ import annotations

from .defects import Variant

VARIANTS: tuple[Variant, ...] = ()
