"""The identity service's OpenAPI document, as published in `conformance/spec/openapi/`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from zwfw.services.identity.app import build
from zwfw.services.identity.settings import IdentitySettings

REGENERATE = "zwfw identity openapi --out conformance/spec/openapi/identity.json"


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the code as it is (independent of any instance's settings)."""
    settings = IdentitySettings(
        database_url="sqlite://",
        # Throwaway keys: the document describes the interface, never an instance.
        data_key=os.urandom(16).hex(),
        lookup_key=os.urandom(32).hex(),
    )
    app = build(settings)
    try:
        return app.openapi()
    finally:
        app.state.kit.engine.dispose()


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(document()), encoding="utf-8")
