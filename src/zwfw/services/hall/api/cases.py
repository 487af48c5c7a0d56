"""Case routes (``/cases``): applicants with their own token, staff with ``hall:case:handle``.
Without the hall's key for personal data every route answers 503."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from zwfw.services.hall.runtime import runtime
from zwfw.services.hall.service import cases
from zwfw.services.hall.service.cases import (
    CASE_HANDLE,
    CaseIn,
    CaseOut,
    CasePage,
    LookupIn,
    StepIn,
    SupplementIn,
    personal_data_keys,
)
from zwfw.services.hall.steps import CaseState
from zwfw.services.kit import DbSession, Principal, audit, current_principal, require_scopes

SUBJECT_TOKEN_HEADER = "Zwfw-Subject-Token"

router = APIRouter(prefix="/cases", tags=["cases"], dependencies=[Depends(personal_data_keys)])
Caller = Annotated[Principal, Depends(current_principal)]
Handler = Annotated[Principal, Depends(require_scopes(CASE_HANDLE))]


@router.post("", status_code=201, summary="Apply for an item")
def apply(body: CaseIn, db: DbSession, request: Request, principal: Caller) -> CaseOut:
    return cases.apply(
        db,
        request.app.state.kit.sessions,
        runtime(request),
        body,
        principal,
        subject_token=request.headers.get(SUBJECT_TOKEN_HEADER),
    )


@router.get("", summary="Cases: the caller's own, or all with hall:case:handle")
def list_cases(
    db: DbSession,
    request: Request,
    principal: Caller,
    state: Annotated[CaseState | None, Query()] = None,
    overdue: Annotated[bool | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CasePage:
    return cases.list_cases(
        db, runtime(request), principal, state=state, overdue=overdue, limit=limit, offset=offset
    )


# A POST body rather than a query string: an ID number in a URL ends up in gateway logs.
@router.post("/lookup", summary="Cases of one applicant by certificate number (staff)")
def lookup_cases(body: LookupIn, db: DbSession, request: Request, principal: Handler) -> CasePage:
    page = cases.lookup_cases(db, runtime(request), body.certificate_number, body.limit)
    audit.record(
        request,
        action="case.lookup",
        resource="cases",
        result="success",
        detail={"matches": page.total},
    )
    return page


@router.get("/{number}", summary="One case (its applicant, or staff)")
def get_case(number: str, db: DbSession, request: Request, principal: Caller) -> CaseOut:
    return cases.get_case(db, runtime(request), number, principal)


@router.post("/{number}/steps", summary="Take a step (staff)", status_code=201)
def take_step(
    number: str, body: StepIn, db: DbSession, request: Request, principal: Handler
) -> CaseOut:
    try:
        return cases.take_step(db, runtime(request), number, body, actor=principal.subject)
    except cases.StepRefused as refused:
        audit.record(
            request,
            action="case.step",
            resource=f"case/{number}",
            result="refused",
            detail=refused.detail,
        )
        raise refused.problem() from None


@router.post("/{number}/supplements", summary="Supply missing materials (补齐补正, applicant)")
def supplement(
    number: str, body: SupplementIn, db: DbSession, request: Request, principal: Caller
) -> CaseOut:
    return cases.supplement(
        db,
        request.app.state.kit.sessions,
        runtime(request),
        number,
        body,
        principal,
        subject_token=request.headers.get(SUBJECT_TOKEN_HEADER),
    )
