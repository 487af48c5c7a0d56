"""Delivery of the hall's queued reports to the national hub: the kit's outbox dispatcher over
the signed channel, with mutual TLS and a client-credentials token from the national IdP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI
from joserfc.jwk import ECKey

from zwfw.crypto.keystore import KeyEncryptionKeyError
from zwfw.crypto.sm2 import load_private_key
from zwfw.crypto.x509 import SM2Certificate
from zwfw.formats.channel import ChannelSigner
from zwfw.services.hall.models import field_protector
from zwfw.services.hall.settings import HallSettings
from zwfw.services.kit import outbox
from zwfw.services.kit.tokens import AsyncClientCredentials

log = logging.getLogger(__name__)


class HubConfigError(ValueError):
    """A hub reporting file is missing or unreadable; names the setting."""


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise HubConfigError(f"hub.{setting}: cannot read {path}: {exc.strerror}") from None


def offset_clock(offset_file: Path | None) -> Callable[[], float]:
    """This host's clock, plus the seconds ``offset_file`` holds when it exists."""
    if offset_file is None:
        return time.time

    def clock() -> float:
        try:
            text = offset_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return time.time()
        try:
            return time.time() + (float(text) if text else 0.0)
        except ValueError:
            log.warning("hub.clock_offset_file %s holds no number of seconds", offset_file)
            return time.time()

    return clock


def build_dispatcher(app: FastAPI, settings: HallSettings) -> outbox.Dispatcher | None:
    """The dispatcher for ``settings.hub``, or None when hub reporting is off."""
    hub = settings.hub
    if hub.base_url is None:
        return None
    # HubSettings refuses a base_url without these.
    if not (hub.client_key_file and hub.signing_key_file and hub.signing_cert_file):
        raise HubConfigError("hub: key and certificate files are not all set")
    if not (hub.token_url and hub.client_id):
        raise HubConfigError("hub: token_url and client_id are not both set")
    try:
        client_key = ECKey.import_key(json.loads(_read(hub.client_key_file, "client_key_file")))
        signing_key = load_private_key(_read(hub.signing_key_file, "signing_key_file"))
        certificate = SM2Certificate.from_pem(_read(hub.signing_cert_file, "signing_cert_file"))
    except HubConfigError:
        raise
    except ValueError as exc:
        raise HubConfigError(f"hub: a key or certificate file is not valid: {exc}") from None
    try:
        signer = ChannelSigner(settings.region_code, signing_key, certificate)
    except ValueError as exc:
        raise HubConfigError(f"hub: {exc}") from None
    cert = (str(hub.tls_cert_file), str(hub.tls_key_file)) if hub.tls_cert_file else None
    verify: str | bool = str(hub.ca_bundle) if hub.ca_bundle else True
    client = httpx.AsyncClient(cert=cert, verify=verify)
    transport = outbox.ChannelTransport(
        base_url=hub.base_url,
        signer=signer,
        recipient="hub",
        token=AsyncClientCredentials(
            hub.token_url,
            hub.client_id,
            client_key,
            hub.scope,
            http=client,
            assertion_audience=hub.assertion_audience,
        ),
        client=client,
        timeout=hub.timeout_seconds,
        clock=offset_clock(hub.clock_offset_file),
    )
    try:
        protector = field_protector()
    except KeyEncryptionKeyError:
        protector = None  # no case can be queued without the key either (cases answer 503)
    return outbox.Dispatcher(
        app.state.kit.sessions,
        transport,
        protector=protector,
        base_delay=hub.base_delay_seconds,
        max_delay=hub.max_delay_seconds,
        max_attempts=hub.max_attempts,
        registry=app.state.kit.metrics.registry,
    )
