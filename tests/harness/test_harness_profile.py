"""Target profiles: what loads, what is refused (one line, exit 2), and the fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zwfw.harness.errors import ProfileError
from zwfw.harness.profile import SecretUnavailable, load_profile

from .support import EXAMPLE_PROFILE, Invoke, issue_certificate


def write_profile(directory: Path, text: str) -> Path:
    path = directory / "target.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    issue_certificate(directory, name)
    return directory / f"{name}.pem", directory / f"{name}.key"


def test_example_profile_loads() -> None:
    profile = load_profile(EXAMPLE_PROFILE)
    assert profile.region_code == "340000"
    assert profile.services.configured() == {}
    assert "11370800MB28559184" in profile.declared.credit_codes
    assert profile.source == EXAMPLE_PROFILE.resolve()


def test_services_tls_and_credentials_load_relative_to_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    self_signed(certs, "ca")
    self_signed(certs, "client")
    path = write_profile(
        tmp_path,
        """
        name: Zhejiang
        region_code: 330000
        services:
          hall: https://hall.zj.example/
          hub: http://127.0.0.1:8080/api
        tls: {ca_bundle: certs/ca.pem, client_cert: certs/client.pem, client_key: certs/client.key}
        credentials:
          hub_client_secret: {env: ZJ_HUB_SECRET}
        """.replace("\n        ", "\n"),
    )
    profile = load_profile(path)
    # Unquoted YAML numbers are read back as the code text.
    assert profile.region_code == "330000"
    assert profile.base_url("hall") == "https://hall.zj.example"
    assert profile.base_url("hub") == "http://127.0.0.1:8080/api"
    assert profile.base_url("eseal") is None
    assert profile.tls.ca_bundle == (certs / "ca.pem").resolve()

    # Secrets are read when asked for, and a missing one names its variable.
    monkeypatch.delenv("ZJ_HUB_SECRET", raising=False)
    with pytest.raises(SecretUnavailable, match="ZJ_HUB_SECRET"):
        profile.secret("hub_client_secret")
    monkeypatch.setenv("ZJ_HUB_SECRET", "s3cret-value")
    assert profile.secret("hub_client_secret") == "s3cret-value"
    with pytest.raises(SecretUnavailable, match="no credential 'other'"):
        profile.secret("other")


def test_fingerprint_covers_the_profile_but_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = yaml.safe_load(EXAMPLE_PROFILE.read_text(encoding="utf-8"))
    base["credentials"] = {"hub_client_secret": {"env": "FP_SECRET"}}
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(base))

    monkeypatch.setenv("FP_SECRET", "first")
    first = load_profile(path).fingerprint()
    monkeypatch.setenv("FP_SECRET", "second")
    assert load_profile(path).fingerprint() == first
    assert len(first) == 64
    assert int(first, 16) >= 0

    # Same content elsewhere on disk: same fingerprint. Any declared value changed: different.
    moved = tmp_path / "sub"
    moved.mkdir()
    (moved / "a.yaml").write_text(path.read_text())
    assert load_profile(moved / "a.yaml").fingerprint() == first
    base["declared"]["credit_codes"].append("12441500196720244T")
    path.write_text(yaml.safe_dump(base))
    assert load_profile(path).fingerprint() != first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nregion_code: '340100'\n", "region_code: 340100 is not a province-level"),
        ("name: x\nregion_code: '990000'\n", "region_code: division '990000': unknown province"),
        ("name: x\nregion_code: '3400'\n", "region_code: division '3400'"),
        ("name: x\n", "region_code: Field required"),
        ("name: x\nregion_code: '340000'\ncolour: blue\n", "colour: Extra inputs"),
        (
            "name: x\nregion_code: '340000'\nservices: {hall: 'ftp://hall.example'}\n",
            "services.hall: must be an http:// or https:// URL",
        ),
        (
            "name: x\nregion_code: '340000'\nservices: {gateway: 'https://gw.example'}\n",
            "services.gateway: Extra inputs",
        ),
        (
            "name: x\nregion_code: '340000'\ntls: {ca_bundle: missing/ca.pem}\n",
            "tls.ca_bundle: file not found",
        ),
        (
            "name: x\nregion_code: '340000'\ncredentials: {hub: {env: 'not a name'}}\n",
            "credentials.hub.env: 'not a name' is not an environment variable name",
        ),
        ("name: x\nregion_code: [340000\n", "invalid YAML at line"),
        ("- just\n- a list\n", "expected a mapping of profile fields"),
    ],
)
def test_bad_profile_is_refused_with_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write_profile(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith(f"profile {path}: ")


@pytest.mark.parametrize(
    "credentials",
    [
        "credentials:\n  hub_client_secret: Very-S3cret-Literal\n",
        "credentials:\n  hub_client_secret: 123456789\n",
        "services: {hub: 'https://admin:Very-S3cret-Literal@hub.example'}\n",
    ],
)
def test_literal_secret_is_refused_and_never_echoed(tmp_path: Path, credentials: str) -> None:
    path = write_profile(tmp_path, "name: x\nregion_code: '340000'\n" + credentials)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert "Very-S3cret-Literal" not in message
    assert "123456789" not in message
    assert "{env: VAR_NAME}" in message


def test_mismatched_client_certificate_is_refused(tmp_path: Path) -> None:
    client_cert, _ = self_signed(tmp_path, "client")
    _, other_key = self_signed(tmp_path, "other")
    path = write_profile(
        tmp_path,
        f"name: x\nregion_code: '340000'\n"
        f"tls: {{client_cert: {client_cert.name}, client_key: {other_key.name}}}\n",
    )
    with pytest.raises(ProfileError, match="tls: cannot load certificates"):
        load_profile(path)
    half = write_profile(
        tmp_path, f"name: x\nregion_code: '340000'\ntls: {{client_cert: {client_cert.name}}}\n"
    )
    with pytest.raises(ProfileError, match="client_cert and client_key must be given together"):
        load_profile(half)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "file not found"),
        ("name: x\nregion_code: '340100'\n", "not a province-level"),
        ("name: x\nregion_code: '340000'\ncredentials: {k: literal}\n", "literal secrets"),
    ],
)
def test_certify_with_a_bad_profile_exits_2_with_one_line(
    zwfw: Invoke, tmp_path: Path, text: str | None, expected: str
) -> None:
    path = tmp_path / "target.yaml"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "out"
    result = zwfw("certify", "--target", path, "--out", out)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("zwfw certify: error: profile ")
    assert expected in result.stderr
    assert not out.exists()


def test_deployment_paths_are_relative_to_the_profile_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    base = 'name: t\nregion_code: "340000"\nservices: {hall: "http://127.0.0.1:9"}\n'
    plain = tmp_path / "plain.yaml"
    plain.write_text(base, encoding="utf-8")
    declared = tmp_path / "declared.yaml"
    declared.write_text(base + "deployment: {state_dir: state, service_user: zwfw}\n")
    profile = load_profile(declared)
    assert profile.deployment is not None
    assert profile.deployment.state_dir == (tmp_path / "state").resolve()
    assert profile.deployment.playbooks is None
    # What is checked counts for the fingerprint, where the deployment lies does not.
    assert profile.canonical()["deployment"] == {
        "service_user": "zwfw", "playbooks": False, "manifests": False
    }  # fmt: skip
    assert "deployment" not in load_profile(plain).canonical()
    missing = tmp_path / "missing.yaml"
    missing.write_text(base + "deployment: {state_dir: nowhere}\n")
    with pytest.raises(ProfileError, match="directory not found"):
        load_profile(missing)
