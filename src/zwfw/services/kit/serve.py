"""Running one service under uvicorn, with TLS (and client certificates) from its settings."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import uvicorn
import uvicorn.supervisors.multiprocess as supervisor
from fastapi import FastAPI

from zwfw.services.kit.app import ServiceDefinition
from zwfw.services.kit.logs import configure_logging
from zwfw.services.kit.migrations import migrate
from zwfw.services.kit.registry import resolve_service
from zwfw.services.kit.settings import ServiceSettings, load_settings

# How long the supervisor waits for a worker's answer to its health ping before it kills and
# replaces the worker. A worker answers only once its interpreter has started and imported
# uvicorn: on a busy host that takes longer than uvicorn's 5 s, and a shorter bound kills every
# new worker in a loop, so the service never starts (or never gets a killed worker back).
WORKER_HEALTHCHECK_SECONDS = 60
# How worker processes (``--workers`` > 1) find what to build; they start from scratch.
_ENV_TARGET = "ZWFW_SERVE_TARGET"
_ENV_CONFIG = "ZWFW_SERVE_CONFIG"

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class WorkerProcess(supervisor.Process):
    """uvicorn's worker process, minus the parent's copy of the worker's end of the health
    pipe once the worker holds its own.

    uvicorn keeps both ends of each worker's health pipe in the supervisor. A worker killed
    while the supervisor waits for its answer to a ping then leaves the pipe open (the
    supervisor's copy of the worker's end), so the wait runs out the whole health-check bound
    (WORKER_HEALTHCHECK_SECONDS) before the worker is replaced: a minute without the replica.
    With that copy closed, the worker's death ends the pipe and the wait at once (EOF), and
    the supervisor starts another worker."""

    def start(self) -> None:
        super().start()
        # Spawning passed the worker its own descriptor of this end: the copy here is unused.
        self.child_conn.close()


def tls_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's TLS keyword arguments for ``settings.tls`` (empty when TLS is off)."""
    tls = settings.tls
    if not tls.enabled:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(tls.certfile),
        "ssl_keyfile": str(tls.keyfile),
        "ssl_cert_reqs": _CERT_REQS[tls.client_cert],
    }
    if tls.client_ca is not None:
        options["ssl_ca_certs"] = str(tls.client_ca)
    return options


def build(definition: ServiceDefinition, config: Path | None) -> tuple[ServiceSettings, FastAPI]:
    settings = load_settings(definition.settings_class, config)
    return settings, definition.factory(settings)


def worker_app() -> FastAPI:
    """uvicorn factory for worker processes started by ``serve(workers > 1)``."""
    definition = resolve_service(os.environ[_ENV_TARGET])
    config = os.environ.get(_ENV_CONFIG) or None
    settings, app = build(definition, Path(config) if config else None)
    configure_logging(settings.log_level)
    return app


def serve(
    target: str,
    config: Path | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    run_migrations: bool = True,
    graceful_timeout: int = 30,
) -> None:
    """Run ``target`` (registered name or ``module:attribute``) until SIGINT/SIGTERM; on a
    signal uvicorn stops accepting, lets requests in flight finish (up to
    ``graceful_timeout`` seconds) and runs the app's shutdown hooks."""
    definition = resolve_service(target)
    settings, app = build(definition, config)
    configure_logging(settings.log_level)
    if run_migrations:
        migrate(app)
    workers = workers or settings.workers
    common: dict[str, Any] = {
        "host": host or settings.host,
        "port": settings.port if port is None else port,
        "log_config": None,
        "access_log": False,  # the kit writes its own, masked, access log
        "server_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": graceful_timeout,
        **tls_options(settings),
    }
    if workers == 1:
        uvicorn.run(app, **common)
        return
    # Each worker builds its own app (and engine); the parent's served only to migrate.
    if app.state.kit.owns_engine:
        app.state.kit.engine.dispose()
    os.environ[_ENV_TARGET] = target
    os.environ[_ENV_CONFIG] = str(config.resolve()) if config else ""
    # The supervisor runs in this process only, which serves nothing else: its workers are ours.
    supervisor.Process = WorkerProcess  # type: ignore[misc]
    uvicorn.run(
        "zwfw.services.kit.serve:worker_app", factory=True, workers=workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, **common,
    )  # fmt: skip
