"""The hall's client of the province's e-licence library (电子证照库), for 免证办 materials.

The share interface follows GB/T 36906-2018: a download request names the licence
identifier, the cause of use (事由) and the expiry of the annotated copy (加注件); the library
answers with the sealed annotated copy and records the use. The call is made with the
applicant's own bearer token, so the library itself checks that the applicant holds the
licence (the hall cannot fetch licences of anyone else)::

    POST {base_url}/licences/{identifier}/annotated-copies
    {"cause": "...", "expires_at": "2026-01-31T00:00:00+00:00"}
    -> 201 {"identifier", "status", "type_code", "holder_name", "copy": {"id", "cause",
            "expires_at", "made_at", "made_by", "sha256", ...}}

The hall then verifies what came back: the same licence, status 01 (valid), the cause and
expiry it asked for, and a file digest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from zwfw.services.kit.logs import mask

log = logging.getLogger("zwfw.hall.elicense")

VALID_STATUS = "01"
STATUS_NAMES = {
    "01": "valid",
    "02": "suspended",
    "03": "revoked",
    "04": "cancelled",
    "05": "expired",
    "07": "withdrawn",
}


class LicenceRefused(Exception):
    """The library refused, or the copy it returned does not check out; the applicant's fault
    or the licence's state, not an outage."""


class LibraryUnavailable(Exception):
    """The library could not be reached or failed (network error, 5xx, malformed answer)."""


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
    raw: dict[str, Any] = field(repr=False)

    def record(self) -> dict[str, Any]:
        """What the hall keeps about the copy (no file content)."""
        return {
            "identifier": self.identifier,
            "status": self.status,
            "copy_id": self.copy_id,
            "cause": self.cause,
            "expires_at": self.expires_at,
            "sha256": self.sha256,
            "made_at": self.made_at,
            "made_by": self.made_by,
        }


def _same_instant(a: str, b: str) -> bool:
    try:
        return datetime.fromisoformat(a) == datetime.fromisoformat(b)
    except (TypeError, ValueError):
        return False


class ElicenseClient:
    """Fetches and verifies annotated copies from one e-licence library."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        """``client`` overrides the HTTP client (mutual TLS, a CA bundle, or a test app)."""
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def annotated_copy(
        self, identifier: str, *, cause: str, expires_at: datetime, bearer: str
    ) -> AnnotatedCopy:
        """An annotated copy of licence ``identifier`` for ``cause`` until ``expires_at``,
        fetched with the holder's token ``bearer`` and verified."""
        expiry = expires_at.isoformat()
        url = f"{self.base_url}/licences/{quote(identifier, safe='')}/annotated-copies"
        try:
            response = self._client.post(
                url,
                json={"cause": cause, "expires_at": expiry},
                headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.error("e-licence library unreachable", extra={"error": mask(str(exc))})
            raise LibraryUnavailable(f"the e-licence library is unreachable ({exc})") from exc
        if response.status_code >= 500:
            raise LibraryUnavailable(f"the e-licence library answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise LibraryUnavailable("the e-licence library's answer is not JSON") from exc
        if response.status_code in (401, 403, 404):
            reason = body.get("detail") if isinstance(body, dict) else None
            raise LicenceRefused(
                f"licence {identifier} is not available to the applicant"
                + (f": {reason}" if reason else "")
            )
        if not 200 <= response.status_code < 300:
            reason = body.get("detail") if isinstance(body, dict) else None
            raise LicenceRefused(
                f"the e-licence library refused licence {identifier} "
                f"({response.status_code}{': ' + str(reason) if reason else ''})"
            )
        return self._verified(identifier, cause, expiry, body)

    @staticmethod
    def _verified(identifier: str, cause: str, expiry: str, body: Any) -> AnnotatedCopy:
        if not isinstance(body, dict) or not isinstance(body.get("copy"), dict):
            raise LibraryUnavailable("the e-licence library's answer has no annotated copy")
        copy = body["copy"]
        returned = str(body.get("identifier", ""))
        if returned.upper() != identifier.upper():
            raise LicenceRefused(f"the library returned licence {returned}, not {identifier}")
        status = str(body.get("status", ""))
        if status != VALID_STATUS:
            name = STATUS_NAMES.get(status, "unknown")
            raise LicenceRefused(f"licence {identifier} is not valid (status {status} {name})")
        if copy.get("cause") != cause:
            raise LicenceRefused("the annotated copy does not carry the requested cause")
        if not _same_instant(str(copy.get("expires_at", "")), expiry):
            raise LicenceRefused("the annotated copy does not carry the requested expiry")
        digest = str(copy.get("sha256", ""))
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise LicenceRefused("the annotated copy has no SHA-256 file digest")
        copy_id = str(copy.get("id", ""))
        if not copy_id:
            raise LicenceRefused("the annotated copy has no id")
        return AnnotatedCopy(
            identifier=returned,
            status=status,
            cause=cause,
            expires_at=expiry,
            copy_id=copy_id,
            sha256=digest.lower(),
            made_at=copy.get("made_at"),
            made_by=copy.get("made_by"),
            raw=body,
        )
