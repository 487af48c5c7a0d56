"""The e-licence service (电子证照库, GB/T 36901…36906).

- Licence types (name, type code, defining authority, JSON Schema of type-specific data) and
  issuance: GB/T 36903 metadata, a GB/T 36904 identifier built with ``zwfw.codes``, sealed by
  the issuing authority's e-seal over the RFC 8785 canonical JSON of the licence
  (``zwfw.services.elicense.document``), through the e-seal service's sign API.
- The licence face as PDF with a QR code pointing at ``GET /verify/{identifier}``.
- Holders (matched by their token's ``sub``) list and fetch their own licences; anybody
  else's answers 404, exactly like a licence that does not exist.
- Annotated copies (加注件) for an organisation, with the holder's consent, a cause and an
  expiry no longer than ``max_copy_days``; sealed by the issuer; expired copies fail
  verification, online and offline (``zwfw licence verify``).
- Status changes (02 suspended, 03 revoked, 04 cancelled, 07 withdrawn, back to 01 from 02)
  with reason and time; 05 expired follows from the validity end date.
- Usage records (用证记录): every access to a licence's data, who, why, when, listed to the
  holder. Public verification of a presented document is not an access to stored data and is
  not recorded.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from zwfw.services.elicense.api import router
from zwfw.services.elicense.sealing import SealClient
from zwfw.services.elicense.service import LicenceService
from zwfw.services.elicense.settings import ElicenseSettings, IssuerConfig, SealServiceConfig
from zwfw.services.kit import ServiceDefinition, create_app

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build(settings: ElicenseSettings, *, seal_client: SealClient | None = None) -> FastAPI:
    """The e-licence app; ``seal_client`` defaults to one built from ``settings.eseal``."""
    seals = seal_client or SealClient(settings.eseal)
    svc = LicenceService(settings, seals)

    def stop(app: FastAPI) -> None:
        if seal_client is None and isinstance(seals.http, httpx.Client):
            seals.http.close()

    app = create_app(
        settings,
        title="elicense",
        version="1.0",
        routers=[router],
        migrations=MIGRATIONS,
        on_shutdown=[stop],
        description="电子证照: issuance, holder access, annotated copies, verification.",
    )
    app.state.elicense = svc
    return app


SERVICE = ServiceDefinition(name="elicense", settings_class=ElicenseSettings, factory=build)

__all__ = [
    "MIGRATIONS",
    "SERVICE",
    "ElicenseSettings",
    "IssuerConfig",
    "LicenceService",
    "SealClient",
    "SealServiceConfig",
    "build",
]
