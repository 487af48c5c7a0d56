"""The exported OpenAPI document matches the code."""

from __future__ import annotations

import json
from pathlib import Path

from zwfw.services.elicense import openapi

EXPORTED = Path(__file__).resolve().parents[2] / "conformance/spec/openapi/elicense.json"


def test_exported_spec_matches_the_code() -> None:
    assert EXPORTED.is_file(), f"{EXPORTED} is missing; run: {openapi.REGENERATE}"
    exported = json.loads(EXPORTED.read_text(encoding="utf-8"))
    assert exported == openapi.document(), (
        f"{EXPORTED.name} differs from the code; regenerate it with: {openapi.REGENERATE}"
    )


def test_spec_describes_issuance_holder_copies_and_verify() -> None:
    spec = openapi.document()
    assert spec["openapi"].startswith("3.1")
    for path in ("/types", "/licences", "/licences/{identifier}/copies", "/me/licences",
                 "/me/licences/{identifier}/usage", "/verify", "/verify/{identifier}",
                 "/issuers"):  # fmt: skip
        assert path in spec["paths"], path
    verify = spec["paths"]["/verify"]["post"]["responses"]["200"]["content"]["application/json"]
    assert verify["schema"]["$ref"].endswith("/VerifyOut")
    assert "CopyIn" in spec["components"]["schemas"]


def test_a_drifted_spec_is_detected(tmp_path: Path) -> None:
    spec = openapi.document()
    del spec["paths"]["/verify"]
    assert spec != openapi.document()
    target = tmp_path / "elicense.json"
    openapi.write(target)
    assert json.loads(target.read_text()) == openapi.document()
