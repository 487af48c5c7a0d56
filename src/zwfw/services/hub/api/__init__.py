"""The hub's HTTP interface, a module per concern; the domain logic behind it is in
``zwfw.services.hub.service``."""

from __future__ import annotations

from fastapi import APIRouter

from zwfw.services.hub.api import exchange, provinces, reports, supervision

# In this order in the OpenAPI document.
ROUTERS: list[APIRouter] = [provinces.router, reports.router, supervision.router, exchange.router]

__all__ = ["ROUTERS"]
