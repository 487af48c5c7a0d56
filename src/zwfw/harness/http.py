"""HTTP clients for the target's services, configured from its profile.

Every conformance test talks to the target through clients made here, so trust settings,
timeouts and (later) evidence capture are applied in one place.
"""

from __future__ import annotations

from typing import Any

import httpx

from zwfw import __version__
from zwfw.harness.profile import ServiceName, TargetProfile


def service_client(profile: TargetProfile, service: ServiceName, **options: Any) -> httpx.Client:
    """A client whose relative URLs resolve against `service`'s base URL.

    Servers are verified against the profile's CA bundle, and the client certificate is
    presented when the profile has one. `options` go to `httpx.Client` (e.g. `event_hooks`).
    """
    base_url = profile.base_url(service)
    if base_url is None:
        raise LookupError(f"the target profile lists no {service} service")
    return httpx.Client(
        base_url=base_url + "/",
        verify=profile.tls.ssl_context(),
        timeout=profile.timeout_seconds,
        headers={"User-Agent": f"zwfw-harness/{__version__}"},
        **options,
    )
