"""The hall's HTTP interface, a module per concern; the domain logic behind it is in
``zwfw.services.hall.service``."""

from __future__ import annotations

from fastapi import APIRouter

from zwfw.services.hall.api import cases, catalog, discovery, evaluations

# In this order in the OpenAPI document.
ROUTERS: list[APIRouter] = [discovery.router, catalog.router, cases.router, evaluations.router]

__all__ = ["ROUTERS"]
