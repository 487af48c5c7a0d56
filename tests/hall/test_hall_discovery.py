"""The discovery document and the exported OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zwfw.harness.requirements import load_catalog
from zwfw.services.hall import openapi
from zwfw.services.hall.settings import SPEC_VERSION, HallSettings
from zwfw.services.kit import SettingsError, load_settings

from .support import Hall

EXPORTED = Path(__file__).resolve().parents[2] / "conformance/spec/openapi/hall.json"


def test_discovery_document(hall: Hall) -> None:
    response = hall.client.get("/.well-known/zwfw")
    assert response.status_code == 200
    document = response.json()
    assert document["region_code"] == "340000"
    assert document["spec_version"] == SPEC_VERSION
    assert document["services"] == {
        "elicense": "https://elicense.test.zwfw",
        "eseal": "https://eseal.test.zwfw",
        "hall": "https://hall.test.zwfw",
        "identity": "https://identity.test.zwfw",
    }
    assert document["endpoints"]["catalog"] == "https://hall.test.zwfw/items"
    assert document["endpoints"]["cases"] == "https://hall.test.zwfw/cases"
    assert document["jwks_uris"] == {"identity": "https://identity.test.zwfw/jwks"}
    assert document["hub"] == "https://hub.test.zwfw"
    assert "hall:case:handle" in document["scopes"]


def test_spec_version_is_the_catalogs() -> None:
    assert load_catalog().spec_version == SPEC_VERSION


def test_bad_discovery_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "hall.yaml"
    config.write_text("discovery:\n  services:\n    identity: not a url\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"discovery\.services\.identity"):
        load_settings(HallSettings, config)
    config.write_text("rectification_days: 0\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="rectification_days"):
        load_settings(HallSettings, config)


def test_exported_openapi_matches_the_code() -> None:
    assert EXPORTED.is_file(), f"{EXPORTED} is missing; run: {openapi.REGENERATE}"
    exported = json.loads(EXPORTED.read_text(encoding="utf-8"))
    assert exported == openapi.document(), (
        f"{EXPORTED.name} differs from the code; regenerate it with: {openapi.REGENERATE}"
    )


def test_a_drifted_openapi_is_detected(tmp_path: Path) -> None:
    spec = openapi.document()
    del spec["paths"]["/cases/{number}/steps"]
    assert spec != openapi.document()
    target = tmp_path / "hall.json"
    assert openapi.main([str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == openapi.document()
    assert openapi.main([]) == 2
