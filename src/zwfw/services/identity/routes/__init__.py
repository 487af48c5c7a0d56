"""The identity service's HTTP surface, by concern."""

from __future__ import annotations

from zwfw.services.identity.routes import admin, login, oidc

ROUTERS = [oidc.router, login.router, admin.router]
