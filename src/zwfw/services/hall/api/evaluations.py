"""Evaluation routes (``/cases/{number}/evaluation``) and rectification routes
(``/rectifications``, staff with ``hall:rectification``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from zwfw.services.hall.runtime import runtime
from zwfw.services.hall.service import evaluations
from zwfw.services.hall.service.cases import personal_data_keys
from zwfw.services.hall.service.evaluations import (
    RECTIFY,
    CloseIn,
    EvaluationIn,
    EvaluationOut,
    FollowUpIn,
    RectificationOut,
)
from zwfw.services.kit import DbSession, Principal, current_principal, require_scopes

# Evaluations read and report the case's applicant: without the hall's key they answer 503.
router = APIRouter(tags=["evaluations"], dependencies=[Depends(personal_data_keys)])
Caller = Annotated[Principal, Depends(current_principal)]
Rectifier = Annotated[Principal, Depends(require_scopes(RECTIFY))]


@router.post("/cases/{number}/evaluation", status_code=201, summary="Rate a concluded case once")
def evaluate(
    number: str, body: EvaluationIn, db: DbSession, request: Request, principal: Caller
) -> EvaluationOut:
    return evaluations.evaluate(db, runtime(request), number, body, principal)


@router.get("/cases/{number}/evaluation", summary="A case's evaluation")
def get_evaluation(
    number: str, db: DbSession, request: Request, principal: Caller
) -> EvaluationOut:
    return evaluations.case_evaluation(db, runtime(request), number, principal)


@router.post("/cases/{number}/evaluation/follow-up", summary="Follow up an evaluation once")
def follow_up(
    number: str, body: FollowUpIn, db: DbSession, request: Request, principal: Caller
) -> EvaluationOut:
    return evaluations.follow_up(db, runtime(request), number, body, principal)


@router.get("/rectifications", summary="Rectification tasks (staff)")
def list_rectifications(
    db: DbSession,
    request: Request,
    principal: Rectifier,
    state: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
    overdue: Annotated[bool | None, Query()] = None,
) -> list[RectificationOut]:
    return evaluations.rectifications(db, runtime(request), state=state, overdue=overdue)


@router.post("/rectifications/{task_id}/close", summary="Close a rectification with a response")
def close_rectification(
    task_id: int, body: CloseIn, db: DbSession, request: Request, principal: Rectifier
) -> RectificationOut:
    return evaluations.close_rectification(
        db, runtime(request), task_id, body.response, actor=principal.subject
    )
