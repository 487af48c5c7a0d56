"""`zwfw deploy profile --from-stack`: the target profile of a province deployed on Kubernetes,
from the stack outputs (the rendered stacks' own outputs are checked in tests/infra)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from zwfw.cli import app
from zwfw.harness.profile import load_profile

runner = CliRunner()


def _platform(kind: str, region: str, services: tuple[str, ...]) -> dict[str, Any]:
    return {
        "kind": kind,
        "region_code": region,
        "namespace": f"zwfw-{region}",
        "services": {
            s: {
                "public_url": f"https://{s}.{region}.gov.example",
                "internal_url": f"https://{s}.zwfw-{region}.svc:8443",
            }
            for s in services
        },
    }


OUTPUTS = {
    "environment": "production",
    "platforms": {
        "national": _platform("national", "100000", ("identity", "hub")),
        "anhui": {
            **_platform("province", "340000", ("identity", "hall", "elicense", "eseal")),
            "database_cluster": "zwfw-340000-db",
        },
    },
}


def _invoke(tmp_path: Path, outputs: Any, *args: str) -> Any:
    source = tmp_path / "outputs.json"
    source.write_text(outputs if isinstance(outputs, str) else json.dumps(outputs))
    return runner.invoke(
        app, ["deploy", "profile", "--from-stack", str(source), "--out",
              str(tmp_path / "out" / "anhui.yaml"), *args],
    )  # fmt: skip


def test_the_profile_names_the_provinces_public_services_and_the_national_hub(
    tmp_path: Path,
) -> None:
    result = _invoke(tmp_path, OUTPUTS, "--platform", "anhui")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["profile"] == str(tmp_path / "out" / "anhui.yaml")
    assert answer["changed"] is True
    # A rerun on the same outputs leaves the profile as it is.
    rerun = _invoke(tmp_path, OUTPUTS, "--platform", "anhui")
    assert json.loads(rerun.output)["changed"] is False
    profile = load_profile(tmp_path / "out" / "anhui.yaml")
    assert profile.region_code == "340000"
    assert profile.services.configured() == {
        "identity": "https://identity.340000.gov.example",
        "hall": "https://hall.340000.gov.example",
        "elicense": "https://elicense.340000.gov.example",
        "eseal": "https://eseal.340000.gov.example",
        "hub": "https://hub.100000.gov.example",
    }
    # The host deployment's variable names; one province: no cross-province exchange.
    assert profile.credentials["hall_staff_token"].env == "ZWFW_DEPLOY_340000_HALL_STAFF_TOKEN"
    assert not any(name.startswith("xprov_") for name in profile.credentials)
    assert profile.tls.ca_bundle is None
    # The signing key is rotated by the IdP's container (its settings, its database).
    assert profile.operations is not None
    rotate = profile.operations.rotate_signing_key
    assert rotate is not None
    assert rotate.argv() == [
        "kubectl", "-n", "zwfw-340000", "exec", "deployment/identity", "-c", "identity", "--",
        "zwfw", "identity", "keys", "rotate", "--config", "/etc/zwfw/settings.yaml",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("outputs", "args", "message"),
    [
        ("{not json", ("--platform", "anhui"), "not JSON (line 1)"),
        ({"environment": "demo"}, ("--platform", "anhui"), "no platforms"),
        (OUTPUTS, ("--platform", "zhejiang"), "no platform zhejiang in the stack outputs "
         "(it has anhui, national)"),
        (OUTPUTS, ("--platform", "national"), "platform national is the national side"),
        (OUTPUTS, ("--platform", "anhui", "--ca-bundle", "/nonexistent/ca.pem"),
         "file not found: /nonexistent/ca.pem"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(
    tmp_path: Path, outputs: Any, args: tuple[str, ...], message: str
) -> None:
    result = _invoke(tmp_path, outputs, *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("zwfw deploy: ")
    assert message in lines[0]
    assert not (tmp_path / "out" / "anhui.yaml").exists()


def test_a_sandbox_profile_declares_the_faults_as_kubectl_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zwfw.harness.faults import execute

    plain = _invoke(tmp_path, OUTPUTS, "--platform", "anhui")
    assert plain.exit_code == 0, plain.output
    assert load_profile(tmp_path / "out" / "anhui.yaml").faults is None
    result = _invoke(tmp_path, OUTPUTS, "--platform", "anhui", "--faults",
                     "--kube-context", "sandbox")  # fmt: skip
    assert result.exit_code == 0, result.output
    profile = load_profile(tmp_path / "out" / "anhui.yaml")
    faults = profile.faults
    assert faults is not None
    assert profile.operations is not None
    assert profile.operations.rotate_signing_key is not None
    assert profile.operations.rotate_signing_key.context == "sandbox"
    assert set(faults.replica) == {"identity", "hall", "elicense", "eseal", "hub"}
    assert faults.clock_skew is None  # a pod's clock is its node's
    # Run the declared steps against a kubectl that records what it is asked and names one
    # pod per selector.
    calls = tmp_path / "kubectl.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in *"get pod"*) echo pod/first; echo pod/second ;; esac\n'
    )
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for step in (faults.replica["hall"].cause, faults.replica["hub"].recovered,
                 faults.hub_outage.cause, faults.hub_outage.undo,
                 faults.database_restart.cause, faults.database_restart.recovered):  # fmt: skip
        assert step is not None
        assert execute(step).returncode == 0
    assert calls.read_text().splitlines() == [
        "--context sandbox -n zwfw-340000 get pod -l "
        "app.kubernetes.io/name=hall,app.kubernetes.io/component=service -o name",
        # One pod only (SIGKILL: no grace), the other replica carries the service.
        "--context sandbox -n zwfw-340000 delete pod/first --grace-period=0 --force --wait=false",
        "--context sandbox -n zwfw-100000 rollout status deployment/hub --timeout=5s",
        "--context sandbox -n zwfw-100000 patch service hub --type=merge -p "
        '{"spec": {"selector": {"zwfw.gov.cn/fault-outage": "true"}}}',
        "--context sandbox -n zwfw-100000 patch service hub --type=json -p "
        '[{"op": "remove", "path": "/spec/selector/zwfw.gov.cn~1fault-outage"}]',
        "--context sandbox -n zwfw-340000 delete pod -l "
        "cnpg.io/cluster=zwfw-340000-db,cnpg.io/instanceRole=primary --grace-period=0 "
        "--force --wait=false",
        "--context sandbox -n zwfw-340000 wait cluster/zwfw-340000-db --for=condition=Ready "
        "--timeout=5s",
    ]


def test_a_missing_outputs_file_is_named(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["deploy", "profile", "--from-stack", str(tmp_path / "none.json"),
              "--platform", "anhui", "--out", str(tmp_path / "p.yaml")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"stack outputs {tmp_path / 'none.json'}: file not found" in result.output
