"""`zwfw deploy`: bad input gives one line on stderr and a non-zero exit, and nothing is made
from a plan that cannot be read. (The steps themselves run against a real deployment in
test_deploy_playbooks.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ZWFW = str(Path(sys.executable).with_name("zwfw"))


def _zwfw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZWFW, *args], capture_output=True, text=True, timeout=120, check=False)


def test_a_missing_plan_is_a_usage_error(tmp_path: Path) -> None:
    result = _zwfw(
        "deploy", "prepare", "--plan", str(tmp_path / "nope.json"), "--stage", "material"
    )
    assert result.returncode == 2
    assert result.stderr.startswith("zwfw deploy: plan ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "material.json").exists()


@pytest.mark.parametrize("content", ["{not json", json.dumps({"certify_dir": "x"})])
def test_an_unreadable_plan_is_refused_in_one_line(tmp_path: Path, content: str) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    result = _zwfw("deploy", "credentials", "--plan", str(plan), "--province", "province-a")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_unknown_stage_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    result = _zwfw("deploy", "prepare", "--plan", str(plan), "--stage", "everything")
    assert result.returncode == 2
    assert "platform or material" in result.stderr


def test_credentials_need_the_material_first(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({
        "certify_dir": str(tmp_path / "certify"), "var_dir": str(tmp_path / "var"),
        "ca_bundle": str(tmp_path / "ca.pem"), "national": {}, "provinces": [],
    }))  # fmt: skip
    result = _zwfw("deploy", "credentials", "--plan", str(plan), "--province", "province-a")
    assert result.returncode == 1
    assert result.stderr.strip() == "zwfw deploy: no province province-a in the plan"


def test_trust_is_put_into_an_identity_instance_before_it_starts(tmp_path: Path) -> None:
    import os

    import yaml

    from zwfw.services.identity import IdentitySettings, build
    from zwfw.services.identity.trust import list_issuers
    from zwfw.services.kit import load_settings, migrate

    config = tmp_path / "idp.yaml"
    config.write_text(yaml.safe_dump({
        "public_base_url": "https://idp.province.test",
        "database_url": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "data_key": os.urandom(16).hex(), "lookup_key": os.urandom(32).hex(),
    }))  # fmt: skip
    args = ("deploy", "trust", "https://idp.gov.test", "https://idp.gov.test/jwks")
    unmigrated = _zwfw(*args, "--config", str(config))
    assert unmigrated.returncode == 1
    assert len(unmigrated.stderr.strip().splitlines()) == 1, unmigrated.stderr
    app = build(load_settings(IdentitySettings, config))
    migrate(app)
    first = _zwfw(*args, "--config", str(config), "--max-level", "real_name")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "changed": True, "issuer": "https://idp.gov.test", "result": "created",
    }  # fmt: skip
    again = _zwfw(*args, "--config", str(config), "--max-level", "real_name")
    assert json.loads(again.stdout)["changed"] is False
    refused = _zwfw(*args, "--config", str(config), "--max-level", "gold")
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("unknown assurance level gold")
    try:
        with app.state.kit.sessions() as db:
            entries = list_issuers(db)
    finally:
        app.state.kit.engine.dispose()
    assert [(e.issuer, e.jwks_uri, e.max_level) for e in entries] == [
        ("https://idp.gov.test", "https://idp.gov.test/jwks", "real_name")
    ]
