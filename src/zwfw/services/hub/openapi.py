"""The hub's OpenAPI document, as published in ``conformance/spec/openapi/hub.json``.

Regenerate: ``python -m zwfw.services.hub.openapi conformance/spec/openapi/hub.json``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zwfw.services.hub import build
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import openapi as kit_openapi

REGENERATE = "python -m zwfw.services.hub.openapi conformance/spec/openapi/hub.json"


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the code as it is (independent of any instance)."""
    return kit_openapi.app_document(build(HubSettings(database_url="sqlite://")))


def write(path: Path) -> None:
    kit_openapi.write(path, document())


def main(argv: list[str] | None = None) -> int:
    return kit_openapi.export_main(argv, "zwfw.services.hub.openapi", document)


if __name__ == "__main__":
    raise SystemExit(main())
