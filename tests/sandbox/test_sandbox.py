"""``zwfw sandbox``: the national side alone, configured for an external province, and a
province configured only from what the sandbox printed and wrote reporting to it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from zwfw.codes.personal import build_resident_id
from zwfw.formats.channel import certificate_key_id
from zwfw.reference import keys

from .support import (
    REGION,
    REPO,
    ZWFW,
    ProvinceUnderTest,
    SandboxRun,
    eventually,
    read_env_file,
    sandbox_env,
    start_sandbox,
)

RESIDENT_ID = str(build_resident_id("340104", date(1990, 3, 2), 21))


def run_sandbox(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZWFW, "sandbox", *args],
        capture_output=True,
        text=True,
        env={**sandbox_env(), "COLUMNS": "200"},
        timeout=timeout,
        check=False,
    )


def write_yaml(path: Path, value: Any) -> Path:
    path.write_text(yaml.safe_dump(value, allow_unicode=True), encoding="utf-8")
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def answers(url: str) -> bool:
    try:
        httpx.get(url + "/healthz", timeout=2.0)
    except httpx.HTTPError:
        return False
    return True


# --- --check -------------------------------------------------------------------------------


def test_check_prints_the_configuration_and_exits_0(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = run_sandbox("--state-dir", str(state), "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((state / "sandbox.json").read_text(encoding="utf-8"))
    [province] = summary["provinces"]
    # The printed table names every setting the integrator needs.
    for value in (
        summary["hub"]["url"],
        summary["national_idp"]["issuer"],
        summary["national_idp"]["jwks_url"],
        summary["national_idp"]["token_endpoint"],
        summary["trust_anchors"]["national_ca_file"],
        summary["trust_anchors"]["hub_channel_certificate_sm3"],
        province["oauth"]["client_id"],
        province["oauth"]["private_key_file"],
        province["channel"]["key_id"],
        province["channel"]["signing_key_file"],
        province["channel"]["certificate_file"],
        province["profile"],
        province["env_file"],
    ):
        assert value in result.stdout, value
    assert "hub:report hub:exchange" in result.stdout
    # The licence suite's certification test issuer is the province's to provide.
    assert (
        "elicense_test_issuer_code, elicense_test_issuer_signer_token, elicense_issuer_token, "
        "elicense_holder_subject"
    ) in result.stdout
    assert summary["licence_suite"]["credentials"] == [
        "elicense_test_issuer_code", "elicense_test_issuer_signer_token",
        "elicense_issuer_token", "elicense_holder_subject",
    ]  # fmt: skip
    assert "check passed" in result.stdout
    # Secrets are the owner's only and never printed.
    secrets = state / "secrets"
    assert secrets.stat().st_mode & 0o777 == 0o700
    for path in secrets.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert "PRIVATE KEY" not in result.stdout
    assert "eyJ" not in result.stdout
    assert Path(province["oauth"]["private_key_file"]).parent == secrets
    private_jwk = json.loads(Path(province["oauth"]["private_key_file"]).read_text())
    assert private_jwk["kty"] == "EC"
    assert "d" in private_jwk
    # The profile skeleton points the hub suite at the sandbox and holds no secret.
    profile = yaml.safe_load(Path(province["profile"]).read_text(encoding="utf-8"))
    assert profile["services"]["hub"] == summary["hub"]["url"]
    assert profile["region_code"] == REGION
    env = read_env_file(Path(province["env_file"]))
    for name, ref in profile["credentials"].items():
        assert ref == {"env": f"ZWFW_SANDBOX_{REGION}_{name.upper()}"}
    assert set(env) <= {ref["env"] for ref in profile["credentials"].values()}
    assert env[f"ZWFW_SANDBOX_{REGION}_CHANNEL_KEY_ID"] == province["channel"]["key_id"]
    profile_text = Path(province["profile"]).read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in profile_text
    assert "eyJ" not in profile_text
    # --check stopped everything it started.
    assert not answers(summary["hub"]["url"])
    assert not answers(summary["national_idp"]["issuer"])


def test_a_province_brings_its_own_channel_certificate(tmp_path: Path) -> None:
    own_ca = keys.NationalCA()  # the province's CA stands in for the national one
    identity = own_ca.channel_identity("340000 own channel")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "channel.pem").write_bytes(identity.certificate.to_pem())
    (tmp_path / "certs" / "ca.pem").write_bytes(own_ca.root_pem())
    tls = keys.tls_client_certificate("platform.340000.example")
    (tmp_path / "certs" / "tls.pem").write_bytes(tls.certificate_pem)
    config = write_yaml(tmp_path / "sandbox.yaml", {
        "provinces": [{
            "region_code": REGION, "name": "安徽省",
            "endpoints": {s: f"http://127.0.0.1:9/{s}" for s in
                          ("identity", "hall", "elicense", "eseal")},
            "channel_certificate": "certs/channel.pem", "channel_ca": "certs/ca.pem",
            "tls_client_certificate": "certs/tls.pem",
        }],
    })  # fmt: skip
    state = tmp_path / "state"
    result = run_sandbox("--config", str(config), "--state-dir", str(state), "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    [province] = json.loads((state / "sandbox.json").read_text())["provinces"]
    assert province["channel"]["key_id"] == certificate_key_id(identity.certificate)
    assert province["channel"]["issued_by_sandbox"] is False
    assert province["channel"]["signing_key_file"] is None
    assert province["tls_client"]["fingerprint_sha256"] == tls.fingerprint
    env = read_env_file(Path(province["env_file"]))
    assert f"ZWFW_SANDBOX_{REGION}_CHANNEL_SIGNING_KEY" not in env
    # The province's own key is then one more credential it exports itself.
    profile = yaml.safe_load(Path(province["profile"]).read_text(encoding="utf-8"))
    assert "channel_signing_key" in profile["credentials"]


# --- bad configuration ---------------------------------------------------------------------


def _province(**overrides: Any) -> dict[str, Any]:
    base = {
        "region_code": REGION,
        "name": "安徽省",
        "endpoints": {
            s: f"http://127.0.0.1:9/{s}" for s in ("identity", "hall", "elicense", "eseal")
        },
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("provinces: [unclosed", "is not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        (yaml.safe_dump({"provinces": [_province(region_code="340100")]}), "region_code"),
        (yaml.safe_dump({"provinces": [_province(region_code="100000")]}), "national side"),
        (yaml.safe_dump({"provinces": [_province(), _province()]}), "distinct"),
        (yaml.safe_dump({"provinces": []}), "provinces"),
        (yaml.safe_dump({"hub_prot": 8080}), "hub_prot"),
        (yaml.safe_dump({"provinces": [_province(endpoints={"hall": "ftp://x"})]}), "endpoints"),
        (yaml.safe_dump({"provinces": [_province(channel_certificate="c.pem")]}), "together"),
        (
            yaml.safe_dump(
                {"provinces": [_province(channel_certificate="c.pem", channel_ca="ca.pem")]}
            ),
            "cannot read",
        ),
        (yaml.safe_dump({"provinces": [_province(tls_client_certificate="bad.pem")]}), "PEM"),
        (yaml.safe_dump({"token_ttl_seconds": 5}), "token_ttl_seconds"),
        (yaml.safe_dump({"identity_port": 8500, "hub_port": 8500}), "must differ"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    config = tmp_path / "sandbox.yaml"
    config.write_text(content, encoding="utf-8")
    result = run_sandbox("--config", str(config), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("zwfw sandbox: error: ")
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_missing_config_file_and_foreign_state_dir_exit_2(tmp_path: Path) -> None:
    missing = run_sandbox("--config", str(tmp_path / "nope.yaml"), "--state-dir", str(tmp_path))
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("zwfw sandbox: error: cannot read")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    refused = run_sandbox("--state-dir", str(foreign), "--check")
    assert refused.returncode == 2
    assert "neither empty nor an earlier sandbox" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert (foreign / "notes.txt").read_text() == "mine\n"  # nothing of it was touched


# --- a province configured from the sandbox's output ---------------------------------------


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SandboxRun, ProvinceUnderTest]]:
    root = tmp_path_factory.mktemp("sandbox")
    province = ProvinceUnderTest.plan(root / "province")
    config = write_yaml(root / "sandbox.yaml", province.sandbox_config())
    sandbox = start_sandbox(config, root / "state")
    try:
        [entry] = sandbox.summary["provinces"]
        province.start(Path(entry["hall_hub_config_file"]))
        yield sandbox, province
    finally:
        province.stop()
        sandbox.terminate()


def test_a_case_at_the_configured_hall_arrives_at_the_sandbox_hub(
    running: tuple[SandboxRun, ProvinceUnderTest],
) -> None:
    sandbox, province = running
    summary = sandbox.summary
    [entry] = summary["provinces"]
    env = read_env_file(Path(entry["env_file"]))
    supervise = bearer(env[f"ZWFW_SANDBOX_{REGION}_HUB_SUPERVISE_TOKEN"])
    hub = summary["hub"]["url"]
    guide = httpx.get(province.url("hall") + "/items", timeout=20.0).json()["items"][0]
    body = {
        "implementation_code": guide["implementation_code"],
        "channel": "online",
        "applicant": {"name": "测试申请人", "certificate_type": "10",
                      "certificate_number": RESIDENT_ID},
        "materials": [
            {"name": m["name"], "gettype": 2, "media_type": "application/pdf",
             "content_base64": "JVBERi0xLjQK"}
            for m in guide["guide"]["materials"]
        ],
    }  # fmt: skip
    created = httpx.post(
        province.url("hall") + "/cases",
        json=body,
        headers=bearer(province.applicant_token()),
        timeout=30.0,
    )
    assert created.status_code == 201, created.text
    number = created.json()["case_number"]
    case = eventually(lambda: httpx.get(f"{hub}/cases/{number}", headers=supervise, timeout=10))
    assert case.status_code == 200, case.text
    assert (case.json()["region_code"], case.json()["state"]) == (REGION, "submitted")
    reports = httpx.get(f"{hub}/cases/{number}/reports", headers=supervise, timeout=10).json()
    assert [(r["kind"], r["sender"], r["signing_key_id"]) for r in reports] == [
        ("case", REGION, entry["channel"]["key_id"])
    ]


def test_the_hub_suite_certifies_the_channel_against_the_sandbox(
    running: tuple[SandboxRun, ProvinceUnderTest], tmp_path: Path
) -> None:
    sandbox, province = running
    [entry] = sandbox.summary["provinces"]
    profile = yaml.safe_load(Path(entry["profile"]).read_text(encoding="utf-8"))
    assert profile["declared"]["implementation_codes"]
    # This province runs no e-licence or e-seal service: the integrator trims the skeleton.
    for service in ("elicense", "eseal"):
        del profile["services"][service]
    target = write_yaml(tmp_path / "profile.yaml", profile)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")}
    env.update(read_env_file(Path(entry["env_file"])))
    env[f"ZWFW_SANDBOX_{REGION}_HALL_APPLICANT_TOKEN"] = province.applicant_token()
    env["ZWFW_HARNESS_HOME"] = str(tmp_path / "harness")
    out = tmp_path / "report"
    suites = ",".join(
        f"conformance/hub/{name}"
        for name in ("test_arrivals.py", "test_channel.py", "test_idempotency.py")
    )
    result = subprocess.run(
        [ZWFW, "certify", "--target", str(target), "--out", str(out), "--suites", suites],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    statuses = {r["id"]: r["status"] for r in report["requirements"] if r["in_scope"]}
    assert statuses == {
        "IC-CHAN-001": "pass",
        "IC-CHAN-002": "pass",
        "IC-CHAN-003": "pass",
        "IC-CHAN-004": "pass",
        "IC-CHAN-005": "pass",
    }, result.stdout[-3000:] + result.stderr[-2000:]
    arrivals = [
        t for r in report["requirements"] for t in r["tests"] if "test_arrivals" in t["nodeid"]
    ]
    assert arrivals
    assert {t["outcome"] for t in arrivals} == {"passed"}
    assert result.returncode == 0, result.stdout[-2000:]


def test_sigterm_stops_the_sandbox_and_its_services(tmp_path: Path) -> None:
    province = ProvinceUnderTest.plan(tmp_path / "province")
    config = write_yaml(tmp_path / "sandbox.yaml", province.sandbox_config())
    sandbox = start_sandbox(config, tmp_path / "state")
    summary = sandbox.summary
    hub, issuer = summary["hub"]["url"], summary["national_idp"]["issuer"]
    assert answers(hub)
    assert answers(issuer)
    assert sandbox.terminate() == 0
    assert not answers(hub)
    assert not answers(issuer)
    assert (tmp_path / "state" / "sandbox.json").is_file()
    # An earlier sandbox's state directory is replaced by the next run.
    again = run_sandbox("--config", str(config), "--state-dir", str(tmp_path / "state"), "--check")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "state" / "sandbox.json").read_text())["hub"]["url"] != hub or (
        json.loads((tmp_path / "state" / "sandbox.json").read_text())["trust_anchors"]
        != summary["trust_anchors"]
    )
