"""Command-line entry points for this area (registered by zwfw.cli): serve, migrate, audit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
import yaml
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from zwfw.services import SERVICES

if TYPE_CHECKING:
    from zwfw.services.kit.app import ServiceDefinition
    from zwfw.services.kit.settings import ServiceSettings

S = TypeVar("S", bound="ServiceSettings")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file (ZWFW_* environment variables win)."),
]
AppDirOption = Annotated[
    Path,
    typer.Option("--app-dir", help="Directory put first on the import path for module:attribute."),
]
ServiceArgument = Annotated[
    str,
    typer.Argument(
        help="A product service name, or module:attribute of a ServiceDefinition.",
        show_default=False,
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"zwfw: {message}", err=True)
    return typer.Exit(code)


def _definition(service: str, app_dir: Path) -> ServiceDefinition:
    from zwfw.services.kit.registry import UnknownServiceError, resolve_service

    sys.path.insert(0, str(app_dir.resolve()))
    try:
        return resolve_service(service)
    except UnknownServiceError as exc:
        raise _fail(str(exc)) from None


def _settings(settings_class: type[S], config: Path | None) -> S:
    from zwfw.services.kit.settings import SettingsError, load_settings

    try:
        return load_settings(settings_class, config)
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def serve_command(
    service: ServiceArgument,
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: settings).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: settings).")
    ] = None,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Do not run migrations before starting.")
    ] = False,
    graceful_timeout: Annotated[
        int, typer.Option(min=0, help="Seconds requests in flight get to finish on shutdown.")
    ] = 30,
    app_dir: AppDirOption = Path("."),
) -> None:
    """Run one service with uvicorn (TLS and client certificates from its settings)."""
    from zwfw.services.kit.serve import serve
    from zwfw.services.kit.settings import SettingsError

    _definition(service, app_dir)  # fail fast, with the list of services, before any I/O
    try:
        serve(
            service,
            config,
            host=host,
            port=port,
            workers=workers,
            run_migrations=not no_migrate,
            graceful_timeout=graceful_timeout,
        )
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {str(exc).splitlines()[0]}", 1) from None


def migrate_command(
    service: ServiceArgument,
    config: ConfigOption = None,
    app_dir: AppDirOption = Path("."),
) -> None:
    """Upgrade the service's database to the current schema (kit and service migrations)."""
    from zwfw.services.kit.migrations import migrate

    definition = _definition(service, app_dir)
    settings = _settings(definition.settings_class, config)
    app = definition.factory(settings)
    try:
        revisions = migrate(app)
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {str(exc).splitlines()[0]}", 1) from None
    except RuntimeError as exc:
        # A revision refused to run (e.g. rows to convert and no key): nothing was changed.
        raise _fail(f"migration failed: {str(exc).splitlines()[0]}", 1) from None
    finally:
        if app.state.kit.owns_engine:
            app.state.kit.engine.dispose()
    typer.echo(
        f"migrated {definition.name} at {_safe_url(settings.database_url)}: "
        f"revisions {', '.join(sorted(revisions))}"
    )


audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _audit_database(config: Path | None, service: str | None, database: str | None) -> str:
    from zwfw.services.kit.settings import ServiceSettings

    if database:
        return database
    if service is None and config is not None:
        # A service's file holds that service's own keys too; read it with its own class.
        try:
            named = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("service")
        except (OSError, yaml.YAMLError, AttributeError):
            named = None
        service = named if isinstance(named, str) and named in SERVICES else None
    settings_class = _definition(service, Path(".")).settings_class if service else ServiceSettings
    return _settings(settings_class, config).database_url


@audit_app.command("verify")
def audit_verify(
    config: ConfigOption = None,
    service: Annotated[
        str | None, typer.Option(help="Service whose settings class reads --config.")
    ] = None,
    database: Annotated[
        str | None, typer.Option("--database", help="Database URL (instead of --config).")
    ] = None,
) -> None:
    """Walk the audit chain: `ok: N records, head H` (exit 0) or the first broken link (exit 1)."""
    from zwfw.services.kit import audit
    from zwfw.services.kit.db import make_engine

    if config is None and database is None:
        raise _fail("give --config FILE or --database URL")
    url = _audit_database(config, service, database)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise _fail(f"invalid database URL: {exc}") from None
    # Opening a missing SQLite file would create an empty one; say so instead.
    sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (
        None,
        "",
        ":memory:",
    )
    if sqlite_file and not Path(str(parsed.database)).expanduser().exists():
        raise _fail(f"database file {parsed.database} does not exist")
    try:
        engine = make_engine(url)
    except (ArgumentError, ValueError) as exc:
        raise _fail(f"invalid database URL: {exc}") from None
    try:
        if not inspect(engine).has_table("audit_log"):
            raise _fail(f"no audit log in {_safe_url(url)} (run `zwfw migrate` first)")
        result = audit.verify(engine)
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    typer.echo(result.describe())
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root `zwfw` app."""
    app.command("serve")(serve_command)
    app.command("migrate")(migrate_command)
    app.add_typer(audit_app, name="audit")
