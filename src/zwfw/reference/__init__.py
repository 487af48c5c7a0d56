"""The reference platform launcher: a complete interconnected platform on localhost (national
IdP and hub, and N provinces with identity, hall, elicense and eseal), each service its own
``zwfw serve`` process. See ``zwfw.reference.platform`` for what start-up does."""

from __future__ import annotations

from zwfw.reference.platform import (
    DEFAULT_PROVINCES,
    PlatformError,
    ProvinceSpec,
    ReferencePlatform,
    ServiceProcess,
)

__all__ = [
    "DEFAULT_PROVINCES",
    "PlatformError",
    "ProvinceSpec",
    "ReferencePlatform",
    "ServiceProcess",
]
