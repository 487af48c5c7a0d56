"""Static checks of a deployment (`zwfw security static`), each on fixtures made good and bad:
secrets' modes and owners, listening ports of real processes, the gateway's rendered nginx
configuration, ansible-lint's and checkov's reports, and the SARIF they are written as."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from zwfw.cli import app
from zwfw.harness.deploycheck import (
    StaticCheckError,
    check_ansible_lint,
    check_checkov,
    check_gateway_config,
    check_listening_ports,
    check_secret_files,
    parse_nginx,
    sarif,
)

REPO = Path(__file__).resolve().parents[2]
GATEWAY_ROLE = REPO / "playbooks" / "roles" / "gateway"
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-2.1.0-required.schema.json"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"


def _validate_sarif(document: dict[str, Any]) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    ).validate(document)


def _modes(findings: list[Any]) -> list[str]:
    return sorted(finding.failure_mode for finding in findings)


# --- secrets -----------------------------------------------------------------------------


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory laid out as the playbooks write it, every secret 0600."""
    root = tmp_path / "state"
    files = {
        "pki/tls/province-a-hall/key.pem": PRIVATE_KEY,
        "pki/tls/province-a-hall/cert.pem": "-----BEGIN CERTIFICATE-----\n",
        "pki/tls/ca-bundle.pem": "-----BEGIN CERTIFICATE-----\n",
        "pki/sm2/national-ca/key.pem": PRIVATE_KEY,
        "secrets/province-a-hall-kek": "0" * 64,
        "secrets/province-a-identity-provisioning.jwk": '{"d": "x"}',
        "etc/province-a-hall.yaml": "database_url: postgresql://hall:pw@127.0.0.1/hall\n",
        "certify/province-a.env": "export ZWFW_TOKEN=x\n",
        "certify/material.json": "{}",
        "gateway/log/access.log": "",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600 if "cert" not in path.name and "bundle" not in path.name else 0o644)
    (root / "gateway" / "log" / "access.log").chmod(0o644)
    return root


def test_secrets_readable_by_their_owner_only_pass(state: Path) -> None:
    result = check_secret_files(state)
    assert result.verdict == "passed", result.findings
    # Certificates, the CA bundle and logs are not secrets; everything else above is.
    assert sorted(Path(p).relative_to(state).as_posix() for p in result.checked) == [
        "certify/material.json",
        "certify/province-a.env",
        "etc/province-a-hall.yaml",
        "pki/sm2/national-ca/key.pem",
        "pki/tls/province-a-hall/key.pem",
        "secrets/province-a-hall-kek",
        "secrets/province-a-identity-provisioning.jwk",
    ]


def test_a_key_file_readable_by_others_is_a_finding(state: Path) -> None:
    key = state / "pki" / "tls" / "province-a-hall" / "key.pem"
    key.chmod(0o644)
    (state / "certify" / "province-a.env").chmod(0o640)
    result = check_secret_files(state)
    assert [(f.failure_mode, Path(f.path or "").name) for f in result.findings] == [
        ("secret-readable-by-others", "province-a.env"),
        ("secret-readable-by-others", "key.pem"),
    ]
    assert "mode 0644" in result.findings[1].message


def test_secrets_owned_by_another_user_are_findings(state: Path) -> None:
    other = "nobody" if os.geteuid() != pwd.getpwnam("nobody").pw_uid else "root"
    result = check_secret_files(state, other)
    assert set(_modes(result.findings)) == {"secret-wrong-owner"}
    assert len(result.findings) == len(result.checked) == 7
    with pytest.raises(StaticCheckError, match="no such user"):
        check_secret_files(state, "no-such-user-zwfw")


# --- listening ports -----------------------------------------------------------------------

# A stand-in for a supervisord: listens where told and starts a child that listens too.
_LISTENER = """
import socket, subprocess, sys, time
def listen(host, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(); return s
held = [listen(h, int(p)) for h, p in (a.split("=") for a in sys.argv[2:])]
if sys.argv[1] != "-":
    child = subprocess.Popen([sys.executable, __file__, "-", sys.argv[1]])
time.sleep(120)
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [int(sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    """A state dir whose services' supervisord (pid file) runs a process tree: declared
    127.0.0.1:P0 (listening there), declared 127.0.0.1:P1 (listening on 0.0.0.0), and a child
    listening on the undeclared 127.0.0.1:P2."""
    state = tmp_path / "state"
    (state / "etc").mkdir(parents=True)
    (state / "run").mkdir()
    declared, wider, undeclared = _free_ports(3)
    script = tmp_path / "listener.py"
    script.write_text(_LISTENER, encoding="utf-8")
    lines = []
    for index, port in enumerate((declared, wider)):
        settings = state / "etc" / f"province-a-hall-{index}.yaml"
        settings.write_text(f"host: 127.0.0.1\nport: {port}\n", encoding="utf-8")
        lines += [
            f"[program:province-a-hall-{index}]",
            f"command=/venv/bin/zwfw serve hall --config {settings} --port {port} --no-migrate",
        ]
    (state / "etc" / "supervisord.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script), f"127.0.0.1={undeclared}",
         f"127.0.0.1={declared}", f"0.0.0.0={wider}"]
    )  # fmt: skip
    (state / "run" / "supervisord.pid").write_text(f"{process.pid}\n")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", undeclared)) == 0:
                    break
            time.sleep(0.1)
        yield state, [declared, wider, undeclared]
    finally:
        for child in _child_pids(process.pid):
            os.kill(child, 9)
        process.kill()
        process.wait(timeout=10)


def _child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def test_listeners_other_than_the_declared_ones_are_findings(
    running: tuple[Path, list[int]],
) -> None:
    state, (declared, wider, undeclared) = running
    result = check_listening_ports(state)
    assert result.verdict == "findings", result.not_checked
    found = {
        (f.failure_mode, f.message.split(" listens on ")[1].split(",")[0]) for f in result.findings
    }
    assert found == {
        ("wider-address", f"0.0.0.0:{wider}"),
        ("undeclared-port", f"127.0.0.1:{undeclared}"),
    }
    assert result.checked == [
        "services (pid "
        + (state / "run" / "supervisord.pid").read_text().strip()
        + "): 3 listeners"
    ]
    assert str(declared) not in " ".join(f.message for f in result.findings)


def test_a_stopped_deployment_is_not_checked_never_passed(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "etc" / "supervisord.conf").write_text("[program:x]\ncommand=zwfw --port 1\n")
    (tmp_path / "run" / "supervisord.pid").write_text("999999999\n")
    result = check_listening_ports(tmp_path)
    assert result.verdict == "not checked"
    assert "running" in (result.not_checked or "")


# --- the nginx gateway -----------------------------------------------------------------------


def _render_gateway(tmp_path: Path) -> Path:
    values = yaml.safe_load((GATEWAY_ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    values.update(
        gateway_state_dir=str(tmp_path),
        gateway_user="",
        gateway_tls_certificate="/state/pki/gateway/cert.pem",
        gateway_tls_key="/state/pki/gateway/key.pem",
        gateway_upstream_tls={"ca": "/state/pki/tls/ca-bundle.pem"},
        gateway_sites=[
            {"name": "zwfw_hall_340000", "server_name": "127.0.0.1", "listen": 18443,
             "replicas": ["127.0.0.1:18301", "127.0.0.1:18302"]},
        ],
    )  # fmt: skip
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = (GATEWAY_ROLE / "templates" / "nginx.conf.j2").read_text(encoding="utf-8")
    conf = tmp_path / "nginx.conf"
    conf.write_text(env.from_string(template).render(**values), encoding="utf-8")
    return conf


def test_the_rendered_gateway_configuration_passes(tmp_path: Path) -> None:
    result = check_gateway_config(_render_gateway(tmp_path))
    assert result.verdict == "passed", result.findings


@pytest.mark.parametrize(
    ("old", "new", "mode"),
    [
        (
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "ssl_protocols TLSv1 TLSv1.2 TLSv1.3;",
            "legacy-protocol",
        ),
        ("ssl_ciphers ", "ssl_ciphers AES128-SHA:", "weak-cipher"),
        ("ssl_ciphers ", "# ssl_ciphers ", "weak-cipher"),
        ("server_tokens off;", "server_tokens on;", "server-tokens-on"),
        ("server_tokens off;", "", "server-tokens-on"),
        ("client_max_body_size ", "# client_max_body_size ", "body-size-unbounded"),
        ('"max-age=', '"max-age=60; x=', "hsts-missing"),
        ("add_header Strict-Transport-Security", "add_header X-Old", "hsts-missing"),
    ],
)
def test_each_gateway_weakness_is_its_finding(
    tmp_path: Path, old: str, new: str, mode: str
) -> None:
    conf = _render_gateway(tmp_path)
    text = conf.read_text(encoding="utf-8")
    assert old in text
    conf.write_text(text.replace(old, new), encoding="utf-8")
    result = check_gateway_config(conf)
    assert _modes(result.findings) == [mode], result.findings
    assert all(f.line and f.line > 0 for f in result.findings)


def test_a_malformed_nginx_configuration_is_bad_input() -> None:
    assert [d.name for d in parse_nginx('a "b;c" {\n d e; # f;\n}\n')] == ["a", "d"]
    with pytest.raises(StaticCheckError, match="unbalanced"):
        parse_nginx("http { } }")
    with pytest.raises(StaticCheckError, match="unterminated"):
        parse_nginx("http { server_tokens off;")


# --- ansible-lint and checkov --------------------------------------------------------------


# What the pinned tools print (ansible-lint 26.10.1 -f codeclimate over a play with an unnamed
# `command` task; checkov 3.3.30 -o json over a privileged pod, three of its failed checks):
# recorded, since either tool takes most of a minute to start here, and run for real where
# the suites run them anyway (tests/deploy/test_deploy_playbooks.py runs ansible-lint through
# check_ansible_lint over the playbooks).
DATA = Path(__file__).parent / "data"


def _fake_tool(tmp_path: Path, recorded: str) -> tuple[str, Path]:
    """A command printing a recorded report and logging its arguments and directory."""
    log = tmp_path / "argv.json"
    tool = tmp_path / "tool"
    tool.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"json.dump([os.getcwd(), sys.argv[1:]], open({str(log)!r}, 'w'))\n"
        f"sys.stdout.write(open({str(DATA / recorded)!r}).read())\n"
        "sys.exit(2)\n",
        encoding="utf-8",
    )
    tool.chmod(0o755)
    return str(tool), log


def test_ansible_lint_findings_are_converted(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    for name in ("site.yml", "teardown.yml", "README.md"):
        (playbooks / name).write_text("- hosts: all\n", encoding="utf-8")
    lint, log = _fake_tool(tmp_path, "ansible-lint-codeclimate.json")
    result = check_ansible_lint(playbooks, lint)
    cwd, argv = json.loads(log.read_text())
    assert cwd == str(playbooks)
    assert argv == ["--profile", "production", "--offline", "--nocolor", "-f", "codeclimate",
                    "site.yml", "teardown.yml"]  # fmt: skip
    assert [(f.message.split(":")[0], f.line) for f in result.findings] == [
        ("name[play]", 1),
        ("fqcn[action-core]", 3),
        ("name[missing]", 3),
        ("no-changed-when", 3),
    ]
    assert {f.path for f in result.findings} == {str(playbooks / "site.yml")}
    assert _modes(result.findings) == ["ansible-lint"] * 4
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StaticCheckError, match="no playbook"):
        check_ansible_lint(empty, lint)


def test_checkov_findings_are_converted(tmp_path: Path) -> None:
    checkov, log = _fake_tool(tmp_path, "checkov-kubernetes.json")
    result = check_checkov(tmp_path, checkov, REPO / "infra" / "checkov.yaml")
    _, argv = json.loads(log.read_text())
    assert argv == ["--config-file", str(REPO / "infra" / "checkov.yaml"), "--framework",
                    "kubernetes", "-d", str(tmp_path), "-o", "json"]  # fmt: skip
    assert [f.message.split(":")[0] for f in result.findings] == [
        "CKV_K8S_12", "CKV_K8S_16", "CKV_K8S_20"
    ]  # fmt: skip
    assert "(Pod.zwfw.bad)" in result.findings[1].message
    assert {(Path(f.path or "").name, f.line) for f in result.findings} == {("pod.yaml", 1)}
    # A tool that prints no JSON is bad input, not a pass.
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho Traceback\n", encoding="utf-8")
    broken.chmod(0o755)
    with pytest.raises(StaticCheckError, match="no JSON report"):
        check_checkov(tmp_path, str(broken))


# --- SARIF and the command -------------------------------------------------------------------


def test_the_sarif_is_valid_and_names_each_finding(state: Path, tmp_path: Path) -> None:
    (state / "pki" / "tls" / "province-a-hall" / "key.pem").chmod(0o644)
    results = [check_secret_files(state), check_gateway_config(tmp_path / "none.conf")]
    document = sarif(results)
    _validate_sarif(document)
    run = document["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == ["SEC-DEP-001/secret-readable-by-others"]
    assert run["tool"]["driver"]["rules"][0]["properties"]["requirement"] == "SEC-DEP-001"
    uri = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("file://")
    assert uri.endswith("/key.pem")
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["message"]["text"].split(":")[0] for n in notes] == ["SEC-DEP-003 not checked"]
    # The schema bites: a result without a message is refused.
    del run["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        _validate_sarif(document)


def test_the_command_exits_1_on_findings_0_when_clean_2_on_bad_input(
    state: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    clean = runner.invoke(app, ["security", "static", "--state", str(state), "--out", str(out)])
    assert clean.exit_code == 0, clean.output
    assert (
        "SEC-DEP-001 Deployed keys and secrets are readable by the service user only: passed"
        in clean.output
    )
    assert "SEC-DEP-002" in clean.output
    assert "not checked" in clean.output
    (state / "pki" / "tls" / "province-a-hall" / "key.pem").chmod(0o644)
    found = runner.invoke(app, ["security", "static", "--state", str(state), "--out", str(out)])
    assert found.exit_code == 1, found.output
    assert "1 finding\n" in found.output
    document = json.loads((out / "security.sarif").read_text(encoding="utf-8"))
    _validate_sarif(document)
    assert len(document["runs"][0]["results"]) == 1
    assert (out / "security-summary.txt").read_text(encoding="utf-8") in found.output
    for argv in (["--out", str(out)], ["--state", str(tmp_path / "missing"), "--out", str(out)]):
        bad = runner.invoke(app, ["security", "static", *argv])
        assert bad.exit_code == 2, bad.output
        assert bad.output.startswith("zwfw security static: error: ")
        assert bad.output.count("\n") == 1


def test_the_security_suite_judges_a_declared_deployment(state: Path, tmp_path: Path) -> None:
    """security/test_deployment.py under the harness plugin: SEC-DEP-001 judged on the
    profile's state directory, what it cannot judge not tested, what it was not given out of
    scope, and the SARIF next to the results."""
    (state / "secrets" / "province-a-hall-kek").chmod(0o644)
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        'name: t\nregion_code: "340000"\nservices: {hall: "http://127.0.0.1:9"}\n'
        "internal_only: [hall]\ndeployment: {state_dir: state}\n",
        encoding="utf-8",
    )
    results = tmp_path / "out" / "results.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(REPO / "security" / "test_deployment.py"), "--target", str(profile),
         "--zwfw-results", str(results), "--zwfw-partial"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    verdicts = {
        r["id"]: (r["status"], r["in_scope"])
        for r in json.loads(results.read_text(encoding="utf-8"))["requirements"]
        if r["id"].startswith("SEC-DEP-")
    }
    assert verdicts == {
        "SEC-DEP-001": ("fail", True),
        "SEC-DEP-002": ("not-tested", True),  # nothing running under the state directory
        "SEC-DEP-003": ("not-tested", True),  # no gateway configured there
        "SEC-DEP-004": ("not-tested", False),
        "SEC-DEP-005": ("not-tested", False),
    }
    document = json.loads((tmp_path / "out" / "security.sarif").read_text(encoding="utf-8"))
    _validate_sarif(document)
    assert [r["ruleId"] for r in document["runs"][0]["results"]] == [
        "SEC-DEP-001/secret-readable-by-others"
    ]
