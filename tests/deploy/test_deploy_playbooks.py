"""The Ansible playbooks: syntax, ansible-lint (production profile), and a real deployment of
the local inventory (national side, provinces A and B) into a temporary state directory,
province A certified against it with `zwfw certify`, rerun (changed=0) and torn down."""

from __future__ import annotations

import os
import random
import socket
import ssl
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zwfw.harness.deploycheck import check_ansible_lint

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
INVENTORIES = ["local", "site-example"]
VENV_BIN = Path(sys.executable).parent

# What the local inventory deploys: (instance, port offset from the base port).
LOCAL_INSTANCES = {
    "national-identity": 100,
    "national-hub": 110,
    "province-a-identity": 200,
    "province-a-hall": 210,
    "province-a-elicense": 220,
    "province-a-eseal": 230,
    "province-b-identity": 300,
    "province-b-hall": 310,
    "province-b-elicense": 320,
    "province-b-eseal": 330,
}


def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_LOCAL_TEMP"] = env["ANSIBLE_REMOTE_TEMP"] = "/tmp/.ansible-zwfw-tests"
    return env


def _run(argv: list[str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=PLAYBOOKS, env=_ansible_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_syntax_check(ansible_playbook: str, inventory: str) -> None:
    for playbook in ("site.yml", "teardown.yml"):
        result = _run(
            [ansible_playbook, "--syntax-check", "-i", f"inventories/{inventory}", playbook]
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_syntax_check_catches_a_broken_playbook(ansible_playbook: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: all\n  tasks:\n    - ansible.builtin.debug:\n      msg: [\n")
    result = _run([ansible_playbook, "--syntax-check", "-i", "inventories/local", str(broken)])
    assert result.returncode != 0


def test_ansible_lint_production_profile(ansible_lint: str) -> None:
    # Through the static checks of the deployment (SEC-DEP-004, `zwfw security static
    # --playbooks`): the same run, read from ansible-lint's codeclimate report.
    result = check_ansible_lint(PLAYBOOKS, ansible_lint)
    assert [Path(entry).name for entry in result.checked] == ["site.yml", "teardown.yml"]
    assert not result.findings, [f"{f.path}:{f.line}: {f.message}" for f in result.findings]


def _port_base() -> int:
    """A base port whose service ports are all free now."""
    for _ in range(50):
        base = random.randrange(30000, 39000, 1000)
        ports = [base + offset for offset in LOCAL_INSTANCES.values()]
        free = True
        for port in ports:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    free = False
                    break
        if free:
            return base
    raise AssertionError("no free port range for the deployment")


class LocalDeployment:
    def __init__(self, ansible_playbook: str, state: Path, port_base: int) -> None:
        self.ansible_playbook = ansible_playbook
        self.state = state
        self.port_base = port_base

    def play(self, playbook: str = "site.yml") -> subprocess.CompletedProcess[str]:
        return _run(
            [self.ansible_playbook, "-i", "inventories/local", playbook,
             "-e", f"zwfw_state_dir={self.state}", "-e", f"zwfw_port_base={self.port_base}"]
        )  # fmt: skip

    def port(self, instance: str) -> int:
        return self.port_base + LOCAL_INSTANCES[instance]

    def shutdown(self) -> None:
        conf = self.state / "etc" / "supervisord.conf"
        if (self.state / "run" / "supervisord.pid").exists():
            subprocess.run(
                [str(VENV_BIN / "supervisorctl"), "--configuration", str(conf), "shutdown"],
                capture_output=True, timeout=120, check=False,
            )  # fmt: skip


@pytest.fixture(scope="module")
def deployment(
    ansible_playbook: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalDeployment, subprocess.CompletedProcess[str]]]:
    require = VENV_BIN / "supervisord"
    if not require.exists():
        pytest.fail(f"{require} missing: .venv/bin/pip install -e '.[dev]'")
    deployed = LocalDeployment(
        ansible_playbook, tmp_path_factory.mktemp("deploy") / "state", _port_base()
    )
    try:
        first = deployed.play()
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
        yield deployed, first
    finally:
        deployed.shutdown()


def _ready(port: int, cafile: Path) -> dict[str, object]:
    import json

    context = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=context) as answer:
        assert answer.status == 200
        return json.loads(answer.read())


def test_every_service_answers_readyz_over_verified_tls(
    deployment: tuple[LocalDeployment, subprocess.CompletedProcess[str]],
) -> None:
    deployed, _ = deployment
    bundle = deployed.state / "pki" / "tls" / "ca-bundle.pem"
    for instance in LOCAL_INSTANCES:
        body = _ready(deployed.port(instance), bundle)
        assert body["status"] == "ready", (instance, body)
    # A client that does not trust the deployment's CAs is refused.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(
            f"https://127.0.0.1:{deployed.port('province-a-hall')}/readyz",
            context=ssl.create_default_context(),
        )


def test_private_keys_and_secrets_are_owner_only(
    deployment: tuple[LocalDeployment, subprocess.CompletedProcess[str]],
) -> None:
    deployed, _ = deployment
    sensitive = [
        *deployed.state.glob("pki/**/key.pem"),
        *(deployed.state / "secrets").iterdir(),
        *(deployed.state / "etc").glob("*.yaml"),
    ]
    assert len(list(deployed.state.glob("pki/tls/*/key.pem"))) >= 2 + len(LOCAL_INSTANCES)
    # The SM2 national CA and one channel signing key per site.
    assert len(list(deployed.state.glob("pki/sm2/*/key.pem"))) == 4
    # The certification material: passwords, client keys and tokens.
    sensitive += [
        *(deployed.state / "certify").glob("*.env"),
        deployed.state / "certify" / "material.json",
    ]
    assert len(list((deployed.state / "certify").glob("*.env"))) == 2
    for path in sensitive:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} has mode {mode:04o}"


def test_federation_trust_and_system_clients_are_in_place(
    deployment: tuple[LocalDeployment, subprocess.CompletedProcess[str]],
) -> None:
    import httpx

    from zwfw.services.kit.tokens import ClientCredentials, load_client_key

    deployed, _ = deployment
    etc = deployed.state / "etc"
    ca = ssl.create_default_context(cafile=str(deployed.state / "pki" / "tls" / "ca-bundle.pem"))

    def admin(idp: str, path: str) -> list[dict[str, object]]:
        # What the IdP says through its admin API, as its provisioning client.
        url = f"https://127.0.0.1:{deployed.port(idp)}"
        key = load_client_key(deployed.state / "secrets" / f"{idp}-provisioning.jwk")
        with httpx.Client(verify=ca, timeout=20.0) as http:
            token = ClientCredentials(url + "/token", "provisioning", key, "identity:admin",
                                      http=http)()  # fmt: skip
            answer = http.get(url + path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    def registered(idp: str) -> dict[str, tuple[str, list[str]]]:
        return {
            c["client_id"]: (c["auth_method"], c["scopes"]) for c in admin(idp, "/admin/clients")
        }

    trusted = {e["issuer"]: e["jwks_uri"] for e in admin("province-a-identity", "/admin/trust")}
    national_idp = f"https://127.0.0.1:{deployed.port('national-identity')}"
    assert trusted[national_idp] == f"{national_idp}/jwks"
    national = registered("national-identity")
    for hall in ("province-a-hall", "province-b-hall"):
        assert national[hall] == ("private_key_jwt", ["hub:report", "hub:exchange"])
    # The hub's one client at each provincial IdP, with the key its settings name.
    for idp in ("province-a-identity", "province-b-identity"):
        listed = registered(idp)
        assert listed["national-hub"] == ("private_key_jwt", ["elicense:share", "elicense:consent"])
    hub = (etc / "national-hub.yaml").read_text(encoding="utf-8")
    assert "province_client_key_file:" in hub
    assert "subject_tokens:" in hub


def test_services_that_keep_personal_data_or_keys_get_their_kek(
    deployment: tuple[LocalDeployment, subprocess.CompletedProcess[str]],
) -> None:
    deployed, _ = deployment
    conf = (deployed.state / "etc" / "supervisord.conf").read_text(encoding="utf-8")
    for site in ("province-a", "province-b"):
        for service in ("hall", "eseal"):
            kek = deployed.state / "secrets" / f"{site}-{service}-kek"
            assert f'ZWFW_KEK_FILE="{kek}"' in conf
            assert kek.stat().st_mode & 0o777 == 0o600
            assert len(bytes.fromhex(kek.read_text())) == 16
    # The e-licence library has no KEK, so no such variable in its program's section.
    section = conf.split("[program:zwfw-province-a-elicense-1]")[1].split("[program:")[0]
    assert "ZWFW_KEK_FILE" not in section
    # The issuer seals made after the start are in the libraries' settings now.
    for site in ("province-a", "province-b"):
        settings = (deployed.state / "etc" / f"{site}-elicense.yaml").read_text(encoding="utf-8")
        assert "issuers:" in settings
        assert "es_id:" in settings
        hall = (deployed.state / "etc" / f"{site}-hall.yaml").read_text(encoding="utf-8")
        assert "trust_bundle:" in hall


def _certify(
    deployed: LocalDeployment, out: Path, harness: Path
) -> subprocess.CompletedProcess[str]:
    """`zwfw deploy credentials` then `zwfw certify` against province A, as `make demo` does."""
    plan = deployed.state / "certify" / "plan.json"
    zwfw = str(VENV_BIN / "zwfw")
    minted = subprocess.run(
        [zwfw, "deploy", "credentials", "--plan", str(plan), "--province", "province-a"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert minted.returncode == 0, minted.stdout + minted.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")}
    env.update(_read_env_file(deployed.state / "certify" / "province-a.env"))
    env["ZWFW_HARNESS_HOME"] = str(harness)
    return subprocess.run(
        [zwfw, "certify", "--target", str(deployed.state / "certify" / "province-a.yaml"),
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip


def _read_env_file(path: Path) -> dict[str, str]:
    """The variables the env file exports, read the way `make demo` does: sourced by sh."""
    dump = subprocess.run(
        ["sh", "-c", '. "$1" && env -0', "sh", str(path)],
        env={"PATH": os.environ.get("PATH", "")}, capture_output=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    pairs = (entry.decode().partition("=") for entry in dump.split(b"\0") if entry)
    return {name: value for name, _, value in pairs if name.startswith(("ZWFW_", "SSL_"))}


def test_province_a_is_certified_against_the_deployment(
    deployment: tuple[LocalDeployment, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    import json

    deployed, _ = deployment
    profile = (deployed.state / "certify" / "province-a.yaml").read_text(encoding="utf-8")
    assert "https://127.0.0.1:" in profile
    assert "ca-bundle.pem" in profile
    assert "PRIVATE KEY" not in profile
    assert "eyJ" not in profile
    out = tmp_path / "report"
    result = _certify(deployed, out, tmp_path / "harness")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    failing = {
        r["id"]: r.get("reason")
        for r in report["requirements"]
        if r["in_scope"] and r["status"] != "pass"
    }
    assert failing == {}, result.stdout[-3000:] + result.stderr[-2000:]
    assert (report["certified"], report["verdict"], result.returncode) == (True, "certified", 0)
    verified = subprocess.run(
        [str(VENV_BIN / "zwfw"), "verify-report", str(out)],
        env={**os.environ, "ZWFW_HARNESS_HOME": str(tmp_path / "harness")},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_drifted_settings_file_is_restored_and_only_its_replica_restarted(
    deployment: tuple[LocalDeployment, subprocess.CompletedProcess[str]],
    supervised: Callable[[Path], dict[str, int]],
) -> None:
    deployed, _ = deployment
    conf = deployed.state / "etc" / "supervisord.conf"
    settings = deployed.state / "etc" / "province-b-eseal.yaml"
    rendered = settings.read_text(encoding="utf-8")
    before = supervised(conf)
    settings.write_text(rendered + "# edited by hand\n", encoding="utf-8")
    fixed = deployed.play()
    assert fixed.returncode == 0, fixed.stdout[-6000:]
    assert settings.read_text(encoding="utf-8") == rendered
    after = supervised(conf)
    assert after.keys() == before.keys()
    restarted = {program for program in before if after[program] != before[program]}
    assert restarted == {"zwfw-province-b-eseal-1"}
    body = _ready(deployed.port("province-b-eseal"), deployed.state / "pki/tls/ca-bundle.pem")
    assert body["status"] == "ready"


def test_rerun_changes_nothing_and_teardown_stops_everything(
    deployment: tuple[LocalDeployment, subprocess.CompletedProcess[str]],
    supervised: Callable[[Path], dict[str, int]],
    recap: Callable[[str], dict[str, int]],
) -> None:
    deployed, first = deployment
    assert recap(first.stdout)["changed"] > 0
    conf = deployed.state / "etc" / "supervisord.conf"
    before = supervised(conf)
    again = deployed.play()
    assert again.returncode == 0, again.stdout[-6000:]
    totals = recap(again.stdout)
    changed = [line for line in again.stdout.splitlines() if line.startswith("changed:")]
    assert totals["changed"] == 0, changed
    assert totals["failed"] == 0
    # Nothing was restarted: every replica is the process it was.
    assert supervised(conf) == before

    down = deployed.play("teardown.yml")
    assert down.returncode == 0, down.stdout[-3000:]
    for instance in LOCAL_INSTANCES:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", deployed.port(instance))) != 0, instance
    assert not (deployed.state / "run" / "supervisord.pid").exists()
