"""The elicense OpenAPI document, as published in ``conformance/spec/openapi/elicense.json``.

Regenerate it after changing the interface::

    .venv/bin/python -m zwfw.services.elicense.openapi conformance/spec/openapi/elicense.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zwfw.services.elicense import ElicenseSettings, build
from zwfw.services.kit import openapi as kit_openapi

REGENERATE = (
    ".venv/bin/python -m zwfw.services.elicense.openapi conformance/spec/openapi/elicense.json"
)


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the code as it is (independent of any instance)."""
    return kit_openapi.app_document(build(ElicenseSettings(database_url="sqlite://")))


def write(path: Path) -> None:
    kit_openapi.write(path, document())


def main(argv: list[str] | None = None) -> int:
    return kit_openapi.export_main(argv, "zwfw.services.elicense.openapi", document)


if __name__ == "__main__":
    raise SystemExit(main())
