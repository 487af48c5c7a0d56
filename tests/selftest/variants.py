"""Every known-bad variant the self-test certifies: the first ones in ``defects.py`` and the
families' own in ``variants_<family>.py``."""

from __future__ import annotations

from . import (
    defects,
    variants_hall,
    variants_hub,
    variants_identity,
    variants_licence,
    variants_security,
)
from .defects import Variant

ALL_VARIANTS: tuple[Variant, ...] = (
    defects.VARIANTS
    + variants_identity.VARIANTS
    + variants_hall.VARIANTS
    + variants_hub.VARIANTS
    + variants_licence.VARIANTS
    + variants_security.VARIANTS
)
