"""The unified identity service (统一身份认证): a province's IdP or the national root IdP."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from zwfw.services.identity.routes import ROUTERS
from zwfw.services.identity.service import IdentityService
from zwfw.services.identity.settings import IdentitySettings, TrustedIssuerConfig
from zwfw.services.kit import ServiceDefinition, create_app, kit_state, migration_status

log = logging.getLogger("zwfw.identity")

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: IdentitySettings) -> FastAPI:
    svc = IdentityService(settings)

    def _startup(app: FastAPI) -> None:
        state = kit_state(app)
        status = migration_status(state.engine, state.migrations)
        if not status.up_to_date:
            # Reported by /readyz; the admin API provisions on its first call instead.
            log.warning("provisioning waits for the database: %s", status.describe())
            return
        svc.provision(state.sessions)

    app = create_app(
        settings,
        title="identity",
        version="1.0",
        routers=ROUTERS,
        migrations=MIGRATIONS,
        on_startup=[_startup],
        description="统一身份认证: OIDC provider, RFC 8693 federation, 等保 level-3 login.",
    )
    app.state.identity = svc
    return app


SERVICE = ServiceDefinition(name="identity", settings_class=IdentitySettings, factory=build)

__all__ = ["SERVICE", "IdentityService", "IdentitySettings", "TrustedIssuerConfig", "build"]
