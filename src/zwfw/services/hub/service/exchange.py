"""Cross-province licence exchange (跨省通办).

Province A asks the hub, in a signed channel message with A's client token, for a licence
issued in province B, for a stated cause, carrying the citizen's national token. The hub
checks A (channel, client, registration), checks the citizen's token (national IdP, the hub
among its audiences), obtains B's sealed annotated copy (加注件), returns it unchanged and
records the use: who asked, whom, for which licence and cause, the copy's id and digest. It
never stores the copy.

How the hub is authorised at B. The hub is an OAuth client of B's IdP (the same client id at
every province, ``private_key_jwt``) allowed ``client_credentials`` and RFC 8693 token
exchange, and B's IdP trusts the national IdP. Per request the hub:

1. exchanges the citizen's national token at B's IdP (``audience`` = B's library,
   ``scope=elicense:consent``) for a B token of the same person: the citizen's consent,
   which only a valid national token of that citizen yields;
2. uses its own client token at B (``elicense:share``: asking for annotated copies, never
   reading licences) and passes the exchanged token as ``holder_token``::

    POST {B.elicense}/licences/{identifier}/copies
    Authorization: Bearer <hub token at B, elicense:share>
    {"cause": "...", "expires_at": "...", "holder_token": "<citizen token at B>"}

So the hub holds no standing read access: without a citizen's token for that licence's
holder, B's library answers 404, exactly as for a licence that does not exist. B's library
records the use under the hub's client. The request also carries the hub's channel signature,
so B can see it came through the hub untouched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from joserfc.jwk import ECKey
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from zwfw.codes import CodeError, parse_licence_id
from zwfw.codes.masking import mask_personal_data
from zwfw.formats.channel import ChannelSigner
from zwfw.services.hub.models import LicenceUse, Province, as_utc, utcnow
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import Problem, TokenValidator, audit
from zwfw.services.kit.tokens import (
    ACCESS_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    AsyncClientCredentials,
    TokenRequestError,
    load_client_key,
)

log = logging.getLogger("zwfw.hub.exchange")

SCOPE_EXCHANGE = "hub:exchange"
SCOPE_SUPERVISE = "hub:supervise"
EXCHANGE_PATH = "/exchange/licences"


class ExchangeRequest(BaseModel):
    """Province A's request for a licence issued in province B."""

    model_config = ConfigDict(extra="forbid")

    issuer_region: str = Field(pattern=r"^\d{2}0000$", examples=["330000"])
    identifier: str = Field(description="GB/T 36904 licence identifier")
    cause: str = Field(min_length=2, max_length=500, description="事由: why the licence is used")
    expires_at: datetime = Field(description="When the annotated copy stops being usable")
    subject_token: str = Field(
        min_length=20, max_length=16384, description="The citizen's federated access token"
    )
    case_number: str | None = Field(default=None, max_length=43)

    @field_validator("identifier")
    @classmethod
    def _identifier(cls, value: str) -> str:
        try:
            return str(parse_licence_id(value))
        except CodeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expires_at needs a time zone")
        return value


SHARE_SCOPE = "elicense:share"
CONSENT_SCOPE = "elicense:consent"


class ConsentRefused(Exception):
    """The issuing province's IdP did not accept the citizen's token for the exchange."""


class ProvinceUnavailable(Exception):
    """The issuing province's IdP or library failed (not the citizen's fault)."""


class ProvinceTokens:
    """The hub's OAuth client at provinces' IdPs: its own ``elicense:share`` token
    (client credentials, cached per IdP) and, per request, the citizen's consent token (RFC 8693
    exchange of the national token). Token endpoints come from each IdP's OIDC discovery, or
    from ``token_urls`` for the provinces it names."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        client_id: str,
        key: ECKey,
        *,
        timeout: float = 10.0,
        token_urls: Mapping[str, str] | None = None,
    ) -> None:
        self.http = http
        self.client_id = client_id
        self.key = key
        self.timeout = timeout
        # In-cluster token endpoints of provinces by region code (the hub's
        # province_token_urls): used instead of discovery at the registered public IdP, whose
        # public token endpoint the assertions still name.
        self.token_urls = dict(token_urls or {})
        self._endpoints: dict[str, str] = {}
        self._clients: dict[str, AsyncClientCredentials] = {}

    @classmethod
    def from_key_file(
        cls,
        http: httpx.AsyncClient,
        client_id: str,
        key_file: Path,
        *,
        timeout: float = 10.0,
        token_urls: Mapping[str, str] | None = None,
    ) -> ProvinceTokens:
        return cls(
            http, client_id, load_client_key(key_file), timeout=timeout, token_urls=token_urls
        )

    async def token_endpoint(self, identity: str) -> str:
        issuer = identity.rstrip("/")
        if issuer not in self._endpoints:
            try:
                response = await self.http.get(
                    f"{issuer}/.well-known/openid-configuration", timeout=self.timeout
                )
                response.raise_for_status()
                self._endpoints[issuer] = str(response.json()["token_endpoint"])
            except (ValueError, KeyError) as exc:
                raise ProvinceUnavailable(f"{issuer} has no usable OIDC discovery") from exc
            except httpx.HTTPStatusError as exc:
                raise ProvinceUnavailable(f"{issuer} discovery failed: {exc}") from exc
        return self._endpoints[issuer]

    async def _client(self, identity: str, region: str | None) -> AsyncClientCredentials:
        """The hub's client at ``identity``'s token endpoint (one per endpoint: its cache)."""
        internal = self.token_urls.get(region) if region is not None else None
        if internal is not None:
            # The IdP accepts only its public token endpoint as the assertion audience.
            token_url, audience = internal, f"{identity.rstrip('/')}/token"
        else:
            token_url, audience = await self.token_endpoint(identity), None
        if token_url not in self._clients:
            self._clients[token_url] = AsyncClientCredentials(
                token_url, self.client_id, self.key, SHARE_SCOPE, http=self.http,
                assertion_audience=audience, timeout=self.timeout,
            )  # fmt: skip
        return self._clients[token_url]

    async def share_token(self, identity: str, *, region: str | None = None) -> str:
        """The hub's own token at the province (``elicense:share``)."""
        client = await self._client(identity, region)
        try:
            return await client()
        except TokenRequestError as exc:
            raise ProvinceUnavailable(
                f"{identity} refused the hub's client ({exc.status or exc})"
            ) from None

    async def consent_token(
        self, identity: str, subject_token: str, audience: str, *, region: str | None = None
    ) -> str:
        """The citizen's token at the province, exchanged from their national token."""
        client = await self._client(identity, region)
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": audience,
            "scope": CONSENT_SCOPE,
        }
        try:
            answer = await client.request(form)
        except TokenRequestError as exc:
            if exc.status in (400, 401, 403):
                raise ConsentRefused(
                    exc.description or exc.error or f"status {exc.status}"
                ) from None
            raise ProvinceUnavailable(
                f"{identity} token exchange failed ({exc.status or exc})"
            ) from None
        return str(answer["access_token"])


class ElicenseShareClient:
    """Asks one province's e-licence library for an annotated copy on a citizen's behalf."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        timeout: float = 15.0,
        tokens: ProvinceTokens | None = None,
        library_urls: Mapping[str, str] | None = None,
    ) -> None:
        self.http = http
        self.timeout = timeout
        self.tokens = tokens
        # In-cluster libraries by region code (the hub's province_elicense_urls).
        self.library_urls = {
            region: url.rstrip("/") for region, url in (library_urls or {}).items()
        }

    async def annotated_copy(
        self,
        endpoints: dict[str, str],
        identifier: str,
        *,
        cause: str,
        expires_at: datetime,
        subject_token: str,
        signer: ChannelSigner | None = None,
        recipient: str | None = None,
    ) -> httpx.Response:
        """B's answer to the share request (raises ``ConsentRefused``,
        ``ProvinceUnavailable`` or ``httpx.HTTPError``)."""
        if self.tokens is None:
            raise ProvinceUnavailable("the hub has no client at the provinces' IdPs")
        base_url = str(endpoints["elicense"]).rstrip("/")
        identity = str(endpoints["identity"]).rstrip("/")
        holder_token = await self.tokens.consent_token(
            identity, subject_token, base_url, region=recipient
        )
        hub_token = await self.tokens.share_token(identity, region=recipient)
        # Called at the in-cluster address when one is configured; the consent token above
        # names the registered public library, the audience the library checks.
        target = self.library_urls.get(recipient, base_url) if recipient else base_url
        path = f"/licences/{quote(identifier, safe='')}/copies"
        body = json.dumps(
            {"cause": cause, "expires_at": expires_at.isoformat(), "holder_token": holder_token},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        headers = {
            "Authorization": f"Bearer {hub_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if signer is not None and recipient is not None:
            # The library can see the request came through the hub, untouched (the path it
            # receives is the one called).
            prefix = httpx.URL(target).path.rstrip("/")
            headers |= signer.headers("POST", prefix + path, body, recipient=recipient)
        return await self.http.post(
            target + path, content=body, headers=headers, timeout=self.timeout
        )


def copy_digest(answer: dict[str, Any]) -> str | None:
    """SHA-256 of the sealed copy document the library returned (what the hub records)."""
    try:
        document = base64.b64decode(str(answer.get("document", "")), validate=True)
    except (binascii.Error, ValueError):
        return None
    return hashlib.sha256(document).hexdigest() if document else None


def record_use(
    sessions: sessionmaker[Session],
    *,
    requester: str,
    payload: ExchangeRequest,
    subject: str,
    outcome: str,
    status: int | None,
    copy: dict[str, Any] | None,
) -> None:
    """Record one routed exchange, in a transaction of its own: refusals and failures are kept
    too."""
    with sessions.begin() as db:
        use = LicenceUse(
            id=str(uuid.uuid4()),
            at=utcnow(),
            requester_region=requester,
            issuer_region=payload.issuer_region,
            identifier=payload.identifier,
            cause=payload.cause,
            copy_expires_at=payload.expires_at,
            subject=subject,
            case_number=payload.case_number,
            outcome=outcome,
            issuer_status=status,
            copy_id=str(copy.get("copy_id"))[:100] if copy and copy.get("copy_id") else None,
            copy_sha256=copy_digest(copy) if copy else None,
        )
        db.add(use)
        audit.record(
            db,
            actor=f"province/{requester}",
            action="licence.exchange",
            resource=f"licence/{payload.identifier}",
            result=outcome,
            detail={
                "issuer_region": payload.issuer_region,
                "cause": payload.cause,
                "subject": subject,
                "issuer_status": status,
            },
        )


def issuing_province(db: Session, requester: str, payload: ExchangeRequest) -> Province:
    """The registered, active province that issued the licence, detached from ``db``."""
    if payload.issuer_region == requester:
        raise Problem(422, detail="the licence is issued in your own province; ask its library")
    issuer = db.get(Province, payload.issuer_region)
    if issuer is None:
        raise Problem(404, detail=f"province {payload.issuer_region} is not registered")
    if issuer.status != "active":
        raise Problem(409, detail=f"province {payload.issuer_region} is suspended")
    if not issuer.endpoints.get("elicense"):
        raise Problem(
            409, detail=f"province {payload.issuer_region} has no e-licence library endpoint"
        )
    db.expunge(issuer)
    return issuer


async def exchange_licence(
    sessions: sessionmaker[Session],
    settings: HubSettings,
    client: ElicenseShareClient,
    validator: TokenValidator | None,
    signer: ChannelSigner | None,
    *,
    requester: str,
    payload: ExchangeRequest,
    issuer: Province,
) -> dict[str, Any]:
    """The issuing library's sealed annotated copy, unchanged; every outcome is recorded."""
    now = datetime.now(UTC)
    if payload.expires_at <= now:
        raise Problem(422, detail="expires_at is in the past")
    if payload.expires_at > now + timedelta(days=settings.exchange_max_copy_days):
        raise Problem(
            422,
            detail=f"an annotated copy may last at most {settings.exchange_max_copy_days} days",
        )
    if validator is None:
        raise Problem(503, detail="citizen tokens are not configured on the hub")
    try:
        citizen = await validator.validate(payload.subject_token)
    except Problem as problem:
        raise Problem(
            403, detail=f"the citizen's token is not accepted: {problem.detail}"
        ) from None

    if not issuer.endpoints.get("identity"):
        raise Problem(409, detail=f"province {issuer.region_code} has no identity endpoint")

    async def record(outcome: str, status: int | None, copy: dict[str, Any] | None) -> None:
        await run_in_threadpool(
            record_use, sessions, requester=requester, payload=payload,
            subject=citizen.subject, outcome=outcome, status=status, copy=copy,
        )  # fmt: skip

    try:
        response = await client.annotated_copy(
            issuer.endpoints,
            payload.identifier,
            cause=payload.cause,
            expires_at=payload.expires_at,
            subject_token=payload.subject_token,
            signer=signer,
            recipient=issuer.region_code,
        )
    except ConsentRefused as exc:
        await record("refused", None, None)
        raise Problem(
            403,
            detail=f"the identity service of {issuer.region_code} did not accept the "
            f"citizen's token: {exc}",
        ) from None
    except (httpx.HTTPError, ProvinceUnavailable) as exc:
        log.warning(
            "issuing province unreachable",
            extra={"issuer_region": issuer.region_code, "error": mask_personal_data(str(exc))},
        )
        await record("unavailable", None, None)
        raise Problem(
            502, detail=f"the e-licence library of {issuer.region_code} is unreachable"
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    delivered = (
        200 <= response.status_code < 300
        and isinstance(answer, dict)
        and bool(answer.get("copy_id"))
        and bool(answer.get("document"))
    )
    outcome = (
        "delivered" if delivered else "unavailable" if response.status_code >= 500 else "refused"
    )
    await record(outcome, response.status_code, answer if delivered else None)
    if delivered:
        assert isinstance(answer, dict)
        return answer
    detail = answer.get("detail") if isinstance(answer, dict) else None
    if response.status_code >= 500 or not (400 <= response.status_code < 500):
        raise Problem(
            502,
            detail=f"the e-licence library of {issuer.region_code} failed ({response.status_code})",
        )
    raise Problem(
        response.status_code if response.status_code in (401, 403, 404, 409, 422) else 403,
        detail=f"the e-licence library of {issuer.region_code} refused: "
        f"{detail or response.reason_phrase}",
        issuer_status=response.status_code,
    )


class LicenceUseOut(BaseModel):
    id: str
    at: str
    requester_region: str
    issuer_region: str
    identifier: str
    cause: str
    copy_expires_at: str
    subject: str
    case_number: str | None
    outcome: str
    issuer_status: int | None
    copy_id: str | None
    copy_sha256: str | None


def licence_uses(
    db: Session, *, region: str | None = None, identifier: str | None = None
) -> list[LicenceUseOut]:
    """The latest 500 routed exchanges, of a province (asking or issuing) or a licence."""
    query = select(LicenceUse).order_by(LicenceUse.at.desc()).limit(500)
    if region:
        query = query.where(
            (LicenceUse.requester_region == region) | (LicenceUse.issuer_region == region)
        )
    if identifier:
        query = query.where(LicenceUse.identifier == identifier)
    return [
        LicenceUseOut(
            id=u.id,
            at=as_utc(u.at).isoformat(),  # type: ignore[union-attr]
            requester_region=u.requester_region,
            issuer_region=u.issuer_region,
            identifier=u.identifier,
            cause=u.cause,
            copy_expires_at=as_utc(u.copy_expires_at).isoformat(),  # type: ignore[union-attr]
            subject=u.subject,
            case_number=u.case_number,
            outcome=u.outcome,
            issuer_status=u.issuer_status,
            copy_id=u.copy_id,
            copy_sha256=u.copy_sha256,
        )
        for u in db.scalars(query)
    ]
