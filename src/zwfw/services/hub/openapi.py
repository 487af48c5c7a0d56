"""The hub's OpenAPI document, as published in ``conformance/spec/openapi/hub.json``.

Regenerate: ``python -m zwfw.services.hub.openapi conformance/spec/openapi/hub.json``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from zwfw.services.hub import build
from zwfw.services.hub.settings import HubSettings

REGENERATE = "python -m zwfw.services.hub.openapi conformance/spec/openapi/hub.json"


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the code as it is (independent of any instance)."""
    app = build(HubSettings(database_url="sqlite://"))
    try:
        return app.openapi()
    finally:
        app.state.kit.engine.dispose()


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(document()), encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: {REGENERATE}", file=sys.stderr)
        return 2
    write(Path(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
