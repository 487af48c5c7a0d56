"""The exported OpenAPI document of the hub matches the code."""

from __future__ import annotations

import json
from pathlib import Path

from zwfw.services.hub import openapi

EXPORTED = Path(__file__).resolve().parents[2] / "conformance/spec/openapi/hub.json"


def test_exported_spec_matches_the_code() -> None:
    assert EXPORTED.is_file(), f"{EXPORTED} is missing; run: {openapi.REGENERATE}"
    exported = json.loads(EXPORTED.read_text(encoding="utf-8"))
    assert exported == openapi.document(), (
        f"{EXPORTED.name} differs from the code; regenerate it with: {openapi.REGENERATE}"
    )


def test_spec_describes_the_interconnection_endpoints() -> None:
    spec = openapi.document()
    assert spec["openapi"].startswith("3.1")
    for path in ("/provinces", "/reports/cases", "/reports/evaluations", "/reports/catalog",
                 "/exchange/licences", "/supervision/overdue-cases",
                 "/supervision/overdue-rectifications", "/catalog/items"):  # fmt: skip
        assert path in spec["paths"], path


def test_a_drifted_spec_is_detected(tmp_path: Path) -> None:
    spec = openapi.document()
    del spec["paths"]["/reports/cases"]
    assert spec != openapi.document()
    target = tmp_path / "hub.json"
    openapi.write(target)
    assert json.loads(target.read_text()) == openapi.document()
