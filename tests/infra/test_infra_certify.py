"""Certifying a cluster deployment: the target profile written from the stack outputs that the
rendered stacks leave beside their manifests, read by the harness's own profile loader."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner
from zwfw_infra.render import Rendered, _ca, write

from zwfw.cli import app
from zwfw.deploy.certification import CREDENTIALS, CROSS_PROVINCE_CREDENTIALS
from zwfw.harness.profile import load_profile


def _outputs_file(rendered: Rendered, tmp_path: Path) -> Path:
    write(rendered, tmp_path / "k8s")
    return tmp_path / "k8s" / rendered.stack / "stack-outputs.json"


def _profile(outputs: Path, platform: str, out: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(
        app, ["deploy", "profile", "--from-stack", str(outputs), "--platform", platform,
              "--out", str(out), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    answer: dict[str, object] = json.loads(result.output)
    return answer


def test_each_province_of_the_demo_gets_a_profile_the_harness_loads(
    demo: Rendered, tmp_path: Path
) -> None:
    outputs = _outputs_file(demo, tmp_path)
    ca = tmp_path / "ca.pem"
    ca.write_text(_ca("zwfw internal CA")[0], encoding="utf-8")
    platforms = json.loads(outputs.read_text(encoding="utf-8"))["platforms"]
    hub = platforms["national"]["services"]["hub"]["public_url"]
    provinces = [name for name, p in platforms.items() if p["kind"] == "province"]
    assert len(provinces) == 2
    for name in provinces:
        out = tmp_path / "certify" / f"{name}.yaml"
        _profile(outputs, name, out, "--ca-bundle", str(ca))
        profile = load_profile(out)
        platform = platforms[name]
        assert profile.region_code == platform["region_code"]
        assert profile.services.configured() == {
            **{s: v["public_url"] for s, v in platform["services"].items()},
            "hub": hub,
        }
        assert profile.tls.ca_bundle == ca.resolve()
        region = platform["region_code"]
        assert {n: r.env for n, r in profile.credentials.items()} == {
            n: f"ZWFW_DEPLOY_{region}_{n.upper()}"
            for n in (*CREDENTIALS, *CROSS_PROVINCE_CREDENTIALS)
        }
        assert profile.declared.division_codes == [region]


def test_a_province_whose_national_side_is_elsewhere_is_certified_without_a_hub(
    province: Rendered, tmp_path: Path
) -> None:
    outputs = _outputs_file(province, tmp_path)
    platforms = json.loads(outputs.read_text(encoding="utf-8"))["platforms"]
    (name,) = [n for n, p in platforms.items() if p["kind"] == "province"]
    out = tmp_path / f"{name}.yaml"
    answer = _profile(outputs, name, out)
    profile = load_profile(out)
    assert answer["services"] == profile.services.configured()
    assert set(profile.services.configured()) == {"identity", "hall", "elicense", "eseal"}
    assert not any(n.startswith("xprov_") for n in profile.credentials)
