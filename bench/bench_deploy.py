"""Host deployment timings: a fresh deploy of the local inventory (national side, provinces A
and B, with the certification material), the idempotent rerun, and the demo end to end (the
fresh deploy plus minting credentials and certifying province A, as `make demo` does).

Baseline: ansible-playbook running a one-task play on the same inventory, so the figures show
the deployment's own cost above Ansible's start-up on this machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figure import Figure

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS = ROOT / "playbooks"
BIN = Path(sys.executable).parent
OFFSETS = (100, 110, 200, 210, 220, 230, 300, 310, 320, 330)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")}
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS / "ansible.cfg")
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def _timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path = PLAYBOOKS) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        argv, cwd=cwd, env=env or _env(), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed:\n{result.stdout[-3000:]}")
    return elapsed


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _free_base() -> int:
    for base in range(40000, 49000, 1000):
        if all(_free(base + offset) for offset in OFFSETS):
            return base
    raise RuntimeError("no free port range")


def _env_file(path: Path) -> dict[str, str]:
    dump = subprocess.run(
        ["sh", "-c", '. "$1" && env -0', "sh", str(path)],
        env={"PATH": os.environ.get("PATH", "")}, capture_output=True, check=True,
    ).stdout  # fmt: skip
    pairs = (entry.decode().partition("=") for entry in dump.split(b"\0") if entry)
    return {name: value for name, _, value in pairs if name.startswith(("ZWFW_", "SSL_"))}


def _certify(state: Path, tmp: Path) -> float:
    """Fresh credentials and `zwfw certify` of province A (must certify)."""
    zwfw = str(BIN / "zwfw")
    plan = state / "certify" / "plan.json"
    started = time.perf_counter()
    _timed([zwfw, "deploy", "credentials", "--plan", str(plan), "--province", "province-a"])
    env = {**_env(), **_env_file(state / "certify" / "province-a.env")}
    env["ZWFW_HARNESS_HOME"] = str(tmp / "harness")
    target = str(state / "certify" / "province-a.yaml")
    _timed([zwfw, "certify", "--target", target, "--out", str(tmp / "report")], env, ROOT)
    return time.perf_counter() - started


def figures() -> list[Figure]:
    playbook = str(BIN / "ansible-playbook")
    with tempfile.TemporaryDirectory(prefix="zwfw-bench-deploy-") as tmp:
        state = Path(tmp) / "state"
        extra = ["-e", f"zwfw_state_dir={state}", "-e", f"zwfw_port_base={_free_base()}"]
        noop = Path(tmp) / "noop.yml"
        noop.write_text(
            "- name: Baseline\n  hosts: services\n  gather_facts: false\n  tasks:\n"
            "    - name: Nothing\n      ansible.builtin.debug:\n        msg: baseline\n"
        )
        baseline = _timed([playbook, "-i", "inventories/local", str(noop)])
        try:
            fresh = _timed([playbook, "-i", "inventories/local", "site.yml", *extra])
            rerun = _timed([playbook, "-i", "inventories/local", "site.yml", *extra])
            certify = _certify(state, Path(tmp))
        finally:
            subprocess.run(
                [playbook, "-i", "inventories/local", "teardown.yml", *extra],
                cwd=PLAYBOOKS, env=_env(), capture_output=True, check=False,
            )  # fmt: skip
    return [
        Figure("deploy local inventory, fresh", fresh, "s", "one-task play", baseline, False),
        Figure("deploy local inventory, rerun (changed=0)", rerun, "s", "one-task play",
               baseline, False),
        Figure("demo end to end (fresh deploy + certify province A)", fresh + certify, "s",
               "one-task play", baseline, False),
    ]  # fmt: skip
