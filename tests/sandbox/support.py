"""A province configured only from the sandbox's outputs: its own IdP and a hall (``zwfw serve``
processes) whose ``hub:`` settings are the file the sandbox wrote for it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import yaml

from zwfw.codes.personal import build_resident_id
from zwfw.provisioning import ProvisioningPlan, apply_plan
from zwfw.provisioning.plan import ClientPlan, Operator, PersonPlan, RealmPlan
from zwfw.reference import keys
from zwfw.reference.national import Client, ServiceProcess, free_port
from zwfw.reference.platform import ProvinceSpec, demo_guide
from zwfw.reference.signin import sign_in
from zwfw.services.kit.tokens import ClientCredentials

ZWFW = str(Path(sys.executable).with_name("zwfw"))
REPO = Path(__file__).resolve().parents[2]
REGION = "340000"
SPEC = ProvinceSpec(REGION, "安徽省")


def read_env_file(path: Path) -> dict[str, str]:
    """``export NAME=value`` lines (shell-quoted) as a mapping."""
    values: dict[str, str] = {}
    # Values may span lines (PEM keys): split the whole file the way a shell reads it.
    words = shlex.split(path.read_text(encoding="utf-8"))
    for keyword, assignment in zip(words[::2], words[1::2], strict=True):
        assert keyword == "export", keyword
        name, _, value = assignment.partition("=")
        values[name] = value
    return values


@dataclass
class SandboxRun:
    """A long-running ``zwfw sandbox`` process and its outputs."""

    process: subprocess.Popen[str]
    state_dir: Path
    output: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        import json

        return dict(json.loads((self.state_dir / "sandbox.json").read_text(encoding="utf-8")))

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if "sandbox ready" in line:
                return
        self.process.kill()
        rest = self.process.communicate()
        raise AssertionError(f"sandbox did not get ready: {''.join(self.output)} {rest}")

    def terminate(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        return int(self.process.returncode)


def sandbox_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")}


def start_sandbox(config: Path, state_dir: Path) -> SandboxRun:
    process = subprocess.Popen(
        [ZWFW, "sandbox", "--config", str(config), "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**sandbox_env(), "COLUMNS": "200"},
        start_new_session=True,
    )
    run = SandboxRun(process, state_dir)
    run.wait_ready()
    return run


@dataclass
class ProvinceUnderTest:
    """The province's IdP and hall on the ports the sandbox configuration announced."""

    root: Path
    ports: dict[str, int]
    processes: list[ServiceProcess] = field(default_factory=list)
    applicant: dict[str, str] = field(default_factory=dict)

    @classmethod
    def plan(cls, root: Path) -> ProvinceUnderTest:
        ports = {s: free_port() for s in ("identity", "hall", "elicense", "eseal")}
        return cls(root, ports)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def sandbox_config(self) -> dict[str, Any]:
        return {
            "token_ttl_seconds": 3600,
            "provinces": [{
                "region_code": REGION,
                "name": SPEC.name,
                "endpoints": {s: self.url(s) for s in self.ports},
                "declared": {"implementation_codes": [SPEC.implementation_code]},
            }],
        }  # fmt: skip

    def _process(self, service: str, env: dict[str, str], values: dict[str, Any]) -> ServiceProcess:
        name = f"{REGION}-{service}"
        for sub in ("config", "db", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        process = ServiceProcess(
            name, service, self.ports[service], self.root / "config" / f"{name}.yaml",
            self.root / "logs" / f"{name}.log", env,
        )  # fmt: skip
        common = {
            "public_base_url": process.url, "host": "127.0.0.1", "port": process.port,
            "database_url": f"sqlite:///{self.root / 'db' / (name + '.sqlite3')}",
            "log_level": "WARNING",
        }  # fmt: skip
        process.config.write_text(yaml.safe_dump({**common, **values}, allow_unicode=True))
        return process

    def start(self, hall_hub_config: Path) -> None:
        """Start the IdP and hall; the hall reports to what ``hall_hub_config`` says."""
        # The province provisions its IdP as an operator would: a provisioning client in its
        # settings, then the admin API (zwfw.provisioning).
        secrets = self.root / "secrets"
        secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
        admin_key = keys.client_jwk("provisioning-1")
        admin_file = keys.write_private(
            secrets / "provisioning.jwk", keys.private_jwk_text(admin_key)
        )
        identity = self._process("identity", keys.data_keys(), {
            "role": "province", "region_code": REGION, "secure_cookies": False,
            "provisioning_clients": [
                {"client_id": "provisioning", "jwks": keys.public_jwks(admin_key)}
            ],
        })  # fmt: skip
        hall_url, redirect = self.url("hall"), self.url("hall") + "/portal/callback"
        ops_key = keys.client_jwk("ops-1")
        ops_file = keys.write_private(secrets / "ops.jwk", keys.private_jwk_text(ops_key))
        self.ops = Client("ops", ops_key, ops_file)
        self.applicant = {"username": "applicant-340000", "password": keys.password()}
        identity.start(ZWFW, 60.0)
        self.processes.append(identity)
        apply_plan(ProvisioningPlan(realms=[RealmPlan(
            name=REGION, url=identity.url,
            admin=Operator(token_url=identity.url + "/token", client_id="provisioning",
                           key_file=admin_file),
            clients=[
                ClientPlan(client_id="ops", key_file=ops_file, scopes=["hall:catalog:write"],
                           audiences=[hall_url]),
                ClientPlan(client_id=f"portal-{REGION}", name="portal", auth_method="none",
                           grant_types=["authorization_code"], redirect_uris=[redirect],
                           scopes=["openid", "profile"], audiences=[hall_url]),
            ],
            persons=[PersonPlan(
                username=self.applicant["username"], password=self.applicant["password"],
                name="测试申请人", id_number=str(build_resident_id("340104", date(1990, 3, 1), 11)),
            )],
        )]))  # fmt: skip
        kek = keys.write_private(self.root / "secrets" / "hall.kek", keys.kek_hex())
        hub = yaml.safe_load(hall_hub_config.read_text(encoding="utf-8"))["hub"]
        issuer = identity.url
        hall = self._process("hall", {"ZWFW_KEK_FILE": str(kek)}, {
            "region_code": REGION,
            "auth": {"issuer": issuer, "audience": hall_url, "jwks_url": f"{issuer}/jwks"},
            "hub": {**hub, "base_delay_seconds": 0.5, "max_delay_seconds": 5.0},
        })  # fmt: skip
        hall.start(ZWFW, 60.0)
        self.processes.append(hall)
        self._publish()

    def _publish(self) -> None:
        token_url = self.url("identity") + "/token"
        token = ClientCredentials(
            token_url, self.ops.client_id, self.ops.key, "hall:catalog:write"
        )()
        auth = {"Authorization": f"Bearer {token}"}
        guide = demo_guide(SPEC)
        created = httpx.post(self.url("hall") + "/items", json=guide, headers=auth, timeout=20.0)
        assert created.status_code == 201, created.text
        version = created.json()["version"]
        published = httpx.post(
            f"{self.url('hall')}/items/{guide['implementation_code']}/versions/{version}/publish",
            headers=auth,
            timeout=20.0,
        )
        assert published.status_code == 200, published.text

    def applicant_token(self) -> str:
        answer = sign_in(
            self.url("identity"), f"portal-{REGION}", self.url("hall") + "/portal/callback",
            self.applicant["username"], self.applicant["password"], scope="openid",
        )  # fmt: skip
        return str(answer["access_token"])

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def eventually(fetch: Any, timeout: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response: httpx.Response = fetch()
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def lines(text: str) -> Iterator[str]:
    yield from (line for line in text.splitlines() if line.strip())
