"""Transport (SEC-TLS-001): every service the profile lists is served over https, unless the
profile declares it `internal_only` (reachable only inside the operator's network, behind its
TLS gateway; see conformance/README.md, "Target profile")."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from zwfw.harness.profile import TargetProfile


@pytest.mark.requirement("SEC-TLS-001", catches=("plain-http-endpoint",))
def test_every_endpoint_is_https_unless_internal(target: TargetProfile) -> None:
    services = target.services.configured()
    assert services, "the target profile lists no service"
    plain = [
        f"{name} {url}"
        for name, url in services.items()
        if urlsplit(url).scheme != "https" and name not in target.internal_only
    ]
    assert not plain, "served over plain http and not declared internal_only: " + ", ".join(plain)
