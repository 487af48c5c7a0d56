"""The eseal service's OpenAPI document, as published in ``conformance/spec/openapi/eseal.json``.

Regenerate it after changing the interface::

    .venv/bin/python -m zwfw.services.eseal.openapi conformance/spec/openapi/eseal.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from zwfw.services.eseal import EsealSettings, build

REGENERATE = ".venv/bin/python -m zwfw.services.eseal.openapi conformance/spec/openapi/eseal.json"


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the code as it is (independent of any instance)."""
    app = build(EsealSettings(database_url="sqlite://"))
    try:
        return app.openapi()
    finally:
        app.state.kit.engine.dispose()


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(document()), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m zwfw.services.eseal.openapi OUT.json", file=sys.stderr)
        return 2
    try:
        write(Path(args[0]))
    except OSError as exc:
        print(f"cannot write {args[0]}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
