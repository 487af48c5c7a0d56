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


def test_a_key_is_made_once_and_its_public_half_printed(tmp_path: Path) -> None:
    key = tmp_path / "secrets" / "idp-provisioning.jwk"
    first = _zwfw("deploy", "key", str(key), "--kid", "provisioning-1")
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["changed"] is True
    assert "d" not in made["jwks"]["keys"][0]  # the public half only
    assert key.stat().st_mode & 0o777 == 0o600
    again = json.loads(_zwfw("deploy", "key", str(key)).stdout)
    assert again == {"changed": False, "jwks": made["jwks"]}


def test_trust_and_clients_go_through_the_running_idps_admin_api(tmp_path: Path) -> None:
    import yaml

    from zwfw.reference import keys
    from zwfw.reference.national import ServiceProcess, free_port

    admin_key = tmp_path / "idp-provisioning.jwk"
    made = json.loads(_zwfw("deploy", "key", str(admin_key)).stdout)
    port = free_port()
    config = tmp_path / "idp.yaml"
    config.write_text(yaml.safe_dump({
        "public_base_url": f"http://127.0.0.1:{port}", "host": "127.0.0.1", "port": port,
        "database_url": f"sqlite:///{tmp_path / 'idp.sqlite3'}", "secure_cookies": False,
        "provisioning_clients": [{"client_id": "provisioning", "jwks": made["jwks"]}],
    }))  # fmt: skip
    args = ("deploy", "trust", "https://idp.gov.test", "https://idp.gov.test/jwks",
            "--config", str(config), "--admin-key", str(admin_key))  # fmt: skip
    # Nothing answers yet: one line, non-zero.
    down = _zwfw(*args)
    assert down.returncode == 1
    assert "cannot reach" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1, down.stderr
    idp = ServiceProcess("idp", "identity", port, config, tmp_path / "idp.log", keys.data_keys())
    idp.start(ZWFW, 60.0)
    try:
        first = _zwfw(*args, "--max-level", "real_name")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout) == {
            "changed": True, "issuer": "https://idp.gov.test", "result": "created",
        }  # fmt: skip
        again = _zwfw(*args, "--max-level", "real_name")
        assert json.loads(again.stdout)["changed"] is False
        refused = _zwfw(*args, "--max-level", "gold")
        assert refused.returncode == 1
        assert refused.stderr.strip().endswith("unknown assurance level gold")
        hall_key = str(tmp_path / "hall-a.jwk")
        client = ("deploy", "client", "hall-a", "--config", str(config), "--admin-key",
                  str(admin_key), "--key", hall_key, "--scope", "hub:report")  # fmt: skip
        assert json.loads(_zwfw(*client).stdout) == {"changed": True, "client_id": "hall-a"}
        assert json.loads(_zwfw(*client).stdout) == {"changed": False, "client_id": "hall-a"}
        stranger = _zwfw(*args[:-1], hall_key)
        assert stranger.returncode == 1
        assert "token of provisioning" in stranger.stderr
    finally:
        idp.stop()
