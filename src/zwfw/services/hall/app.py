"""The hall app: catalog, cases, evaluations and the discovery document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from zwfw.services.hall import cases, catalog, evaluations
from zwfw.services.hall.hub import build_dispatcher
from zwfw.services.hall.runtime import build_runtime
from zwfw.services.hall.settings import HallSettings
from zwfw.services.kit import create_app, public

VERSION = "1.0.0"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

discovery = APIRouter(tags=["discovery"])


@discovery.get("/.well-known/zwfw", summary="The province's discovery document")
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
        "scopes": sorted({catalog.CATALOG_WRITE, cases.CASE_HANDLE, evaluations.RECTIFY}),
    }


def build(settings: HallSettings) -> FastAPI:
    hall = build_runtime(settings)

    def start_reporting(app: FastAPI) -> None:
        if hall.dispatcher is not None:
            hall.dispatcher.start()

    async def close(app: FastAPI) -> None:
        if hall.dispatcher is not None:
            await hall.dispatcher.stop()
        if hall.elicense is not None:
            hall.elicense.close()

    app = create_app(
        settings,
        title="hall",
        version=VERSION,
        description="The province's service hall: item catalog (事项目录), cases (办件), "
        "evaluations (好差评) and the discovery document.",
        routers=[discovery, catalog.router, cases.router, evaluations.router],
        migrations=MIGRATIONS,
        on_startup=[start_reporting],
        on_shutdown=[close],
    )
    app.state.hall = hall
    hall.dispatcher = build_dispatcher(app, settings)
    return app
