"""The unified identity service (统一身份认证): a province's IdP or the national root IdP."""

from __future__ import annotations

from zwfw.services.identity.app import IdentityService, build
from zwfw.services.identity.settings import IdentitySettings, TrustedIssuerConfig
from zwfw.services.kit import ServiceDefinition

SERVICE = ServiceDefinition(name="identity", settings_class=IdentitySettings, factory=build)

__all__ = ["SERVICE", "IdentityService", "IdentitySettings", "TrustedIssuerConfig", "build"]
