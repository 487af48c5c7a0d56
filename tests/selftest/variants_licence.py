"""Known-bad variants of the reference province's licence side: one seeded defect each, in the
shape of ``defects.py`` (a proxy coroutine and the requirements it must fail, exactly)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785

from zwfw.crypto.hashing import sm3

from .defects import Variant, _fresh_instance, _json_body, _plain
from .proxy import Forward, ProxyRequest, ProxyResponse

# --- e-seal ----------------------------------------------------------------------------------


class SealStatusCached:
    """Verification answers a seal's status from what it read at the seal's first
    verification and never reads it again: a seal suspended or revoked after a signature was
    once verified still passes step 3 (the public status endpoint tells the truth)."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[dict[str, Any], Any]] = {}  # es_id -> (step 3, seal_status)

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if request.method != "POST" or request.path != "/verify" or not _json_body(response):
            return response
        result = response.json()
        steps, es_id = result.get("steps") or [], result.get("es_id")
        if not es_id or len(steps) < 5:
            return response
        if es_id not in self.first:
            self.first[es_id] = (steps[2], result.get("seal_status"))
            return response
        steps[2], result["seal_status"] = self.first[es_id]
        result["valid"] = all(step.get("status") == "passed" for step in steps)
        return response.with_json(result)


class SealRecordCached:
    """The registry's record of a seal (GET /seals/{es_id}) is cached at its first read: a
    suspension, resumption or revocation reaches the public status and verification, never
    the record."""

    def __init__(self) -> None:
        self.records: dict[str, ProxyResponse] = {}  # path -> the record as first served

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.method != "GET" or not re.fullmatch(r"/seals/[^/]+", request.path):
            return await forward(request)
        if request.path not in self.records:
            response = await forward(request)
            if response.status != 200:
                return response
            self.records[request.path] = response
        return self.records[request.path]


def _within_until_end(record: dict[str, Any]) -> None:
    end = record.get("valid_end")
    if isinstance(end, str) and "within_validity" in record:
        record["within_validity"] = datetime.now(UTC) <= datetime.fromisoformat(end)


async def seal_window_one_sided(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """A seal's status judges its validity period on one side only (the end): a seal whose
    period has not begun is said to be within validity."""
    response = await forward(request)
    if not _json_body(response) or response.status != 200:
        return response
    body = response.json()
    if re.fullmatch(r"/seals/[^/]+/status", request.path) and isinstance(body, dict):
        _within_until_end(body)
        return response.with_json(body)
    if request.path == "/verify" and isinstance(body.get("seal_status"), dict):
        _within_until_end(body["seal_status"])
        return response.with_json(body)
    return response


# --- e-licence -------------------------------------------------------------------------------


async def copy_expiry_in_the_past_taken(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """An annotated copy whose expiry is now or past is not refused: only the longest life is
    checked, and a copy asked for with an expiry already passed is made for an hour."""
    response = await forward(request)
    copies = re.fullmatch(r"/licences/[^/]+/copies", request.path)
    if request.method != "POST" or not copies or response.status != 400:
        return response
    if "future" not in str(response.json().get("detail", "")):
        return response
    body = request.json()
    body["expires_at"] = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0).isoformat()
    return await forward(request.with_json(body))


def _served(document: str) -> str:
    """The sealed canonical bytes re-serialised, as a service that stores the JSON and
    pretty-prints it would hand it out."""
    pretty = json.dumps(json.loads(base64.b64decode(document)), ensure_ascii=False, indent=1)
    return base64.b64encode(pretty.encode()).decode()


class LicenceServedOtherBytes:
    """Licences are handed out in another serialisation than the bytes that were sealed; the
    service's own verification canonicalises what it is given, and its published digest is
    over what it serves, so only an offline verifier sees the signature does not cover the
    document."""

    def __init__(self) -> None:
        self.served: dict[str, bytes] = {}  # identifier -> the document as handed out

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.method == "POST" and request.path == "/verify" and request.is_json:
            body = request.json()
            try:
                document = json.loads(base64.b64decode(body["document"]))
                body["document"] = base64.b64encode(rfc8785.dumps(document)).decode()
                request = request.with_json(body)
            except (KeyError, ValueError, TypeError):
                pass
        response = await forward(request)
        if request.method != "GET" or response.status != 200 or not _json_body(response):
            return response
        body = response.json()
        own = re.fullmatch(r"/me/licences/([^/]+)", request.path)
        if own and isinstance(body.get("document"), str):
            body["document"] = _served(body["document"])
            self.served[own[1]] = base64.b64decode(body["document"])
            return response.with_json(body)
        record = re.fullmatch(r"/verify/([^/]+)", request.path)
        if record and record[1] in self.served and isinstance(body.get("licence"), dict):
            body["licence"]["document_sm3"] = sm3(self.served[record[1]]).hex()
            return response.with_json(body)
        return response


class CopyAnnotationNotCovered:
    """A copy's verification checks the seal over the licence it carries, not over the whole
    copy: the annotation (cause, expiry) is read from the presented document as it stands, so
    a copy whose expiry was extended by hand still verifies."""

    def __init__(self) -> None:
        self.made: dict[str, bytes] = {}  # signature -> the copy document as sealed

    def _covered(self, request: ProxyRequest) -> tuple[ProxyRequest, dict[str, Any] | None]:
        """The request with the sealed copy in place of a presented one that differs only in
        its annotation, and that annotation."""
        try:
            body = request.json()
            sealed = self.made.get(body["signature"])
            presented = json.loads(base64.b64decode(body["document"]))
        except (KeyError, TypeError, ValueError):
            return request, None
        if sealed is None or presented.get("licence") != json.loads(sealed).get("licence"):
            return request, None
        body["document"] = base64.b64encode(sealed).decode()
        return request.with_json(body), presented.get("annotation")

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        annotation = None
        if request.method == "POST" and request.path == "/verify" and request.is_json:
            request, annotation = self._covered(request)
        response = await forward(request)
        copies = re.fullmatch(r"/licences/[^/]+/copies", request.path)
        if request.method == "POST" and copies and response.status == 201:
            made = response.json()
            self.made[made["signature"]] = base64.b64decode(made["document"])
        elif isinstance(annotation, dict) and _json_body(response):
            result = response.json()
            result["cause"] = annotation.get("cause")
            result["expires_at"] = annotation.get("expires_at")
            return response.with_json(result)
        return response


def _valid_not_expired(value: Any) -> Any:
    """``value`` with every licence status 05 (expired) stated as 01, and a status check
    failed for expiry passed."""
    if isinstance(value, list):
        return [_valid_not_expired(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _valid_not_expired(v) for k, v in value.items()}
    if out.get("code") == "05" and (out.get("name") == "expired" or "changed_at" in out):
        out["code"] = "01"
        if "name" in out:
            out["name"] = "valid"
    if out.get("name") == "status" and out.get("code") == "expired":
        out.update(status="passed", reason="the licence is valid (01)", code=None)
    checks = out.get("checks")
    if isinstance(checks, list) and "valid" in out:
        out["valid"] = all(c.get("status") != "failed" for c in checks)
    return out


async def expiry_by_date_not_applied(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """A licence's status is only what its issuer last set: one whose validity has ended is
    still shown valid and verifies (status 05 never derived from the end date)."""
    response = await forward(request)
    if not _json_body(response) or response.status != 200:
        return response
    return response.with_json(_valid_not_expired(response.json()))


class FaceCachedPerHolder:
    """The licence face is rendered once per holder and kept: every later face.pdf the holder
    downloads is the first one, whichever licence it was asked for (the PDF itself is sound,
    and another holder's face is still refused)."""

    def __init__(self) -> None:
        self.first: dict[str, ProxyResponse] = {}  # Authorization -> the first face served

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        face = re.fullmatch(r"/me/licences/[^/]+/face\.pdf", request.path)
        holder = request.header("authorization")
        if request.method != "GET" or not face or holder is None or response.status != 200:
            return response
        return self.first.setdefault(holder, response)


# Status codes a verifier that knows only revocation as final lets pass the status check.
_NOT_FINAL_TO_IT = frozenset({"04", "07"})


async def only_revocation_final(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Verification takes revocation (03) as the only end of a licence besides suspension and
    expiry: a cancelled (04) or withdrawn (07) licence, and every copy of it, passes the status
    check, by document and by identifier (the licence itself states its status correctly)."""
    response = await forward(request)
    by_document = request.method == "POST" and request.path == "/verify"
    by_identifier = request.method == "GET" and re.fullmatch(r"/verify/[^/]+", request.path)
    if not (by_document or by_identifier) or response.status != 200 or not _json_body(response):
        return response
    result = response.json()
    if (result.get("status") or {}).get("code") not in _NOT_FINAL_TO_IT:
        return response
    checks = result.get("checks") or []
    for check in checks:
        if check.get("name") == "status":
            check["status"] = "passed"
    result["valid"] = all(check.get("status") == "passed" for check in checks)
    return response.with_json(result)


async def _verified_without(
    request: ProxyRequest, forward: Forward, dropped: Callable[[dict[str, Any]], bool]
) -> ProxyResponse:
    """The verification answer without the checks ``dropped`` picks, valid by the others."""
    response = await forward(request)
    if request.method != "POST" or request.path != "/verify" or not _json_body(response):
        return response
    result = response.json()
    checks = result.get("checks") or []
    kept = [check for check in checks if not dropped(check)]
    if len(kept) == len(checks):
        return response
    result["checks"] = kept
    result["valid"] = all(check.get("status") != "failed" for check in kept)
    return response.with_json(result)


async def sealed_as_unchecked(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Verification never reads the seal's propertyInfo: a licence sealed as its copy, or a
    copy as its licence, verifies as long as the seal and the registry agree."""
    return await _verified_without(request, forward, lambda c: c.get("name") == "sealed_as")


_APPLIED_AS = re.compile(r"applied as '([^':]*):[^']*', not '([^':]*):")


def _same_kind(check: dict[str, Any]) -> bool:
    kinds = _APPLIED_AS.search(str(check.get("reason", "")))
    return check.get("name") == "sealed_as" and kinds is not None and kinds[1] == kinds[2]


async def sealed_as_kind_only(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Verification compares only the kind of document the seal's propertyInfo names: a
    licence sealed as another licence (or a copy as another copy) verifies."""
    return await _verified_without(request, forward, _same_kind)


VARIANTS: tuple[Variant, ...] = (
    Variant("seal-status-cached", "eseal",
            "verification keeps the seal status it read first: suspended or revoked seals pass",
            frozenset({"IC-SEAL-003"}), _fresh_instance(SealStatusCached)),
    Variant("seal-record-cached", "eseal",
            "the registry's record of a seal keeps the status it had when first read",
            frozenset({"IC-SEAL-003"}), _fresh_instance(SealRecordCached)),
    Variant("seal-window-one-sided", "eseal",
            "the seal status judges the validity period by its end only",
            frozenset({"IC-SEAL-004"}), _plain(seal_window_one_sided)),
    Variant("copy-expiry-in-the-past", "elicense",
            "an annotated copy with an expiry already passed is made, not refused",
            frozenset({"IC-LIC-004"}), _plain(copy_expiry_in_the_past_taken)),
    Variant("licence-served-other-bytes", "elicense",
            "licences are served in another serialisation than the sealed bytes",
            frozenset({"IC-LIC-002"}), _fresh_instance(LicenceServedOtherBytes)),
    Variant("copy-annotation-not-covered", "elicense",
            "a copy's seal is checked over its licence only: an edited cause or expiry verifies",
            frozenset({"IC-LIC-004"}), _fresh_instance(CopyAnnotationNotCovered)),
    Variant("licence-expiry-not-applied", "elicense",
            "a licence past the last day of its validity is shown valid and verifies",
            frozenset({"IC-LIC-009"}), _plain(expiry_by_date_not_applied)),
    Variant("only-revocation-final", "elicense",
            "cancelled (04) and withdrawn (07) licences and their copies pass verification",
            frozenset({"IC-LIC-007"}), _plain(only_revocation_final)),
    Variant("licence-sealed-as-unchecked", "elicense",
            "verification ignores the seal's propertyInfo: a licence sealed as its copy verifies",
            frozenset({"IC-LIC-006"}), _plain(sealed_as_unchecked)),
    Variant("licence-sealed-as-kind-only", "elicense",
            "verification compares only the kind in propertyInfo: a licence sealed as another"
            " verifies",
            frozenset({"IC-LIC-006"}), _plain(sealed_as_kind_only)),
    Variant("licence-face-cached-per-holder", "elicense",
            "every face a holder downloads is the first one rendered for them",
            frozenset({"IC-LIC-011"}), _fresh_instance(FaceCachedPerHolder)),
)  # fmt: skip
