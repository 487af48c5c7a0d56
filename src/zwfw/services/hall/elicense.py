"""The hall's client of e-licence libraries (电子证照库), for 免证办 materials.

The share interface follows GB/T 36906-2018: a request names the licence identifier, the
cause of use (事由) and the expiry of the annotated copy (加注件); the library answers with the
copy sealed by the issuer and records the use. Two routes:

- a licence issued in this province goes straight to the province's library, with the
  hall's own client-credentials token (``elicense:share``, private_key_jwt at the province
  IdP) and the applicant's token as ``holder_token`` (the applicant's consent: it carries
  ``elicense:consent``, so the library itself checks that the applicant holds the licence)::

    POST {base_url}/licences/{identifier}/copies
    Authorization: Bearer <hall token>
    {"cause": "...", "expires_at": "...", "holder_token": "<applicant token>"}
    -> 201 {"copy_id", "identifier", "cause", "made_at", "made_by", "expires_at", "es_id",
            "document", "signature", "verify_url"}

- a licence issued in another province goes through the national hub (跨省通办): a signed
  channel message to ``POST {hub}/exchange/licences`` with the hall's token from the national
  IdP (``hub:exchange``) and the applicant's national token as ``subject_token``; the hub
  routes it to the issuing province's library and returns that library's answer unchanged.

Whatever the route, the hall verifies the copy before using it, with the same function as
``zwfw licence verify``: the seal's five GB/T 38540 steps against the seal authorities' roots
(the province's e-seal ``GET /trust`` plus a bundle of other provinces' roots), the
identifier, cause and expiry it asked for. A valid seal shows who sealed, not what was
issued, so the hall then asks the issuing province's registry (its public ``POST /verify``:
this province's library, or ``elicense.registries[region]`` for another province) whether
the copy is the one it made of the licence it issued (checks ``registry`` and
``copy_registry``); a copy no registry confirms is refused. It keeps the copy's document
digest (SHA-256 of the exact bytes), never the document itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from zwfw.codes import CodeError, parse_credit_code, parse_licence_id
from zwfw.codes.masking import mask_personal_data
from zwfw.crypto.x509 import CertificateError, SM2Certificate, load_pem_bundle
from zwfw.formats.channel import ChannelSigner
from zwfw.services.elicense.document import verify_document
from zwfw.services.kit.tokens import ClientCredentials, TokenRequestError, load_client_key

log = logging.getLogger("zwfw.hall.elicense")

EXCHANGE_PATH = "/exchange/licences"
# A copy the library made is of a licence that was valid (01) then: it refuses others.
VALID_STATUS = "01"


class LicenceRefused(Exception):
    """The library refused, or the copy it returned does not check out; the applicant's fault
    or the licence's state, not an outage."""


class LibraryUnavailable(Exception):
    """The library (or the hub, or a token endpoint) could not be reached or failed."""


@dataclass(frozen=True)
class AnnotatedCopy:
    identifier: str
    status: str
    cause: str
    expires_at: str
    copy_id: str
    sha256: str
    made_at: str | None
    made_by: str | None
    es_id: str | None
    issuer_region: str
    route: str  # "library" | "hub"
    raw: dict[str, Any] = field(repr=False)

    def record(self) -> dict[str, Any]:
        """What the hall keeps about the copy (no document content)."""
        return {
            "identifier": self.identifier,
            "status": self.status,
            "copy_id": self.copy_id,
            "cause": self.cause,
            "expires_at": self.expires_at,
            "sha256": self.sha256,
            "made_at": self.made_at,
            "made_by": self.made_by,
            "es_id": self.es_id,
            "issuer_region": self.issuer_region,
            "route": self.route,
        }


class TrustRoots:
    """Seal authority roots the hall verifies copies against: the province's e-seal
    ``GET /trust`` (cached) plus a PEM bundle of other provinces' roots."""

    def __init__(
        self,
        *,
        trust_url: str | None = None,
        bundle: Path | None = None,
        http: httpx.Client | None = None,
        cache_seconds: float = 300.0,
    ) -> None:
        if trust_url is None and bundle is None:
            raise ValueError("give a trust URL or a trust bundle")
        self.trust_url = trust_url
        self.bundle = bundle
        self.http = http
        self.cache_seconds = cache_seconds
        self._fetched: tuple[list[SM2Certificate], float] | None = None
        self._lock = threading.Lock()

    def _from_url(self) -> list[SM2Certificate]:
        assert self.trust_url is not None
        with self._lock:
            if self._fetched is not None and time.monotonic() < self._fetched[1]:
                return self._fetched[0]
        client = self.http or httpx.Client(timeout=10.0)
        try:
            response = client.get(self.trust_url)
            response.raise_for_status()
            root = SM2Certificate.from_pem(str(response.json()["root_certificate"]).encode())
        except (httpx.HTTPError, ValueError, KeyError, CertificateError) as exc:
            raise LibraryUnavailable(f"cannot read the seal trust root: {exc}") from exc
        finally:
            if self.http is None:
                client.close()
        with self._lock:
            self._fetched = ([root], time.monotonic() + self.cache_seconds)
        return [root]

    def anchors(self) -> list[SM2Certificate]:
        roots: list[SM2Certificate] = []
        if self.trust_url is not None:
            roots.extend(self._from_url())
        if self.bundle is not None:
            try:
                roots.extend(load_pem_bundle(self.bundle.read_bytes()))
            except (OSError, ValueError, CertificateError) as exc:
                raise LibraryUnavailable(f"cannot read the seal trust bundle: {exc}") from exc
        return roots


def own_token(token: Callable[[], str], where: str) -> str:
    """The hall's own access token from ``token``; a token endpoint that cannot be reached or
    refuses is an outage of the route, not the applicant's fault."""
    try:
        return token()
    except TokenRequestError as exc:
        raise LibraryUnavailable(f"cannot get the hall's token for {where}: {exc}") from exc


@dataclass
class HubRoute:
    """The cross-province route: signed channel messages to the hub's licence exchange."""

    base_url: str
    signer: ChannelSigner
    token: Callable[[], str]
    http: httpx.Client
    recipient: str = "hub"
    timeout: float = 20.0

    def post(self, body: dict[str, Any]) -> httpx.Response:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        prefix = httpx.URL(self.base_url).path.rstrip("/")
        headers = {
            "Authorization": f"Bearer {own_token(self.token, 'the national hub')}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            **self.signer.headers(
                "POST", prefix + EXCHANGE_PATH, content, recipient=self.recipient
            ),
        }
        return self.http.post(
            self.base_url.rstrip("/") + EXCHANGE_PATH,
            content=content,
            headers=headers,
            timeout=self.timeout,
        )


def issuer_province(identifier: str) -> str | None:
    """The province (``xx0000``) of the licence's issuing authority, from the division part
    of its credit code; None for national authorities (division ``100000``) and codes
    whose division is not a province's."""
    issuer = parse_licence_id(identifier).issuer_code
    try:
        division = parse_credit_code(issuer).division
    except CodeError:
        return None
    province = division[:2] + "0000"
    return None if province in ("000000", "100000") else province


def _same_instant(a: str, b: str) -> bool:
    try:
        return datetime.fromisoformat(a) == datetime.fromisoformat(b)
    except (TypeError, ValueError):
        return False


def _detail(body: Any) -> str | None:
    return str(body["detail"]) if isinstance(body, dict) and body.get("detail") else None


class ElicenseClient:
    """Fetches and verifies annotated copies: from the province's library, or through the hub
    for licences issued in another province."""

    def __init__(
        self,
        base_url: str,
        *,
        region_code: str,
        token: Callable[[], str],
        trust: TrustRoots,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        hub: HubRoute | None = None,
        registries: dict[str, str] | None = None,
    ) -> None:
        """``token`` gives the hall's own bearer token for the library; ``client``
        overrides the HTTP client (mutual TLS, a CA bundle, or a test app); ``registries``
        are the e-licence services of other provinces by region code."""
        self.base_url = base_url.rstrip("/")
        self.region_code = region_code
        self.token = token
        self.trust = trust
        self.hub = hub
        self.registries = {k: v.rstrip("/") for k, v in (registries or {}).items()}
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._client.close()
        if self.hub is not None and self.hub.http is not self._client:
            self.hub.http.close()

    def annotated_copy(
        self,
        identifier: str,
        *,
        cause: str,
        expires_at: datetime,
        bearer: str,
        subject_token: str | None = None,
        case_number: str | None = None,
    ) -> AnnotatedCopy:
        """An annotated copy of licence ``identifier`` for ``cause`` until ``expires_at``,
        with the applicant's consent (``bearer``: their token at this province; for a
        licence of another province, ``subject_token``: their national token), verified."""
        canonical = str(parse_licence_id(identifier))
        expiry = expires_at.isoformat()
        province = issuer_province(canonical)
        own = self.region_code[:2] + "0000"
        if province is None or province == own:
            body = self._from_library(canonical, cause, expiry, bearer)
            route, region = "library", own
        else:
            body = self._through_hub(
                canonical, province, cause, expires_at, subject_token, case_number
            )
            route, region = "hub", province
        return self._verified(canonical, cause, expiry, body, route=route, region=region)

    def _answer(self, response: httpx.Response, identifier: str, where: str) -> dict[str, Any]:
        if response.status_code >= 500:
            raise LibraryUnavailable(f"{where} answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise LibraryUnavailable(f"{where}'s answer is not JSON") from exc
        reason = _detail(body)
        if response.status_code in (401, 403, 404):
            raise LicenceRefused(
                f"licence {identifier} is not available to the applicant"
                + (f": {reason}" if reason else "")
            )
        if response.status_code == 409:
            raise LicenceRefused(f"licence {identifier} cannot be used: {reason or 'conflict'}")
        if not 200 <= response.status_code < 300:
            raise LicenceRefused(
                f"{where} refused licence {identifier} "
                f"({response.status_code}{': ' + reason if reason else ''})"
            )
        if not isinstance(body, dict):
            raise LibraryUnavailable(f"{where}'s answer has no annotated copy")
        return body

    def _from_library(
        self, identifier: str, cause: str, expiry: str, bearer: str
    ) -> dict[str, Any]:
        url = f"{self.base_url}/licences/{quote(identifier, safe='')}/copies"
        token = own_token(self.token, "the e-licence library")
        try:
            response = self._client.post(
                url,
                json={"cause": cause, "expires_at": expiry, "holder_token": bearer},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.error(
                "e-licence library unreachable", extra={"error": mask_personal_data(str(exc))}
            )
            raise LibraryUnavailable(f"the e-licence library is unreachable ({exc})") from exc
        return self._answer(response, identifier, "the e-licence library")

    def _through_hub(
        self,
        identifier: str,
        province: str,
        cause: str,
        expires_at: datetime,
        subject_token: str | None,
        case_number: str | None,
    ) -> dict[str, Any]:
        if self.hub is None:
            raise LicenceRefused(
                f"licence {identifier} is issued in province {province}, and this hall has no "
                "cross-province exchange configured"
            )
        if not subject_token:
            raise LicenceRefused(
                f"licence {identifier} is issued in province {province}: send your national "
                "token (Zwfw-Subject-Token header) to consent to fetching it through the hub"
            )
        body: dict[str, Any] = {
            "issuer_region": province,
            "identifier": identifier,
            "cause": cause,
            "expires_at": expires_at.isoformat(),
            "subject_token": subject_token,
        }
        if case_number:
            body["case_number"] = case_number
        try:
            response = self.hub.post(body)
        except httpx.HTTPError as exc:
            log.error("hub unreachable", extra={"error": mask_personal_data(str(exc))})
            raise LibraryUnavailable(f"the national hub is unreachable ({exc})") from exc
        if response.status_code == 502:
            raise LibraryUnavailable(f"the e-licence library of {province} is unavailable")
        return self._answer(response, identifier, "the national hub")

    def _verified(
        self, identifier: str, cause: str, expiry: str, body: dict[str, Any], *, route: str,
        region: str,
    ) -> AnnotatedCopy:  # fmt: skip
        returned = str(body.get("identifier", ""))
        if returned.upper() != identifier.upper():
            raise LicenceRefused(f"the library returned licence {returned}, not {identifier}")
        if body.get("cause") != cause:
            raise LicenceRefused("the annotated copy does not carry the requested cause")
        if not _same_instant(str(body.get("expires_at", "")), expiry):
            raise LicenceRefused("the annotated copy does not carry the requested expiry")
        copy_id = str(body.get("copy_id") or "")
        if not copy_id:
            raise LicenceRefused("the annotated copy has no id")
        try:
            document = base64.b64decode(str(body.get("document", "")), validate=True)
            signature = base64.b64decode(str(body.get("signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise LicenceRefused("the copy's document or signature is not base64") from None
        if not document or not signature:
            raise LicenceRefused("the annotated copy has no sealed document")
        result = verify_document(document, signature, trust_anchors=self.trust.anchors())
        if not result.valid:
            failed = [c for c in result.checks if c.status == "failed"]
            reason = "; ".join(f"{c.name}: {c.reason}" for c in failed) or "seal not verified"
            raise LicenceRefused(f"the annotated copy does not verify ({reason})")
        # The sealed document, not the envelope around it, is what counts.
        if result.kind != "copy" or str(result.identifier).upper() != identifier.upper():
            raise LicenceRefused("the sealed document is not a copy of the requested licence")
        if result.cause != cause or not _same_instant(str(result.expires_at), expiry):
            raise LicenceRefused("the sealed copy does not carry the requested cause and expiry")
        self._confirmed_by_registry(region, document, signature)
        return AnnotatedCopy(
            identifier=identifier,
            status=VALID_STATUS,
            cause=cause,
            expires_at=expiry,
            copy_id=copy_id,
            sha256=hashlib.sha256(document).hexdigest(),
            made_at=body.get("made_at"),
            made_by=body.get("made_by"),
            es_id=body.get("es_id"),
            issuer_region=region,
            route=route,
            raw={k: v for k, v in body.items() if k not in ("document", "signature")},
        )

    def _confirmed_by_registry(self, region: str, document: bytes, signature: bytes) -> None:
        """The issuing province's registry confirms the copy (its public ``POST /verify``):
        the copy is the one it made, of the licence it issued, still valid."""
        own = self.region_code[:2] + "0000"
        base = self.base_url if region == own else self.registries.get(region)
        if base is None:
            raise LicenceRefused(
                f"no e-licence registry of province {region} is configured to confirm the "
                "annotated copy (elicense.registries)"
            )
        where = f"the e-licence registry of {region}"
        try:
            response = self._client.post(
                f"{base}/verify",
                json={
                    "document": base64.b64encode(document).decode(),
                    "signature": base64.b64encode(signature).decode(),
                },
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.error(
                "e-licence registry unreachable", extra={"error": mask_personal_data(str(exc))}
            )
            raise LibraryUnavailable(f"{where} is unreachable ({exc})") from exc
        if response.status_code != 200:
            raise LibraryUnavailable(f"{where} answered {response.status_code} to POST /verify")
        try:
            answer = response.json()
            checks = {str(c["name"]): c for c in answer["checks"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise LibraryUnavailable(f"{where} answered POST /verify without checks") from exc
        failed = [c for c in checks.values() if c.get("status") == "failed"]
        if failed:
            reason = "; ".join(f"{c['name']}: {c.get('reason')}" for c in failed)
            raise LicenceRefused(f"{where} does not confirm the annotated copy ({reason})")
        unconfirmed = [
            name
            for name in ("registry", "copy_registry")
            if (checks.get(name) or {}).get("status") != "passed"
        ]
        if unconfirmed or answer.get("valid") is not True:
            raise LicenceRefused(
                f"{where} does not confirm the annotated copy (no passed "
                f"{', '.join(unconfirmed) or 'verdict'})"
            )


def build_client(settings: Any) -> ElicenseClient | None:
    """The client for ``settings`` (a ``HallSettings``), or None when no library is set.

    The cross-province route is on when the hall reports to the hub and
    ``hub.exchange_scope`` is set; it uses the same national client and channel key."""
    from zwfw.crypto.sm2 import load_private_key

    lib = settings.elicense
    if not lib.base_url:
        return None
    http = httpx.Client(timeout=lib.timeout_seconds, follow_redirects=False)
    try:
        token = ClientCredentials(
            lib.token_url,
            lib.client_id,
            load_client_key(lib.client_key_file),
            lib.scope,
            http=http,
            timeout=lib.timeout_seconds,
            assertion_audience=lib.assertion_audience,
        )
    except (OSError, ValueError) as exc:
        raise ValueError(f"elicense.client_key_file: cannot load the key: {exc}") from None
    trust = TrustRoots(trust_url=lib.trust_url, bundle=lib.trust_bundle, http=http)
    hub = None
    hub_settings = settings.hub
    if hub_settings.base_url and hub_settings.exchange_scope:
        cert = (
            (str(hub_settings.tls_cert_file), str(hub_settings.tls_key_file))
            if hub_settings.tls_cert_file
            else None
        )
        verify: str | bool = str(hub_settings.ca_bundle) if hub_settings.ca_bundle else True
        hub_http = httpx.Client(cert=cert, verify=verify, follow_redirects=False)
        try:
            signer = ChannelSigner(
                settings.region_code,
                load_private_key(hub_settings.signing_key_file.read_bytes()),
                SM2Certificate.from_pem(hub_settings.signing_cert_file.read_bytes()),
            )
            national = ClientCredentials(
                hub_settings.token_url,
                hub_settings.client_id,
                load_client_key(hub_settings.client_key_file),
                hub_settings.exchange_scope,
                http=hub_http,
                assertion_audience=hub_settings.assertion_audience,
            )
        except (OSError, ValueError, CertificateError) as exc:
            raise ValueError(f"hub: cannot load the channel key or client key: {exc}") from None
        hub = HubRoute(hub_settings.base_url, signer, national, hub_http)
    return ElicenseClient(
        lib.base_url,
        region_code=settings.region_code,
        token=token,
        trust=trust,
        client=http,
        hub=hub,
        registries=lib.registries,
    )
