"""Known-bad variants of the reference province's hall side: one seeded defect each, in the
shape of ``defects.py`` (a proxy coroutine and the requirements it must fail, exactly)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from .defects import (
    KeysReadOnce,
    Variant,
    _fresh_instance,
    _json_body,
    _plain,
    _walk,
)
from .proxy import Defect, Forward, ProxyRequest, ProxyResponse

CASE_TIMES = ("applied_at", "accepted_at", "finished_at")


def _is_case(value: dict[str, Any]) -> bool:
    return "case_number" in value and "steps" in value and "applicant" in value


class FilteredListLeaks:
    """The applicant clause is dropped when a state filter is given: an applicant's filtered
    list shows every applicant's cases in that state (the detail stays closed)."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}  # case number -> Authorization of its applicant
        self.latest: dict[str, dict[str, Any]] = {}  # case number -> last case as served

    def _remember(self, value: dict[str, Any]) -> None:
        if _is_case(value):
            self.latest[str(value["case_number"])] = value

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if not _json_body(response) or response.status >= 300:
            return response
        caller = request.header("authorization") or ""
        if request.method == "POST" and request.path == "/cases":
            self.owner[str(response.json()["case_number"])] = caller
        _walk(response.json(), objects=self._remember)
        state = request.params.get("state")
        if request.method != "GET" or request.path != "/cases" or not state:
            return response
        if request.params.get("offset", "0") != "0":
            return response
        page = response.json()
        shown = {c["case_number"] for c in page["cases"]}
        leaked = [
            case
            for number, case in self.latest.items()
            if number not in shown
            and self.owner.get(number, caller) != caller
            and case.get("state") == state
        ]
        page["cases"] = leaked + page["cases"]
        page["total"] += len(leaked)
        return response.with_json(page)


async def start_step_after_acceptance(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The state machine checks start steps only on submitted cases: a second start step on
    an accepted case is answered as taken (201, the case as it is)."""
    response = await forward(request)
    steps = re.fullmatch(r"/cases/([^/]+)/steps", request.path)
    if request.method != "POST" or not steps or response.status != 409:
        return response
    if response.json().get("rule") != "step-start-once":
        return response
    case = await forward(ProxyRequest("GET", f"/cases/{steps[1]}", headers=request.headers[:]))
    return replace(case, status=201) if case.status == 200 else response


class IdNumberPartlyMasked:
    """Cases show the resident ID number with only the birth date masked
    (``340101********1234``): masked, but not as the standard says."""

    def __init__(self) -> None:
        self.numbers: dict[str, str] = {}  # case number -> certificate number as applied

    def _mask(self, case: dict[str, Any]) -> None:
        applicant = case.get("applicant")
        number = self.numbers.get(str(case.get("case_number")))
        if number and isinstance(applicant, dict) and "certificate_number" in applicant:
            applicant["certificate_number"] = number[:6] + "*" * 8 + number[14:]

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if not _json_body(response):
            return response
        if request.method == "POST" and request.path == "/cases" and response.status == 201:
            applied = request.json().get("applicant", {}).get("certificate_number")
            if applied:
                self.numbers[str(response.json()["case_number"])] = str(applied)
        return response.with_json(_walk(response.json(), objects=self._mask))


def _discovery_changed(change: Callable[[dict[str, Any]], None]) -> Defect:
    async def defect(request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if request.method != "GET" or request.path != "/.well-known/zwfw" or not response.is_json:
            return response
        document = response.json()
        change(document)
        return response.with_json(document)

    return defect


def _idp_by_internal_name(document: dict[str, Any]) -> None:
    # The IdP named by a host name of its machine, not by its issuer: the same server and key
    # set, but not the name its tokens carry.
    for members in (document["services"], document["jwks_uris"]):
        members["identity"] = members["identity"].replace("//127.0.0.1:", "//localhost:")


def _without_hub(document: dict[str, Any]) -> None:
    document["hub"] = None


async def case_pages_overlap(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Case list pages are cut one item early: every page after the first repeats the last
    case of the page before (an off-by-one offset)."""
    if request.method == "GET" and request.path == "/cases":
        params = request.params
        offset = int(params.get("offset") or 0)
        if offset > 0:
            request = request.with_params({**params, "offset": str(offset - 1)})
    return await forward(request)


def _without_offset(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.replace(tzinfo=None).isoformat()


def _naive_case(case: dict[str, Any]) -> None:
    if _is_case(case):
        for name in CASE_TIMES:
            if isinstance(case.get(name), str):
                case[name] = _without_offset(case[name])
        for taken in case["steps"]:
            if isinstance(taken, dict) and isinstance(taken.get("at"), str):
                taken["at"] = _without_offset(taken["at"])


async def case_times_without_offset(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Case timestamps go out as local date-times without a UTC offset."""
    response = await forward(request)
    if request.path.startswith("/cases") and _json_body(response):
        return response.with_json(_walk(response.json(), objects=_naive_case))
    return response


async def catalog_filter_ignored(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The catalog list ignores its dept_code filter and lists every item."""
    if request.method == "GET" and request.path == "/items" and "dept_code" in request.params:
        request = request.with_params({k: v for k, v in request.params.items() if k != "dept_code"})
    return await forward(request)


class CatalogListCached:
    """The public catalog list is cached per query and never invalidated: an item published,
    edited or withdrawn after the list was first read keeps its old place in it (its detail
    and history are read afresh)."""

    def __init__(self) -> None:
        self.pages: dict[str, ProxyResponse] = {}  # query -> the page as first served

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.method != "GET" or request.path != "/items":
            return await forward(request)
        key = str(sorted(request.params.items()))
        if key not in self.pages:
            response = await forward(request)
            if response.status != 200:
                return response
            self.pages[key] = response
        return self.pages[key]


class RectificationViewStale:
    """A case's evaluation keeps showing its rectification task as it was when the rating
    opened it (a cached view): closing the task never reaches the evaluation."""

    def __init__(self) -> None:
        self.first: dict[str, Any] = {}  # evaluation path -> rectification as first served

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if not re.fullmatch(r"/cases/[^/]+/evaluation", request.path):
            return response
        if not _json_body(response) or response.status >= 300:
            return response
        evaluation = response.json()
        task = evaluation.get("rectification")
        if task is None:
            return response
        evaluation["rectification"] = self.first.setdefault(request.path, task)
        return response.with_json(evaluation)


class StaffViewsUnmasked:
    """Staff are trusted with the full ID number: the staff's case list and a lookup by
    certificate number show it unmasked (the applicant's views and every detail stay masked)."""

    def __init__(self) -> None:
        self.numbers: dict[str, str] = {}  # case number -> certificate number as applied
        self.staff: set[str] = set()  # Authorization headers that took steps

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if not _json_body(response) or response.status >= 300:
            return response
        caller = request.header("authorization") or ""
        if request.method == "POST" and request.path == "/cases":
            applied = request.json().get("applicant", {}).get("certificate_number")
            if applied:
                self.numbers[str(response.json()["case_number"])] = str(applied)
            return response
        if request.method == "POST" and re.fullmatch(r"/cases/[^/]+/steps", request.path):
            self.staff.add(caller)
            return response
        if request.method == "POST" and request.path == "/cases/lookup":
            wanted = str(request.json().get("certificate_number", ""))
            numbers = {c["case_number"]: wanted for c in response.json()["cases"]}
        elif request.method == "GET" and request.path == "/cases" and caller in self.staff:
            numbers = self.numbers
        else:
            return response
        page = response.json()
        for case in page["cases"]:
            if case["case_number"] in numbers and case["applicant"]["certificate_type"] == "10":
                case["applicant"]["certificate_number"] = numbers[case["case_number"]]
        return response.with_json(page)


LEVEL_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


class RatedAgainAfterRectification:
    """A 差评 whose rectification was closed may be replaced by a new rating (the case is
    "evaluated again after rectification"): the second rating is taken and shown."""

    def __init__(self) -> None:
        self.replaced: dict[str, dict[str, Any]] = {}  # evaluation path -> rating shown

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if not re.fullmatch(r"/cases/[^/]+/evaluation", request.path):
            return await forward(request)
        if request.method == "GET" and request.path in self.replaced:
            response = await forward(request)
            if response.status == 200:
                return response.with_json(self.replaced[request.path])
            return response
        response = await forward(request)
        if request.method != "POST" or response.status != 409:
            return response
        current = await forward(replace(request, method="GET", body=b""))
        if current.status != 200:
            return response
        evaluation = current.json()
        task = evaluation.get("rectification")
        if not task or task.get("state") != "closed":
            return response
        given = request.json()
        level = int(given.get("level", evaluation["level"]))
        evaluation.update(level=level, level_name=LEVEL_NAMES.get(level, ""), bad=level <= 2,
                          text=given.get("text", ""), rectification=None)  # fmt: skip
        self.replaced[request.path] = evaluation
        return current.with_json(evaluation, status=201)


class LicenceReferenceUnchecked:
    """免证办 without the registry: a licence reference is taken as if the material had been
    uploaded, and shown as a reference, but no annotated copy is ever asked for, so any
    well-formed identifier (another holder's, one never issued) replaces the material."""

    PDF = "JVBERi0xLjQKJSB6d2Z3Cg=="  # "%PDF-1.4\n% zwfw\n"

    def __init__(self) -> None:
        self.references: dict[str, dict[str, str]] = {}  # case number -> name -> licence id

    def _show(self, case: dict[str, Any]) -> None:
        named = self.references.get(str(case.get("case_number")), {})
        for material in case.get("materials") or []:
            if isinstance(material, dict) and material.get("name") in named:
                for key in ("media_type", "size", "sha256"):
                    material.pop(key, None)
                material.update(gettype=3, licence_id=named[material["name"]])

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        named: dict[str, str] = {}
        if request.method == "POST" and request.path == "/cases" and request.is_json:
            body = request.json()
            for material in body.get("materials") or []:
                if material.get("gettype") == 3 and material.get("licence_id"):
                    named[material["name"]] = material.pop("licence_id")
                    material.update(gettype=2, media_type="application/pdf",
                                    content_base64=self.PDF)  # fmt: skip
            if named:
                request = request.with_json(body)
        response = await forward(request)
        if not _json_body(response) or response.status >= 300:
            return response
        if named and response.status == 201:
            self.references[str(response.json()["case_number"])] = named
        return response.with_json(_walk(response.json(), objects=self._show))


VARIANTS: tuple[Variant, ...] = (
    Variant("case-list-leak-filtered", "hall",
            "an applicant's state-filtered case list shows other applicants' cases",
            frozenset({"IC-CASE-004"}), _fresh_instance(FilteredListLeaks)),
    Variant("step-start-after-acceptance", "hall",
            "a second start step on an accepted case is answered 201, not 409",
            frozenset({"IC-CASE-002"}), _plain(start_step_after_acceptance)),
    Variant("id-number-partly-masked", "hall",
            "cases show the ID number with only the birth date masked",
            frozenset({"IC-CASE-004"}), _fresh_instance(IdNumberPartlyMasked)),
    Variant("case-pages-overlap", "hall",
            "case list pages after the first repeat the previous page's last case",
            frozenset({"IC-CASE-005"}), _plain(case_pages_overlap)),
    Variant("case-times-naive", "hall",
            "case and step timestamps carry no UTC offset",
            frozenset({"IC-CASE-001"}), _plain(case_times_without_offset)),
    Variant("catalog-filter-ignored", "hall",
            "the catalog list ignores its dept_code filter",
            frozenset({"IC-CAT-004"}), _plain(catalog_filter_ignored)),
    Variant("catalog-list-cached", "hall",
            "the catalog list is cached per query: publications, edits and withdrawals miss it",
            frozenset({"IC-CAT-005"}), _fresh_instance(CatalogListCached)),
    Variant("rectification-view-stale", "hall",
            "a case's evaluation keeps showing its rectification task open after it was closed",
            frozenset({"IC-EVAL-002"}), _fresh_instance(RectificationViewStale)),
    Variant("staff-views-unmasked", "hall",
            "the staff's case list and lookups show the full ID number",
            frozenset({"IC-CASE-004", "IC-CASE-005"}), _fresh_instance(StaffViewsUnmasked)),
    Variant("rated-again-after-rectification", "hall",
            "a 差评 whose rectification was closed is replaced by a second rating",
            frozenset({"IC-EVAL-002"}), _fresh_instance(RatedAgainAfterRectification)),
    Variant("discovery-idp-by-internal-name", "hall",
            "the discovery document names the IdP and its key set by another host name",
            frozenset({"IC-DISC-001"}), _plain(_discovery_changed(_idp_by_internal_name))),
    Variant("discovery-without-hub", "hall",
            "the discovery document names no national hub (hub: null)",
            frozenset({"IC-DISC-001"}), _plain(_discovery_changed(_without_hub))),
    Variant("keys-read-once", "hall",
            "the hall reads its IdP's JWKS once, at start: keys rotated in later are unknown",
            frozenset({"IC-ID-002"}), lambda province: KeysReadOnce(province.idp_url)),
    Variant("licence-reference-unchecked", "hall",
            "a licence reference (免证办) is taken without an annotated copy from the registry",
            frozenset({"IC-CASE-009"}), _fresh_instance(LicenceReferenceUnchecked)),
)  # fmt: skip
