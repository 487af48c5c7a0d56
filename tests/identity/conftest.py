from __future__ import annotations

from .support import idp

__all__ = ["idp"]
