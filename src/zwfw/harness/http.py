"""HTTP clients for the target's services, configured from its profile.

Every conformance test talks to the target through clients made here, so trust settings,
timeouts and evidence capture are applied in one place: while a run records evidence, each
client made here hands its exchanges to the run's `EvidenceLog` through httpx event hooks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from zwfw import __version__
from zwfw.harness.profile import ServiceName, TargetProfile

if TYPE_CHECKING:
    from zwfw.harness.evidence import EvidenceLog

# Nested in-process runs each push their log; the innermost one records.
_active_logs: list[EvidenceLog] = []
# Callbacks that see every response of clients made here (the security suite's scans of the
# whole run), whether or not the run records evidence.
_observers: list[Callable[[httpx.Response], None]] = []


def observe(callback: Callable[[httpx.Response], None]) -> None:
    """Hand every response of clients made from now on to `callback` (until `unobserve`)."""
    _observers.append(callback)


def unobserve(callback: Callable[[httpx.Response], None]) -> None:
    if callback in _observers:
        _observers.remove(callback)


def _notify(response: httpx.Response) -> None:
    if not _observers:
        return
    response.read()
    for callback in list(_observers):
        callback(response)


@contextlib.contextmanager
def recording(log: EvidenceLog) -> Iterator[EvidenceLog]:
    """Clients made while this is open record their exchanges into `log`."""
    _active_logs.append(log)
    try:
        yield log
    finally:
        _active_logs.remove(log)


def activate(log: EvidenceLog) -> None:
    """Start recording into `log` (for a pytest session; `deactivate` ends it)."""
    _active_logs.append(log)


def deactivate(log: EvidenceLog) -> None:
    if log in _active_logs:
        _active_logs.remove(log)


def active_log() -> EvidenceLog | None:
    return _active_logs[-1] if _active_logs else None


def _with_evidence_hooks(options: dict[str, Any]) -> dict[str, Any]:
    log = active_log()
    given: dict[str, list[Callable[..., Any]]] = dict(options.pop("event_hooks", None) or {})
    hooks = log.event_hooks() if log is not None else {"request": [], "response": []}
    # Recording hooks run first on requests and last on responses: they see what went out
    # and what the test saw.
    merged = {
        "request": [*hooks["request"], *given.get("request", [])],
        "response": [*given.get("response", []), *hooks["response"], _notify],
    }
    return {**options, "event_hooks": merged}


def client(profile: TargetProfile, **options: Any) -> httpx.Client:
    """A client with the profile's trust settings and timeout, not bound to a service.

    For URLs the target hands out (discovery endpoints, JWKS URIs, redirects, a fresh cookie
    jar per sign-in). `options` go to `httpx.Client`.
    """
    settings: dict[str, Any] = {
        "verify": profile.tls.ssl_context(),
        "timeout": profile.timeout_seconds,
        "headers": {"User-Agent": f"zwfw-harness/{__version__}"},
    }
    settings.update(_with_evidence_hooks(dict(options)))
    return httpx.Client(**settings)


def service_client(profile: TargetProfile, service: ServiceName, **options: Any) -> httpx.Client:
    """A client whose relative URLs resolve against `service`'s base URL.

    Servers are verified against the profile's CA bundle, and the client certificate is
    presented when the profile has one. `options` go to `httpx.Client` (e.g. `event_hooks`).
    """
    base_url = profile.base_url(service)
    if base_url is None:
        raise LookupError(f"the target profile lists no {service} service")
    return client(profile, base_url=base_url + "/", **options)
