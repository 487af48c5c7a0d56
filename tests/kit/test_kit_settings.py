"""Settings: defaults < config file < environment; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit_example_service import ExampleSettings

from zwfw.services.kit import ServiceSettings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ZWFW_"):
            monkeypatch.delenv(key)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_defaults() -> None:
    settings = load_settings(ExampleSettings, None)
    assert settings.service == "example"
    assert settings.database_url == "sqlite:///./var/example.sqlite3"
    assert settings.region_code == "340000"
    assert settings.auth.algorithms == ["ES256"]
    assert not settings.auth.configured
    assert not settings.tls.enabled


def test_file_overrides_defaults_and_env_overrides_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _file(
        tmp_path,
        """
region_code: "330000"
greeting: 您好
port: 9001
auth:
  issuer: https://idp.zj.gov.cn
  audience: hall
  leeway_seconds: 10
""",
    )
    monkeypatch.setenv("ZWFW_PORT", "9100")
    monkeypatch.setenv("ZWFW_AUTH__AUDIENCE", "hall-internal")
    settings = load_settings(ExampleSettings, config)
    assert settings.region_code == "330000"  # file
    assert settings.greeting == "您好"  # file, service's own field
    assert settings.port == 9100  # env beats file
    assert settings.auth.audience == "hall-internal"  # nested env beats nested file
    assert settings.auth.issuer == "https://idp.zj.gov.cn"  # the rest of the section stays
    assert settings.auth.leeway_seconds == 10


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    config = _file(tmp_path, "databse_url: sqlite://\n")
    with pytest.raises(SettingsError) as info:
        load_settings(ExampleSettings, config)
    assert str(info.value) == f"{config}: unknown key 'databse_url'"


def test_unknown_nested_key_is_an_error(tmp_path: Path) -> None:
    config = _file(tmp_path, "tls:\n  cert: /etc/x.pem\n")
    with pytest.raises(SettingsError, match=r"unknown key 'tls\.cert'"):
        load_settings(ExampleSettings, config)


def test_another_services_key_is_unknown_to_the_base_class(tmp_path: Path) -> None:
    config = _file(tmp_path, "greeting: hi\n")
    assert load_settings(ExampleSettings, config).greeting == "hi"
    with pytest.raises(SettingsError, match="unknown key 'greeting'"):
        load_settings(ServiceSettings, config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("region_code: '34000'\n", "invalid 'region_code'"),
        ("port: many\n", "invalid 'port'"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("a: [unclosed\n", "not valid YAML"),
        ("tls:\n  certfile: /c.pem\n", "must be set together"),
        ("tls:\n  certfile: /c.pem\n  keyfile: /k.pem\n  client_cert: required\n", "client_ca"),
        ("auth:\n  jwks_url: https://a/jwks\n  jwks: {keys: []}\n", "not both"),
    ],
)
def test_invalid_files_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        load_settings(ExampleSettings, _file(tmp_path, text))
    assert "\n" not in str(info.value)


def test_invalid_environment_value_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZWFW_LOG_LEVEL", "CHATTY")
    with pytest.raises(SettingsError, match="invalid 'log_level'"):
        load_settings(ExampleSettings, None)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(ExampleSettings, tmp_path / "absent.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(ExampleSettings, _file(tmp_path, "")).port == 8000


def test_constructor_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZWFW_DATABASE_URL", "sqlite:///env.sqlite3")
    assert ExampleSettings(database_url="sqlite://").database_url == "sqlite://"
    assert ExampleSettings().database_url == "sqlite:///env.sqlite3"


def test_unknown_nested_environment_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZWFW_AUTH__ISUER", "https://idp")
    with pytest.raises(SettingsError) as info:
        load_settings(ExampleSettings, None)
    assert str(info.value) == "environment (ZWFW_*): unknown key 'auth.isuer'"
