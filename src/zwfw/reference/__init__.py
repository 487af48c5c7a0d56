"""The reference platform launcher: a complete interconnected platform on localhost (national
IdP and hub, and N provinces with identity, hall, elicense and eseal), each service its own
``zwfw serve`` process. ``zwfw.reference.national`` starts the national side on its own;
``zwfw.reference.sandbox`` (``zwfw sandbox``) runs it as the counterpart of an external
province under certification. See ``zwfw.reference.platform`` for what start-up does."""

from __future__ import annotations

from zwfw.reference.national import NationalSide, ProvinceRegistration
from zwfw.reference.platform import (
    DEFAULT_PROVINCES,
    PlatformError,
    ProvinceSpec,
    ReferencePlatform,
    ServiceProcess,
)

__all__ = [
    "DEFAULT_PROVINCES",
    "NationalSide",
    "PlatformError",
    "ProvinceRegistration",
    "ProvinceSpec",
    "ReferencePlatform",
    "ServiceProcess",
]
