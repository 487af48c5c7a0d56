"""The e-licence service's client of the e-seal service.

Binding: over HTTP, always. Licences are sealed through the e-seal service's sign API and
verified with its trust anchors and status API, also when both run on one host. The issuers'
seal keys then exist in exactly one place (the e-seal key store), every sealing is authorised
(``eseal:sign`` plus this client on the seal's signer list) and audited there, and a deployment
can move the two services apart without a second code path.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from zwfw.crypto.ses import SealStatus
from zwfw.crypto.x509 import SM2Certificate
from zwfw.services.elicense.settings import SealServiceConfig

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class SealServiceUnavailable(Exception):
    """The e-seal service did not answer as expected."""


class ClientCredentials:
    """Access tokens by OAuth 2.0 client credentials with ``private_key_jwt`` (RFC 7523)."""

    def __init__(self, config: SealServiceConfig, http: httpx.Client) -> None:
        if not (config.token_url and config.client_id and config.client_key_file):
            raise ValueError(
                "eseal.token_url, eseal.client_id and eseal.client_key_file are needed"
            )
        self.config = config
        self.http = http
        text = config.client_key_file.read_text(encoding="utf-8")
        self.key = (
            ECKey.import_key(json.loads(text))
            if text.lstrip().startswith("{")
            else ECKey.import_key(text)
        )
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.config.client_id,
            "sub": self.config.client_id,
            "aud": self.config.token_url,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 120,
        }
        header = {"alg": "ES256"}
        if self.key.kid:
            header["kid"] = self.key.kid
        return jwt.encode(header, claims, self.key)

    def __call__(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._token[1]:
                return self._token[0]
            try:
                response = self.http.post(
                    str(self.config.token_url),
                    data={
                        "grant_type": "client_credentials",
                        "scope": self.config.scope,
                        "client_id": str(self.config.client_id),
                        "client_assertion_type": CLIENT_ASSERTION_TYPE,
                        "client_assertion": self.assertion(),
                    },
                    timeout=self.config.timeout_seconds,
                )
                response.raise_for_status()
                body = response.json()
                token = str(body["access_token"])
                ttl = float(body.get("expires_in", 300))
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise SealServiceUnavailable(
                    f"cannot get a token for the e-seal service: {exc}"
                ) from exc
            # Renewed a little early so a token never expires in flight.
            self._token = (token, time.monotonic() + max(ttl - 30, ttl / 2))
            return token


class SealClient:
    """Sign with an issuer's seal, fetch the trust anchors and seal statuses (cached)."""

    def __init__(
        self,
        config: SealServiceConfig,
        *,
        http: httpx.Client | None = None,
        token: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.http = http or httpx.Client(
            base_url=config.base_url.rstrip("/") + "/", timeout=config.timeout_seconds
        )
        self._token = token
        self._anchors: tuple[list[SM2Certificate], float] | None = None
        self._status: dict[str, tuple[SealStatus | None, float]] = {}
        self._lock = threading.Lock()

    def _bearer(self) -> str:
        if self._token is None:
            self._token = ClientCredentials(self.config, self.http)
        return self._token()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SealServiceUnavailable(f"the e-seal service is unreachable: {exc}") from exc

    def sign(self, es_id: str, digest: bytes, property_info: str) -> bytes:
        """SES_Signature (DER) over an SM3 ``digest`` with seal ``es_id``."""
        response = self._call(
            "POST",
            f"seals/{es_id}/sign",
            json={"digest": digest.hex(), "property_info": property_info},
            headers={"Authorization": f"Bearer {self._bearer()}"},
        )
        if response.status_code != 200:
            detail = _detail(response)
            raise SealServiceUnavailable(
                f"the e-seal service refused to seal with {es_id} "
                f"({response.status_code}: {detail})"
            )
        return base64.b64decode(response.json()["signature"])

    def trust_anchors(self) -> list[SM2Certificate]:
        with self._lock:
            if self._anchors is not None and time.monotonic() < self._anchors[1]:
                return self._anchors[0]
        response = self._call("GET", "trust")
        if response.status_code != 200:
            raise SealServiceUnavailable(f"GET /trust answered {response.status_code}")
        root = SM2Certificate.from_pem(response.json()["root_certificate"].encode())
        with self._lock:
            self._anchors = ([root], time.monotonic() + self.config.trust_cache_seconds)
        return [root]

    def status(self, es_id: str) -> SealStatus | None:
        now = time.monotonic()
        with self._lock:
            cached = self._status.get(es_id)
        if cached is not None and now < cached[1]:
            return cached[0]
        response = self._call("GET", f"seals/{es_id}/status")
        if response.status_code == 404:
            status = None
        elif response.status_code == 200:
            status = SealStatus(response.json()["status"])
        else:
            raise SealServiceUnavailable(f"seal status answered {response.status_code}")
        with self._lock:
            self._status[es_id] = (status, now + self.config.status_cache_seconds)
        return status


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))
    except ValueError:
        return response.text[:200]
