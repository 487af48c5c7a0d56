"""The e-licence service's client of the e-seal service.

Binding: over HTTP, always. Licences are sealed through the e-seal service's sign API and
verified with its trust anchors and status API, also when both run on one host. The issuers'
seal keys then exist in exactly one place (the e-seal key store), every sealing is authorised
(``eseal:sign`` plus this client on the seal's signer list) and audited there, and a deployment
can move the two services apart without a second code path.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from zwfw.crypto.ses import SealStatus
from zwfw.crypto.x509 import SM2Certificate
from zwfw.services.elicense.settings import SealServiceConfig
from zwfw.services.kit.tokens import ClientCredentials, TokenRequestError, load_client_key


class SealServiceUnavailable(Exception):
    """The e-seal service did not answer as expected."""


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
            self._token = self._client_credentials()
        try:
            return self._token()
        except TokenRequestError as exc:
            raise SealServiceUnavailable(
                f"cannot get a token for the e-seal service: {exc}"
            ) from exc

    def _client_credentials(self) -> ClientCredentials:
        config = self.config
        if not (config.token_url and config.client_id and config.client_key_file):
            raise SealServiceUnavailable(
                "eseal.token_url, eseal.client_id and eseal.client_key_file are needed to seal"
            )
        try:
            key = load_client_key(config.client_key_file)
        except (OSError, ValueError) as exc:
            raise SealServiceUnavailable(
                f"eseal.client_key_file: cannot load the key: {exc}"
            ) from exc
        return ClientCredentials(
            config.token_url,
            config.client_id,
            key,
            config.scope,
            http=self.http,
            timeout=config.timeout_seconds,
            assertion_audience=config.assertion_audience,
        )

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
