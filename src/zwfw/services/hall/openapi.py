"""The hall's OpenAPI document, as published in ``conformance/spec/openapi/hall.json``.

Regenerate it after changing the interface::

    .venv/bin/python -m zwfw.services.hall.openapi conformance/spec/openapi/hall.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zwfw.services.hall import build
from zwfw.services.hall.settings import HallSettings
from zwfw.services.kit import openapi as kit_openapi

REGENERATE = ".venv/bin/python -m zwfw.services.hall.openapi conformance/spec/openapi/hall.json"


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the code as it is (independent of any instance)."""
    return kit_openapi.app_document(build(HallSettings(database_url="sqlite://")))


def write(path: Path) -> None:
    kit_openapi.write(path, document())


def main(argv: list[str] | None = None) -> int:
    return kit_openapi.export_main(argv, "zwfw.services.hall.openapi", document)


if __name__ == "__main__":
    raise SystemExit(main())
