"""Exporting a service's OpenAPI document to ``conformance/spec/openapi/<service>.json``.

Each service's ``openapi`` module builds its app with throwaway settings and hands it here;
the drift tests compare the exported file with ``document()`` of the code as it is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI


def app_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``, whose engine is disposed of afterwards."""
    try:
        return app.openapi()
    finally:
        app.state.kit.engine.dispose()


def render(spec: dict[str, Any]) -> str:
    """Stable text: sorted keys, so a regenerated file differs only where the interface did."""
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(path: Path, spec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(spec), encoding="utf-8")


def export_main(argv: list[str] | None, module: str, document: Callable[[], dict[str, Any]]) -> int:
    """``python -m <module> OUT.json``: 0 written, 1 not writable, 2 usage."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {module} OUT.json", file=sys.stderr)
        return 2
    try:
        write(Path(args[0]), document())
    except OSError as exc:
        print(f"cannot write {args[0]}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args[0]}")
    return 0
