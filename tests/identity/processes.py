"""Identity instances as separate `zwfw serve` processes, each with its own SQLite database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy.orm import Session

from zwfw.services.identity import IdentitySettings, build
from zwfw.services.identity.service import IdentityService
from zwfw.services.kit import load_settings, migrate

TARGET = "zwfw.services.identity:SERVICE"
ZWFW = str(Path(sys.executable).with_name("zwfw"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class IdpProcess:
    url: str
    config: Path
    settings: IdentitySettings
    log: Path

    def jwks(self) -> dict[str, Any]:
        return httpx.get(self.url + "/jwks").json()


def write_config(directory: Path, name: str, **overrides: Any) -> tuple[Path, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    values: dict[str, Any] = {
        "public_base_url": url,
        "host": "127.0.0.1",
        "port": port,
        "database_url": f"sqlite:///{directory / (name + '.sqlite3')}",
        "data_key": os.urandom(16).hex(),
        "lookup_key": os.urandom(32).hex(),
        # Plain HTTP on loopback in tests; deployments keep the Secure flag.
        "secure_cookies": False,
        "log_level": "WARNING",
    }
    values.update(overrides)
    config = directory / f"{name}.yaml"
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return config, url


def seed(config: Path, setup: Callable[[IdentityService, Session], None]) -> None:
    """Prepare the instance's database before its process starts."""
    settings = load_settings(IdentitySettings, config)
    app = build(settings)
    migrate(app)
    try:
        with app.state.kit.sessions.begin() as db:
            setup(app.state.identity, db)
    finally:
        app.state.kit.engine.dispose()


def _clean_env() -> dict[str, str]:
    # Settings come from the config file alone, never from the test runner's environment.
    return {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")}


@contextmanager
def running(config: Path, timeout: float = 90.0) -> Iterator[IdpProcess]:
    settings = load_settings(IdentitySettings, config)
    log = config.with_suffix(".log")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [ZWFW, "serve", TARGET, "--config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
            cwd=config.parent,
        )
        try:
            _wait_ready(settings.issuer, process, log, timeout)
            yield IdpProcess(settings.issuer, config, settings, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"identity process exited: {log.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"identity process not ready in {timeout}s: {log.read_text()}")
