"""The identity service's OpenAPI document, as published in `conformance/spec/openapi/`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zwfw.services.identity import build
from zwfw.services.identity.settings import IdentitySettings
from zwfw.services.kit import openapi as kit_openapi

REGENERATE = "zwfw identity openapi --out conformance/spec/openapi/identity.json"


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the code as it is (independent of any instance's settings)."""
    settings = IdentitySettings(
        database_url="sqlite://",
        # Throwaway keys: the document describes the interface, never an instance.
        data_key=os.urandom(16).hex(),
        lookup_key=os.urandom(32).hex(),
    )
    return kit_openapi.app_document(build(settings))


def write(path: Path) -> None:
    kit_openapi.write(path, document())
