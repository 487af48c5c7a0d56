"""Fixtures for the kit's tests: the example service, a token mint, captured JSON logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kit_example_service import ExampleSettings, build
from kit_tokens import AUDIENCE, ISSUER, TokenMint

from zwfw.services.kit import configure_logging, migrate


@pytest.fixture
def mint() -> TokenMint:
    return TokenMint()


@pytest.fixture
def make_settings(mint: TokenMint) -> Callable[..., ExampleSettings]:
    def factory(**overrides: Any) -> ExampleSettings:
        values: dict[str, Any] = {
            "database_url": "sqlite://",
            "auth": {"issuer": ISSUER, "audience": AUDIENCE, "jwks": mint.jwks()},
        }
        values.update(overrides)
        return ExampleSettings(**values)

    return factory


@pytest.fixture
def app(make_settings: Callable[..., ExampleSettings]) -> FastAPI:
    application = build(make_settings())
    migrate(application)
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


class LogLines:
    """JSON log lines written through the kit's formatter during a test."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def json_logs() -> Iterator[LogLines]:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    try:
        yield LogLines(stream)
    finally:
        logging.getLogger().removeHandler(handler)
