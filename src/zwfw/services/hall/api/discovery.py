"""The discovery document ``/.well-known/zwfw``: where the province's services, keys and hub
are, and the scopes the hall knows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from zwfw.services.hall.service.cases import CASE_HANDLE
from zwfw.services.hall.service.catalog import CATALOG_WRITE
from zwfw.services.hall.service.evaluations import RECTIFY
from zwfw.services.hall.settings import HallSettings
from zwfw.services.kit import public

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/zwfw", summary="The province's discovery document")
@public
def discovery_document(request: Request) -> dict[str, Any]:
    settings: HallSettings = request.app.state.kit.settings
    base = settings.public_base_url.rstrip("/")
    services = {name: str(url).rstrip("/") for name, url in settings.discovery.services.items()}
    services["hall"] = base
    jwks = {name: str(url) for name, url in settings.discovery.jwks_uris.items()}
    if settings.auth.jwks_url and "identity" not in jwks:
        jwks["identity"] = settings.auth.jwks_url
    return {
        "region_code": settings.region_code,
        "spec_version": settings.spec_version,
        "issuer": settings.auth.issuer,
        "services": dict(sorted(services.items())),
        "endpoints": {
            "catalog": f"{base}/items",
            "cases": f"{base}/cases",
            "evaluations": f"{base}/cases/{{case_number}}/evaluation",
            "rectifications": f"{base}/rectifications",
            "metrics": f"{base}/metrics",
        },
        "jwks_uris": dict(sorted(jwks.items())),
        "hub": str(settings.discovery.hub_url).rstrip("/") if settings.discovery.hub_url else None,
        "scopes": sorted({CATALOG_WRITE, CASE_HANDLE, RECTIFY}),
    }
