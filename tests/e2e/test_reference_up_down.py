"""``zwfw reference up|down``: the reference platform started detached from a state directory,
what it prints and writes, a second ``up`` refused, ``down`` leaving no process behind, and
the failure paths (bad provinces, stale PID files, a start that is abandoned)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

ZWFW = str(Path(sys.executable).with_name("zwfw"))


def _zwfw(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZWFW, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if not _gone(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in pids if not _gone(p)]


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    state_dir = tmp_path_factory.mktemp("reference-up")
    result = _zwfw("reference", "up", "--state-dir", str(state_dir), "--provinces", "340000")
    try:
        assert result.returncode == 0, result.stderr
        yield state_dir, result.stdout
    finally:
        _zwfw("reference", "down", "--state-dir", str(state_dir))


def test_up_prints_what_it_started_and_writes_profiles_and_env_files(
    started: tuple[Path, str],
) -> None:
    state_dir, printed = started
    state = json.loads((state_dir / "reference.json").read_text(encoding="utf-8"))
    assert {(s["region"], s["service"]) for s in state["services"]} == {
        ("national", "identity"), ("national", "hub"),
        *(("340000", s) for s in ("identity", "hall", "elicense", "eseal")),
    }  # fmt: skip
    for service in state["services"]:
        assert service["url"] in printed
        assert httpx.get(service["url"] + "/readyz", timeout=10.0).status_code == 200
    province = state["provinces"]["340000"]
    assert province["name"] == "安徽省"
    assert province["profile"] in printed
    assert province["env_file"] in printed
    profile = yaml.safe_load(Path(province["profile"]).read_text(encoding="utf-8"))
    assert profile["region_code"] == "340000"
    env = Path(province["env_file"])
    assert env.stat().st_mode & 0o777 == 0o600
    assert "ZWFW_REF_340000_IDENTITY_PASSWORD=" in env.read_text(encoding="utf-8")
    assert int((state_dir / "reference.pid").read_text()) == state["pid"]


def test_what_was_provisioned_is_unchanged_by_a_rerun(started: tuple[Path, str]) -> None:
    state_dir, _ = started
    plan = state_dir / "secrets" / "provisioning-plan.yaml"
    assert plan.stat().st_mode & 0o777 == 0o600
    result = _zwfw("provision", "apply", "--plan", str(plan))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    kinds = {line.split()[1] for line in lines[:-1]}
    assert {"client", "trust", "person", "province", "seal", "licence", "item"} <= kinds
    assert all(line.startswith("unchanged") for line in lines[:-1]), result.stdout
    assert json.loads(lines[-1])["summary"] == "nothing to change"


def test_a_second_up_on_a_running_state_dir_is_refused(started: tuple[Path, str]) -> None:
    state_dir, _ = started
    result = _zwfw("reference", "up", "--state-dir", str(state_dir), "--provinces", "340000")
    assert result.returncode == 1
    assert "already runs from" in result.stderr
    assert "zwfw reference down" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # The running platform is untouched.
    state = json.loads((state_dir / "reference.json").read_text(encoding="utf-8"))
    assert not _gone(state["pid"])


def test_down_stops_every_process(started: tuple[Path, str]) -> None:
    state_dir, _ = started
    state = json.loads((state_dir / "reference.json").read_text(encoding="utf-8"))
    pids = [state["pid"], *(s["pid"] for s in state["services"])]
    result = _zwfw("reference", "down", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    assert f"(pid {state['pid']}) stopped" in result.stdout
    assert _wait_gone(pids) == []
    assert not (state_dir / "reference.pid").exists()
    assert not (state_dir / "reference.json").exists()
    again = _zwfw("reference", "down", "--state-dir", str(state_dir))
    assert again.returncode == 0
    assert "no reference platform runs" in again.stdout


def test_up_again_on_the_state_dir_of_a_stopped_platform_starts_afresh(tmp_path: Path) -> None:
    # The second start makes new secrets; the first start's databases, sealed under the old
    # ones, must not be taken over (its IdP could not sign a token with its stored key).
    for attempt in ("first", "second"):
        result = _zwfw("reference", "up", "--state-dir", str(tmp_path), "--provinces", "340000")
        assert result.returncode == 0, f"{attempt} start: {result.stderr}"
        state = json.loads((tmp_path / "reference.json").read_text(encoding="utf-8"))
        assert state["status"] == "ready"
        down = _zwfw("reference", "down", "--state-dir", str(tmp_path))
        assert down.returncode == 0, down.stderr


# --- failure paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provinces", "reason"),
    [("340100", "not a province-level"), ("990000", "--provinces"),
     ("340000,340000", "given twice")],
)  # fmt: skip
def test_bad_provinces_are_a_usage_error(tmp_path: Path, provinces: str, reason: str) -> None:
    result = _zwfw("reference", "up", "--state-dir", str(tmp_path), "--provinces", provinces)
    assert result.returncode == 2
    assert result.stderr.startswith("zwfw reference: ")
    assert reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "reference.pid").exists()


def test_a_stale_pid_file_is_removed_by_down(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "reference.pid").write_text(f"{dead.pid}\n")
    result = _zwfw("reference", "down", "--state-dir", str(tmp_path))
    assert result.returncode == 0
    assert "removed a stale PID file" in result.stdout
    assert not (tmp_path / "reference.pid").exists()


def test_a_pid_file_naming_another_program_is_stale_and_left_running(tmp_path: Path) -> None:
    # A reused PID: this test's own process is alive but is no supervisor of tmp_path.
    (tmp_path / "reference.pid").write_text(f"{os.getpid()}\n")
    result = _zwfw("reference", "down", "--state-dir", str(tmp_path))
    assert result.returncode == 0
    assert "removed a stale PID file" in result.stdout


def test_up_refuses_while_a_supervisor_runs_and_down_stops_it(tmp_path: Path) -> None:
    state_dir = tmp_path.resolve()
    # Stands in for a supervisor of this state directory (same argv shape).
    supervisor = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "reference", "run",
         "--state-dir", str(state_dir)],
        start_new_session=True,
    )  # fmt: skip
    try:
        (state_dir / "reference.pid").write_text(f"{supervisor.pid}\n")
        refused = _zwfw("reference", "up", "--state-dir", str(state_dir))
        assert refused.returncode == 1
        assert f"(pid {supervisor.pid})" in refused.stderr
        stopped = _zwfw("reference", "down", "--state-dir", str(state_dir), "--grace", "10")
        assert stopped.returncode == 0, stopped.stderr
        assert supervisor.wait(timeout=10) == -signal.SIGTERM
        assert not (state_dir / "reference.pid").exists()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


def test_a_start_that_is_not_ready_in_time_leaves_nothing_running(tmp_path: Path) -> None:
    result = _zwfw(
        "reference", "up", "--state-dir", str(tmp_path), "--provinces", "340000", "--timeout", "3"
    )
    assert result.returncode == 1
    assert "not ready within 3s" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "reference.pid").exists()
    # Every service that had started is stopped by the supervisor on its way out.
    survivors = subprocess.run(
        ["pgrep", "-f", str(tmp_path.resolve() / "config")], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert _wait_gone([int(p) for p in survivors.stdout.split()]) == []
