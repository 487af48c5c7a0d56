"""Known-bad variants of the reference province's hub side: one seeded defect each, in the
shape of ``defects.py`` (a proxy coroutine and the requirements it must fail, exactly).

Each defect sits in front of the national hub and re-signs, with the sender's own key, a
message the hub would have refused: what a hub that does not look at that one thing would do.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from zwfw.formats.channel import (
    HEADER_DIGEST,
    HEADER_IDEMPOTENCY_KEY,
    HEADER_NONCE,
    HEADER_RECIPIENT,
    HEADER_SENDER,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    PROBLEM_TYPE_BASE,
)

from .defects import (
    CHANNEL_WINDOW_SECONDS,
    Province,
    Variant,
    _intact,
    _json_body,
    _resigned,
    _signed,
)
from .proxy import Defect, Forward, ProxyRequest, ProxyResponse

_CHANNEL_HEADERS = (HEADER_SENDER, HEADER_RECIPIENT, HEADER_TIMESTAMP, HEADER_NONCE,
                    HEADER_DIGEST, HEADER_SIGNATURE)  # fmt: skip


def _complete(request: ProxyRequest) -> bool:
    return all(request.header(h) for h in _CHANNEL_HEADERS)


def _key_id(request: ProxyRequest) -> str | None:
    match = re.search(r'keyid="([^"]*)"', request.header(HEADER_SIGNATURE) or "")
    return match[1] if match else None


def future_timestamps_taken(province: Province) -> Defect:
    """The freshness window is checked on one side only: a message dated an hour (or a day)
    ahead is taken."""

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if _signed(request):
            sent = float(request.header(HEADER_TIMESTAMP) or 0)
            if sent - time.time() > CHANNEL_WINDOW_SECONDS:
                request = _resigned(province, request, now=time.time())
        return await forward(request)

    return defect


def signature_not_verified(province: Province) -> Defect:
    """The hub checks that the signature is there, from the sender's key id, over an intact
    body, but never verifies it: messages signed for another path, method, recipient or key,
    and signatures by another key, are taken."""

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        own = (request.header(HEADER_SENDER), _key_id(request)) == (
            province.region,
            province.channel_key_id,
        )
        if _complete(request) and own and _intact(request):
            request = _resigned(province, request)
        return await forward(request)

    return defect


def key_id_not_bound(province: Province) -> Defect:
    """The announced key id is never compared with the sender's registered key: a message
    announcing another province's (or no registered) key id is taken."""

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        sender, key_id = request.header(HEADER_SENDER), _key_id(request)
        if _complete(request) and sender == province.region and key_id != province.channel_key_id:
            request = _resigned(province, request)
        return await forward(request)

    return defect


def idempotency_keys_per_endpoint(province: Province) -> Defect:
    """Idempotency keys are kept per kind of report, not per sender: a case report's key is
    taken again for an evaluation report."""
    first_path: dict[str, str] = {}  # key -> the intake it was first used at

    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        key = request.header(HEADER_IDEMPOTENCY_KEY)
        if request.method == "POST" and request.path.startswith("/reports/") and key:
            used_at = first_path.setdefault(key, request.path)
            if used_at != request.path and _signed(request):
                kind = request.path.rsplit("/", 1)[-1]
                request = _resigned(province, request, idempotency_key=f"{kind}:{key}"[:128])
        return await forward(request)

    return defect


class LastArrivalWins:
    """The hub shows a case as the report that arrived last, not the newest version: a late
    retry of an older version rolls the case back (and its receipt says stored)."""

    FIELDS = ("version", "state", "item_name", "dept_name", "channel", "result")

    def __init__(self) -> None:
        self.last: dict[str, dict[str, Any]] = {}  # case number -> last report taken

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if request.method == "POST" and request.path == "/reports/cases":
            if response.status in (200, 201) and _json_body(response):
                report = request.json()
                self.last[str(report.get("case_number"))] = report
                receipt = response.json()
                if receipt.get("outcome") == "superseded":
                    return response.with_json({**receipt, "outcome": "stored"})
            return response
        case = re.fullmatch(r"/cases/([^/]+)", request.path)
        if request.method == "GET" and case and response.status == 200 and _json_body(response):
            last = self.last.get(case[1])
            if last is not None:
                shown = response.json()
                shown.update({f: last[f] for f in self.FIELDS if f in last and f in shown})
                return response.with_json(shown)
        return response


async def channel_errors_not_problems(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Channel refusals are answered in the vendor's own error shape (``application/json``
    with ``error`` and ``message``), not as RFC 9457 problems."""
    response = await forward(request)
    if not (_json_body(response) and response.status >= 400):
        return response
    problem = response.json()
    kind = str(problem.get("type", "")) if isinstance(problem, dict) else ""
    if not kind.startswith(PROBLEM_TYPE_BASE):
        return response
    own = {"error": problem.get("reason"), "message": problem.get("detail")}
    return response.with_json(own).with_header("content-type", "application/json")


class RefusalAnsweredAsReceipt:
    """The hub does not make one content check: a report it would refuse (422) for the errors
    ``overlooked`` picks is answered with a receipt, as if taken."""

    KINDS = {"/reports/cases": "case", "/reports/evaluations": "evaluation"}

    def __init__(self, overlooked: Callable[[dict[str, Any], list[dict[str, Any]]], bool]) -> None:
        self.overlooked = overlooked

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if request.method != "POST" or request.path not in self.KINDS or response.status != 422:
            return response
        try:
            report = request.json()
        except ValueError:
            return response
        if not isinstance(report, dict) or not _json_body(response):
            return response
        errors = [e for e in response.json().get("errors") or [] if isinstance(e, dict)]
        if not errors or not self.overlooked(report, errors):
            return response
        receipt = {
            "report_id": str(uuid.uuid4()),
            "idempotency_key": request.header(HEADER_IDEMPOTENCY_KEY),
            "kind": self.KINDS[request.path],
            "subject": report.get("case_number"),
            "version": report.get("version"),
            "outcome": "stored",
            "duplicate": False,
            "received_at": datetime.now(UTC).isoformat(),
        }
        return response.with_json(receipt, status=201).with_header(
            "content-type", "application/json"
        )


def _later_version(report: dict[str, Any], errors: list[dict[str, Any]]) -> bool:
    """Content checks made only when the case or evaluation is new."""
    version = report.get("version")
    return (
        isinstance(version, int)
        and version >= 2
        and any("Value error" in str(e.get("message", "")) for e in errors)
    )


def _times_only(_report: dict[str, Any], errors: list[dict[str, Any]]) -> bool:
    """No check that a report's times (and its promise date) come in order."""
    return all(" is before " in str(e.get("message", "")) for e in errors)


def _code_shapes_only(report: dict[str, Any], errors: list[dict[str, Any]]) -> bool:
    """The item codes checked only against each other (the case number starts with the
    implementation code), never each for its own form."""
    fields = {"implementation_code", "handling_item_code"}
    return all(e.get("field") in fields for e in errors) and str(
        report.get("case_number", "")
    ).startswith(str(report.get("implementation_code")))


async def end_step_refusal_refused(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The hub knows only approving end steps: a case concluded with an end step 不同意
    (nodetype 3, noderesult 0) is refused as if its data were wrong."""
    if request.method == "POST" and request.path == "/reports/cases":
        try:
            report = request.json()
        except ValueError:
            report = None
        steps = report.get("steps") if isinstance(report, dict) else None
        if isinstance(steps, list) and any(
            isinstance(step, dict) and (step.get("nodetype"), step.get("noderesult")) == (3, 0)
            for step in steps
        ):
            problem = {"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
                       "detail": "noderesult 0 is not allowed for nodetype 3"}  # fmt: skip
            return ProxyResponse(422, [("content-type", "application/problem+json")]).with_json(
                problem
            )
    return await forward(request)


class OverdueListCached:
    """The e-supervision list of overdue cases is answered from a cache filled by its first
    request (per region): a case finished since stays listed as overdue."""

    PATH = "/supervision/overdue-cases"

    def __init__(self) -> None:
        self.cached: dict[str, ProxyResponse] = {}  # query -> first answer

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.method != "GET" or request.path != self.PATH:
            return await forward(request)
        if request.query in self.cached:
            return self.cached[request.query]
        response = await forward(request)
        if response.status == 200:
            self.cached[request.query] = response
        return response


VARIANTS: tuple[Variant, ...] = (
    Variant("channel-future-accepted", "hub",
            "the hub takes messages dated beyond the window ahead (window checked one side)",
            frozenset({"IC-CHAN-003"}), future_timestamps_taken),
    Variant("channel-signature-unverified", "hub",
            "the hub never verifies the signature: re-addressed or re-targeted messages taken",
            frozenset({"IC-CHAN-001", "IC-CHAN-002"}), signature_not_verified),
    Variant("channel-key-id-unbound", "hub",
            "the announced key id is not compared with the sender's registered key",
            frozenset({"IC-CHAN-004"}), key_id_not_bound),
    Variant("channel-idempotency-per-endpoint", "hub",
            "idempotency keys kept per kind of report: a case's key taken for an evaluation",
            frozenset({"IC-CHAN-005"}), idempotency_keys_per_endpoint),
    Variant("hub-last-arrival-wins", "hub",
            "a late older version of a case overwrites the newer one at the hub",
            frozenset({"IC-CHAN-006"}), lambda _province: LastArrivalWins()),
    Variant("channel-errors-not-problems", "hub",
            "channel refusals answered as the vendor's own JSON, not RFC 9457 problems",
            frozenset({"IC-CHAN-001", "IC-CHAN-002", "IC-CHAN-003", "IC-CHAN-004"}),
            lambda _province: channel_errors_not_problems),
    Variant("hub-later-versions-unchecked", "hub",
            "a later version of a case or evaluation is taken without the content checks",
            frozenset({"IC-CHAN-007"}),
            lambda _province: RefusalAnsweredAsReceipt(_later_version)),
    Variant("hub-end-step-refusal-refused", "hub",
            "a case concluded with an end step 不同意 is refused, although the data set allows it",
            frozenset({"IC-CHAN-007"}), lambda _province: end_step_refusal_refused),
    Variant("hub-report-times-unordered", "hub",
            "a report whose times contradict each other (accepted before applied, promised "
            "before accepted, followed up before rated) is taken",
            frozenset({"IC-CHAN-007"}), lambda _province: RefusalAnsweredAsReceipt(_times_only)),
    Variant("hub-item-codes-unparsed", "hub",
            "an implementation or handling-item code is taken whatever its form, as long as "
            "the case number starts with it",
            frozenset({"IC-CHAN-007"}),
            lambda _province: RefusalAnsweredAsReceipt(_code_shapes_only)),
    Variant("hub-overdue-list-cached", "hub",
            "the overdue-cases list is served from a cache: a case finished since stays listed",
            frozenset({"IC-SUP-001"}), lambda _province: OverdueListCached()),
)  # fmt: skip
