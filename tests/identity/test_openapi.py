"""The exported OpenAPI document matches the code."""

from __future__ import annotations

import json
from pathlib import Path

from zwfw.services.identity import openapi

EXPORTED = Path(__file__).resolve().parents[2] / "conformance/spec/openapi/identity.json"


def test_exported_spec_matches_the_code() -> None:
    assert EXPORTED.is_file(), f"{EXPORTED} is missing; run: {openapi.REGENERATE}"
    exported = json.loads(EXPORTED.read_text(encoding="utf-8"))
    current = openapi.document()
    assert exported == current, (
        f"{EXPORTED.name} differs from the code; regenerate it with: {openapi.REGENERATE}"
    )


def test_spec_describes_the_protocol_and_admin_endpoints() -> None:
    spec = openapi.document()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    for path in ("/.well-known/openid-configuration", "/jwks", "/token", "/introspect",
                 "/revoke", "/userinfo", "/authorize", "/logout", "/admin/clients",
                 "/admin/clients/{client_id}", "/admin/accounts", "/admin/accounts/{sub}",
                 "/admin/trust", "/admin/keys/rotate"):  # fmt: skip
        assert path in paths, path
    assert set(paths["/admin/clients/{client_id}"]) == {"get", "put", "delete"}
    for schema in ("ClientIn", "ClientSpec", "ClientPut", "AccountIn", "TrustIn", "TrustPut"):
        assert schema in spec["components"]["schemas"], schema


def test_a_drifted_spec_is_detected(tmp_path: Path) -> None:
    # The comparison is over content: a removed endpoint is a difference.
    spec = openapi.document()
    del spec["paths"]["/jwks"]
    assert spec != openapi.document()
    target = tmp_path / "identity.json"
    openapi.write(target)
    assert json.loads(target.read_text()) == openapi.document()
