"""Service settings: defaults < YAML config file < environment (``ZWFW_``, nested with ``__``)."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Algorithms a service may accept for bearer tokens; symmetric ones (HS*) and "none" are never
# accepted because anyone holding the published key could then mint tokens.
ALLOWED_TOKEN_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


S = TypeVar("S", bound="ServiceSettings")


class SettingsError(ValueError):
    """A settings file or environment value is missing, malformed or unknown."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthSettings(_Section):
    """Which bearer tokens the service trusts."""

    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    # A literal JWKS document ({"keys": [...]}) for offline use and tests.
    jwks: dict[str, Any] | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["ES256"])
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: int = Field(default=300, ge=0)
    # Refetches on unknown key ids are rate-limited so forged kids cannot hammer the IdP.
    jwks_min_refetch_seconds: float = Field(default=10.0, ge=0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> AuthSettings:
        bad = [a for a in self.algorithms if a not in ALLOWED_TOKEN_ALGORITHMS]
        if bad:
            raise ValueError(
                f"token algorithms {bad} are not allowed; "
                f"choose from {sorted(ALLOWED_TOKEN_ALGORITHMS)}"
            )
        if not self.algorithms:
            raise ValueError("at least one token algorithm is required")
        if self.jwks_url and self.jwks:
            raise ValueError("set either jwks_url or jwks, not both")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.issuer and self.audience and (self.jwks_url or self.jwks))


class TLSSettings(_Section):
    """TLS the service terminates itself (host deployment; mutual TLS on the hub channel)."""

    certfile: Path | None = None
    keyfile: Path | None = None
    client_ca: Path | None = None
    client_cert: Literal["none", "optional", "required"] = "none"

    @model_validator(mode="after")
    def _check(self) -> TLSSettings:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("tls.certfile and tls.keyfile must be set together")
        if self.client_cert != "none" and self.client_ca is None:
            raise ValueError(f"tls.client_cert={self.client_cert} needs tls.client_ca")
        if self.client_cert != "none" and self.certfile is None:
            raise ValueError("client certificates need TLS: set tls.certfile and tls.keyfile")
        return self

    @property
    def enabled(self) -> bool:
        return self.certfile is not None


class AuditSettings(_Section):
    """Audit log behaviour."""

    # Record rejected tokens and missing scopes (等保2.0 level 3: audit login failures).
    record_denied: bool = True


# The config file's parsed content while ``load_settings`` builds one settings object.
_file_values: ContextVar[dict[str, Any] | None] = ContextVar("_file_values", default=None)


class _ConfigFileSource(InitSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, init_kwargs=_file_values.get() or {})


class ServiceSettings(BaseSettings):
    """Settings every service has; each service subclasses this and adds its own fields."""

    model_config = SettingsConfigDict(
        env_prefix="ZWFW_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    service: str = "service"
    region_code: str = Field(default="340000", pattern=r"^\d{6}$")
    # Default: SQLite file ./var/<service>.sqlite3; "sqlite://" is an in-memory database.
    database_url: str = ""
    # Longest a request waits on the database for one statement (PostgreSQL's statement
    # timeout, lock waits included) or for a free pooled connection before it is answered
    # 503: a slow database makes requests fail fast instead of piling up on the workers. A
    # request queued behind a blocked one (a case number's counter row) waits twice at most,
    # still within the faults suite's 5 s answer bound. None: no bound.
    database_wait_seconds: float | None = Field(default=2.0, gt=0, le=300)
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TLSSettings = Field(default_factory=TLSSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @model_validator(mode="after")
    def _default_database(self) -> ServiceSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///./var/{self.service}.sqlite3"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit constructor arguments > environment > config file > defaults.
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))


def _read_config_file(config_file: Path) -> dict[str, Any]:
    try:
        text = config_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{config_file}: cannot read config file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise SettingsError(f"{config_file}: not valid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{config_file}: the top level must be a mapping of setting names")
    return data


def _describe(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown key '{where}'")
        else:
            message = " ".join(str(error["msg"]).split())
            parts.append(f"invalid '{where}': {message}")
    return "; ".join(parts)


def load_settings(settings_class: type[S], config_file: Path | None) -> S:
    """Build ``settings_class`` from defaults, ``config_file`` (YAML) and ``ZWFW_*`` variables.

    Raises ``SettingsError`` with a one-line message naming the file and the offending keys
    (unknown keys are an error, so a misspelt setting never silently falls back to a default).
    """
    values = _read_config_file(config_file) if config_file is not None else {}
    token = _file_values.set(values)
    try:
        return settings_class()
    except ValidationError as exc:
        errors = exc.errors()
        # Name where the offending value came from: the file if it sets that key, else env.
        from_file = config_file is not None and any(
            e["loc"] and e["loc"][0] in values for e in errors
        )
        origin = str(config_file) if from_file else "environment (ZWFW_*)"
        raise SettingsError(f"{origin}: {_describe(errors)}") from None
    finally:
        _file_values.reset(token)
