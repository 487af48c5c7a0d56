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
