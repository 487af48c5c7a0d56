"""Finding a service by product name (``zwfw.services.SERVICES``) or ``module:attribute``."""

from __future__ import annotations

import importlib

from zwfw.services import SERVICES
from zwfw.services.kit.app import ServiceDefinition


class UnknownServiceError(LookupError):
    """The name is neither a registered product service nor an importable definition."""


def available_services() -> list[str]:
    return sorted(SERVICES)


def resolve_service(name_or_path: str) -> ServiceDefinition:
    """The ``ServiceDefinition`` for a registered name (``"hall"``) or an import path
    (``"package.module:attribute"``; the attribute is a definition or a zero-argument callable
    returning one)."""
    if name_or_path in SERVICES:
        path = SERVICES[name_or_path]
    elif ":" in name_or_path:
        path = name_or_path
    else:
        known = ", ".join(available_services()) or "none are registered yet"
        raise UnknownServiceError(
            f"unknown service '{name_or_path}'; available services: {known} "
            "(or give a module:attribute path)"
        )
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownServiceError(f"cannot import '{module_name}' for '{path}': {exc}") from exc
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise UnknownServiceError(f"'{module_name}' has no attribute '{attribute}'") from None
    if not isinstance(target, ServiceDefinition) and callable(target):
        target = target()
    if not isinstance(target, ServiceDefinition):
        raise UnknownServiceError(f"'{path}' is not a zwfw.services.kit.ServiceDefinition")
    return target
