"""Host deployment timings: a fresh deploy of the local inventory and the idempotent rerun.

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
OFFSETS = (100, 110, 200, 210, 220, 230)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS / "ansible.cfg")
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        argv, cwd=PLAYBOOKS, env=_env(), capture_output=True, text=True, check=False
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
        finally:
            subprocess.run(
                [playbook, "-i", "inventories/local", "teardown.yml", *extra],
                cwd=PLAYBOOKS, env=_env(), capture_output=True, check=False,
            )  # fmt: skip
    return [
        Figure("deploy local inventory, fresh", fresh, "s", "one-task play", baseline, False),
        Figure("deploy local inventory, rerun (changed=0)", rerun, "s", "one-task play",
               baseline, False),
    ]  # fmt: skip
